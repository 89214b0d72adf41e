"""Real services on 127.0.0.1 for the scale-out tests: PostgreSQL and an S3 server.

Each is started by the fixture and stopped after the module. `make test` installs
PostgreSQL (Debian's package) when it is missing; a test skips, saying why, only when
the binaries or the Python driver truly are not there.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.ports import free_port


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], what: str, seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {seconds:.0f} s")


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yields its SQLAlchemy URL."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed (pip install -e '.[postgres]')")
    # Not under pytest's temp folder: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="advertisex-pg-"))
    data, run = root / "data", root / "run"
    run.mkdir()
    # PostgreSQL refuses to run as root: use the postgres account the package creates.
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(run, "postgres")
    port = free_port()

    def ctl(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True)

    ctl(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    ctl(
        str(binaries / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-o",
        f"-p {port} -k {run} -c listen_addresses=127.0.0.1",
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        ctl(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


_S3_LOGS: dict[str, Path] = {}  # endpoint → the request log of its server


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1 (a separate process); yields its URL.
    Its request log (werkzeug's, one line a request) is kept for :func:`s3_lists`."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip("moto[server] is not installed (pip install -e '.[dev]')")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="moto-"))
    log = folder / "requests.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    _S3_LOGS[url] = log
    try:
        wait_for_port(port, server, "moto_server")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        _S3_LOGS.pop(url, None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def s3_lists(s3_endpoint: str) -> Callable[..., int]:
    """A function: how many ``ListObjectsV2`` requests the S3 server has received so far,
    or requests of another kind (``'"HEAD '``): lines of its request log holding that
    text. A marker request is sent and waited for first, so every request made before the
    call is counted."""
    import urllib.error
    import urllib.request

    log = _S3_LOGS[s3_endpoint]
    sent = [0]

    def lists(what: str = "list-type=2") -> int:
        sent[0] += 1
        marker = f"count-marker-{sent[0]}-{time.monotonic_ns()}"
        try:
            urllib.request.urlopen(f"{s3_endpoint}/{marker}", timeout=10).close()
        except urllib.error.URLError:
            pass  # answered with an error: only its log line matters
        deadline = time.monotonic() + 10
        while marker not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.05)  # a request answered just before the marker may log just after it
        return log.read_text().count(what)

    return lists
