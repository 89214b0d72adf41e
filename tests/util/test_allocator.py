"""The processor tells glibc to give large freed blocks back (a fixed mmap threshold, two
arenas): a 10 M-event backlog's processor held 160-430 MiB freed but not returned; and
Arrow's buffers come from jemalloc, which gives freed pages back (mimalloc kept them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from advertisex.util import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

HELD = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "bound":
    from advertisex.util.allocator import bound_held_memory
    assert bound_held_memory() and not bound_held_memory()  # once
libc.free(libc.malloc(30 << 20))  # a big block freed: glibc's own threshold rises past 5 MB
blocks = [libc.malloc(5 << 20) for _ in range(20)]
for block in blocks[::2]:  # every other one: free memory between live blocks, not trimmable
    libc.free(block)
print(libc.mallinfo2().fordblks >> 20)
"""


def held_mib(mode: str, env: dict[str, str] | None = None) -> int:
    done = subprocess.run(
        [sys.executable, "-c", HELD, mode], capture_output=True, text=True, check=True, env=env
    )
    return int(done.stdout)


def test_freed_large_blocks_go_back_to_the_system_once_bound() -> None:
    assert held_mib("free") >= 40  # glibc alone keeps the ten freed 5 MB blocks
    assert held_mib("bound") == 0


def test_the_users_own_allocator_settings_are_kept(monkeypatch) -> None:
    import pyarrow as pa

    before = pa.default_memory_pool().backend_name
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", before)
    assert allocator.bound_held_memory() is False
    assert allocator.arrow_from_jemalloc() is False
    assert pa.default_memory_pool().backend_name == before


POOLS = """
import os, subprocess, sys
import pyarrow as pa
from advertisex.util.allocator import bound_held_memory
before = pa.default_memory_pool().backend_name
bound_held_memory()
child = subprocess.run([sys.executable, "-c",
    "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"],
    capture_output=True, text=True, check=True).stdout.strip()
print(before, pa.default_memory_pool().backend_name, child)
"""


def _pools(env: dict[str, str]) -> list[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run(
        [sys.executable, "-c", POOLS],
        capture_output=True,
        text=True,
        check=True,
        env={**clean, **env},
    )
    return done.stdout.split()


def test_arrow_buffers_come_from_jemalloc_here_and_in_processes_started_after() -> None:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this Arrow is built without jemalloc")
    assert _pools({})[1:] == ["jemalloc", "jemalloc"]
    # A pool the user chose stays, here and in the workers.
    assert _pools({"ARROW_DEFAULT_MEMORY_POOL": "system"}) == ["system"] * 3


def test_the_demo_leaves_glibcs_bounds_to_the_processor(monkeypatch) -> None:
    """The demo gets ready beside its generator: Arrow's pool is chosen there (the decoder
    workers it starts inherit it), glibc's bounds are not — under them the generator's
    arrays of 4-8 MB were each a fresh mapping. The processor sets them (tests/runners)."""
    from types import SimpleNamespace

    from advertisex.cli import demo
    from advertisex.formats import bounded

    called: list[str] = []
    monkeypatch.setattr(allocator, "bound_held_memory", lambda: called.append("glibc"))
    monkeypatch.setattr(allocator, "arrow_from_jemalloc", lambda: called.append("arrow"))
    monkeypatch.setattr(bounded, "warm", lambda: called.append("workers"))
    lake = SimpleNamespace(ensure_all=lambda: called.append("tables"))
    thread = demo._get_ready(SimpleNamespace(lake=lake))
    thread.join(timeout=60)
    assert called == ["arrow", "workers", "tables"]
    assert not thread.daemon  # a demo ending before it joins still waits for it at exit


SCANNED = """
import sys, tempfile
sys.argv = ["advertisex", *sys.argv[1:]]
from advertisex.cli import app
try:
    app.main()
except SystemExit:
    pass
import pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq
path = tempfile.mktemp(suffix=".parquet")
pq.write_table(pa.table({"n": list(range(200_000))}), path)
read = ds.dataset(path).to_table()  # how pyiceberg's scans read a data file
print(pa.default_memory_pool().backend_name, pa.mimalloc_memory_pool().bytes_allocated())
"""


def test_a_processors_scans_allocate_from_jemalloc_too() -> None:
    """``arrow_from_jemalloc`` made only pyarrow's default pool jemalloc: Arrow's C++ had
    chosen mimalloc at import, and ``pyarrow.dataset`` — pyiceberg's scans, a follower's marts
    updates and compactions — allocated from it; mimalloc kept what they freed (195 MiB of a
    follower's 618 after 10 minutes of ``up``). A processor's pool is chosen before Arrow
    loads; other commands keep Arrow's own choice."""
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        pytest.skip("this Arrow is built without jemalloc")

    def scanned(*args: str) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != allocator.ARROW_POOL_VARIABLE}
        done = subprocess.run(
            [sys.executable, "-c", SCANNED, *args], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[-1].split()  # after the verb's help

    assert scanned("process", "--help") == ["jemalloc", "0"]
    pool, held = scanned("query", "--help")
    assert pool == "mimalloc" and int(held) > 0
