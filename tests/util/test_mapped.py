"""A segment mapped by the processor goes to its decoder worker by name: the worker maps the
same pages (nothing copied through the pipe, no second copy of a 146 MB segment), frames
what the bytes would frame, and a segment renamed over in between is framed from the
caller's mapping, never from the other file."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from advertisex.formats.bounded import DecodeLimits, decode_bounded
from advertisex.landing.zone import LandingZone, Segment
from advertisex.util.isolate import Budget, WorkerPool, takes_views
from advertisex.util.mapped import FileChanged, FileName, MappedFile, map_file
from tests.formats.test_views import CASES

BUDGET = Budget(seconds=60, memory_bytes=1 << 30)
ISOLATED = DecodeLimits(seconds=30.0, memory_bytes=1 << 30)
HERE = DecodeLimits(isolated=False)


@takes_views
def what_the_worker_holds(data: memoryview) -> tuple[str, int]:
    """The kind of object behind the worker's view of its argument, and its size."""
    return type(data.obj).__name__, data.nbytes


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_worker_maps_the_file_instead_of_receiving_its_bytes(tmp_path) -> None:
    data = b'{"a":1}\n' * 100_000
    mapped = map_file(write(tmp_path / "segment.json", data))
    assert isinstance(mapped, MappedFile) and type(mapped.view.obj) is mmap.mmap
    pool = WorkerPool(size=1)
    try:
        assert pool.run(BUDGET, what_the_worker_holds, mapped) == ("mmap", len(data))
        assert pool.run(BUDGET, what_the_worker_holds, data)[0] != "mmap"  # bytes: the pipe
        assert pool.run(BUDGET, bytes.__len__, mapped) == len(data)  # not marked: bytes
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("decoder", "name", "data"),
    [case for case in CASES if case[2]],  # an empty file is not mapped (b"")
    ids=[f"{d.__name__}: {n}" for d, n, data in CASES if data],
)
def test_a_mapped_segment_decodes_in_a_worker_as_its_bytes_do(tmp_path, decoder, name, data):
    mapped = map_file(write(tmp_path / "segment", data))
    assert decode_bounded(decoder, mapped, ISOLATED).equals(decode_bounded(decoder, data, HERE))
    assert decode_bounded(decoder, mapped, HERE).equals(decode_bounded(decoder, data, HERE))


def test_a_segment_renamed_over_after_it_was_mapped_is_framed_from_the_mapping(tmp_path):
    from advertisex.formats.jsonfmt import frame_json

    first = b'{"impression_id":"first"}\n' * 5000
    path = write(tmp_path / "segment.json", first)
    mapped = map_file(path)
    os.replace(write(tmp_path / "other.json", b'{"impression_id":"other"}\n' * 7000), path)
    with pytest.raises(FileChanged):
        FileName(mapped.path, mapped.identity).map()
    assert decode_bounded(frame_json, mapped, ISOLATED).equals(frame_json(first))
    path.unlink()
    assert decode_bounded(frame_json, mapped, ISOLATED).equals(frame_json(first))


def test_the_landing_zone_maps_a_segment_and_gives_an_empty_one_as_bytes(tmp_path) -> None:
    zone = LandingZone(tmp_path)
    write(tmp_path / "a.json", b'{"a":1}\n')
    write(tmp_path / "empty.json", b"")
    mapped = zone.read_mapped(Segment("impressions", "a.json", 8))
    assert isinstance(mapped, MappedFile) and bytes(mapped.view) == b'{"a":1}\n'
    assert zone.read_mapped(Segment("impressions", "empty.json", 0)) == b""


def resident_kib(path: Path) -> int:
    """KiB of ``path``'s mappings resident in this process (from /proc/self/smaps)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux's /proc")
def test_release_pages_takes_touched_pages_out_of_memory_and_loses_nothing(tmp_path) -> None:
    import pyarrow as pa

    from advertisex.util.mapped import release_pages

    data = os.urandom(8 << 20)
    path = write(tmp_path / "segment.bin", data)
    mapped = map_file(path)
    assert isinstance(mapped, MappedFile)
    rows = pa.py_buffer(mapped.view)  # as an Arrow column over the mapping holds it
    del mapped
    assert rows.to_pybytes() == data  # every page touched
    assert resident_kib(path) >= 8 << 10
    assert release_pages() >= 1
    assert resident_kib(path) == 0
    assert rows.to_pybytes() == data  # read again from the file


def test_release_pages_while_other_threads_map_files(tmp_path) -> None:
    """Two pieces' threads: one maps segments while the other lets pages go (the set of
    live mappings grows while it is listed)."""
    import threading

    from advertisex.util.mapped import release_pages

    paths = [write(tmp_path / f"s{k}.bin", b"x" * 4096) for k in range(8)]
    failures: list[BaseException] = []
    stop = threading.Event()

    def mapping() -> None:
        try:
            while not stop.is_set():
                held = [map_file(p) for p in paths]  # added, then let go
                del held
        except BaseException as error:  # pragma: no cover - what the test looks for
            failures.append(error)

    threads = [threading.Thread(target=mapping) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(
            5_000
        ):  # without the lock: a RuntimeError in about one run of three at 2,000
            release_pages()
    except BaseException as error:  # pragma: no cover - what the test looks for
        failures.append(error)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures
