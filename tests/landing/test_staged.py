"""Ingest copies a file into the landing zone by the kernel, into an unnamed file that is
named once it is complete: the bytes hashed are the bytes landed, whatever the producer
does to its file meanwhile, and nothing is left behind by a file that does not land."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from advertisex.errors import StorageError
from advertisex.landing import staged
from advertisex.landing import zone as zone_module
from advertisex.landing.zone import LandingZone, ReadBuffer, ReadFile, content_hash

LINE = b'{"ad_creative_id":"c","user_id":"u","timestamp":"2026-01-01","website":"w"}\n'

pytestmark = pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux's O_TMPFILE")


def _files(root: Path) -> set[str]:
    """Every file under ``root``, named from it (dot-names included)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _never_read(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    """Fail if ingest reads ``source`` into this process (the landing zone's files may be)."""
    read_bytes = Path.read_bytes

    def refuse(*_: object) -> None:
        raise AssertionError("the file was read into this process")

    def guarded(path: Path) -> bytes:
        if path == source:
            refuse()
        return read_bytes(path)

    monkeypatch.setattr(ReadBuffer, "read", refuse)
    monkeypatch.setattr(Path, "read_bytes", guarded)


def test_a_file_is_copied_in_by_the_kernel_and_named_once_complete(tmp_path, monkeypatch):
    body = LINE * 50_000  # 3.8 MB
    f = tmp_path / "imps.ndjson"
    _never_read(monkeypatch, f)
    f.write_bytes(body)
    zone = LandingZone(tmp_path / "landing")
    [result] = zone.ingest_files([f])
    assert result.status == "landed" and result.bytes == len(body)
    assert zone.read(next(s for s in zone.segments())) == body
    # the segment and its index marker, nothing else (no temporary name)
    files = _files(zone.root)
    assert files == {result.segment, f"_index/blake3/{content_hash(body)[:2]}/{content_hash(body)}"}


def test_a_copy_starts_its_way_to_the_disk_before_it_is_hashed(tmp_path, monkeypatch):
    """The copy's writeback starts as soon as it is made — while ingest hashes and checks it
    — so the fsync that names it waits less; its pages stay cached (``process`` reads them
    next): posix_fadvise only drops clean pages, and a fresh copy's are dirty."""
    body = LINE * 50_000
    f = tmp_path / "imps.ndjson"
    f.write_bytes(body)
    events: list[str] = []
    started = staged.start_file_writeback
    monkeypatch.setattr(
        staged, "start_file_writeback", lambda fd: (events.append("writeback"), started(fd))[1]
    )
    real_hash = zone_module.content_hash
    monkeypatch.setattr(
        zone_module, "content_hash", lambda data: (events.append("hash"), real_hash(data))[1]
    )
    zone = LandingZone(tmp_path / "landing")
    [result] = zone.ingest_files([f])
    assert result.status == "landed"
    assert events == ["writeback", "hash"]
    assert zone.read(next(s for s in zone.segments())) == body


def test_the_bytes_landed_are_the_bytes_hashed_when_the_file_changes_meanwhile(tmp_path):
    f = tmp_path / "imps.ndjson"
    f.write_bytes(LINE * 1000)
    zone = LandingZone(tmp_path / "landing")
    read = zone.read_for_ingest(f)
    assert isinstance(read, ReadFile) and read.staged is not None
    with open(f, "r+b") as handle:  # the producer rewrites its file in place
        handle.write(b"X" * 500)
    f.write_bytes(LINE * 10)
    try:
        result = zone.land(read)
    finally:
        read.release()
    landed = zone.read(next(s for s in zone.segments()))
    assert landed == LINE * 1000 and content_hash(landed) == read.digest
    assert result.bytes == len(landed)


@pytest.mark.parametrize(
    "content", [b"", b"  \n", b"no source here"], ids=["empty", "spaces", "unknown"]
)
def test_a_file_that_does_not_land_leaves_nothing_behind(tmp_path, content):
    f = tmp_path / "file.dat"
    f.write_bytes(content)
    zone = LandingZone(tmp_path / "landing")
    assert zone.ingest_files([f])[0].status == "skipped"
    assert _files(zone.root) == set()
    g = tmp_path / "imps.ndjson"
    g.write_bytes(LINE)
    first = zone.ingest_file(g)
    before = _files(zone.root)
    assert zone.ingest_file(g).status == "already"  # its copy was made, then let go
    assert zone.ingest_files([g])[0].segment == first.segment
    assert _files(zone.root) == before


def test_across_file_systems_the_copy_is_sendfiles(tmp_path, monkeypatch):
    f = tmp_path / "imps.ndjson"
    _never_read(monkeypatch, f)

    def refused(*_: object) -> int:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", refused)
    body = LINE * 20_000
    f.write_bytes(body)
    zone = LandingZone(tmp_path / "landing")
    result = zone.ingest_file(f)
    assert result.status == "landed" and zone.read(next(s for s in zone.segments())) == body


def test_where_the_kernel_cannot_copy_or_name_the_file_is_read_and_written(tmp_path, monkeypatch):
    body = LINE * 100
    zone = LandingZone(tmp_path / "landing")
    f = tmp_path / "a.ndjson"
    f.write_bytes(body)

    def cannot_name(self: staged.StagedCopy, final: Path) -> None:
        raise staged.Unsupported(errno.ENOENT, "no /proc")

    monkeypatch.setattr(staged.StagedCopy, "link", cannot_name)
    assert zone.ingest_file(f).status == "landed"
    assert zone._staging is False  # not tried again
    g = tmp_path / "b.ndjson"
    g.write_bytes(body + LINE)
    reads: list[Path] = []
    read = ReadBuffer.read
    monkeypatch.setattr(ReadBuffer, "read", lambda self, p: reads.append(p) or read(self, p))
    assert zone.ingest_files([g])[0].status == "landed"
    assert reads == [g]
    assert sorted(zone.read(s) for s in zone.segments()) == sorted([body, body + LINE])
    assert not [name for name in _files(zone.root) if name.rsplit("/", 1)[-1].startswith(".")]


def test_a_landing_zone_that_cannot_make_unnamed_files_reads_and_writes(tmp_path, monkeypatch):
    def unsupported(source: int, folder: Path) -> staged.StagedCopy:
        raise staged.Unsupported(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr("advertisex.landing.zone.stage", unsupported)
    f = tmp_path / "a.ndjson"
    f.write_bytes(LINE)
    zone = LandingZone(tmp_path / "landing")
    assert zone.ingest_file(f).status == "landed" and zone._staging is False


def test_a_full_disk_when_naming_the_copy_lands_nothing_and_says_so(tmp_path, monkeypatch):
    def full(self: staged.StagedCopy, final: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(staged.StagedCopy, "link", full)
    f = tmp_path / "a.ndjson"
    f.write_bytes(LINE)
    zone = LandingZone(tmp_path / "landing")
    with pytest.raises(StorageError, match="nothing of this file landed"):
        zone.ingest_file(f)
    assert list(zone.segments()) == []


def test_a_pipe_is_read_as_it_comes_not_staged(tmp_path):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    body = LINE * 5_000
    writer = threading.Thread(target=fifo.write_bytes, args=(body,))
    writer.start()
    zone = LandingZone(tmp_path / "landing")
    result = zone.ingest_file(fifo, source="impressions")
    writer.join(timeout=10)
    assert not writer.is_alive() and result.status == "landed"
    assert zone.read(next(s for s in zone.segments())) == body
    assert zone._staging  # a pipe says nothing of what the file system can do


def test_a_landed_copy_has_the_mode_any_written_segment_has(tmp_path):
    old = os.umask(0o002)
    try:
        f = tmp_path / "a.ndjson"
        f.write_bytes(LINE)
        staged_zone = LandingZone(tmp_path / "staged")
        written_zone = LandingZone(tmp_path / "written")
        written_zone._staging = False
        modes = {
            (zone.root / zone.ingest_file(f).segment).stat().st_mode & 0o777
            for zone in (staged_zone, written_zone)
        }
    finally:
        os.umask(old)
    assert modes == {0o664}


KILLED_INGEST = """
import sys
from pathlib import Path
from advertisex.landing.zone import LandingZone
zone = LandingZone(Path(sys.argv[1]))
for name in sys.argv[2:]:
    result = zone.ingest_file(Path(name))
    print(result.status, flush=True)
"""


def test_ingest_killed_while_copying_leaves_only_whole_segments_and_lands_the_rest_once(
    tmp_path,
):
    import signal
    import subprocess
    import sys

    files = []
    for i in range(8):
        f = tmp_path / f"part-{i}.ndjson"
        f.write_bytes(LINE.replace(b'"u"', b'"u%d"' % i) * 200_000)  # 15 MB each
        files.append(f)
    root = tmp_path / "landing"
    ingest = subprocess.Popen(
        [sys.executable, "-c", KILLED_INGEST, str(root), *map(str, files)],
        stdout=subprocess.PIPE,
    )
    assert ingest.stdout is not None
    for _ in range(3):  # three files landed; the fourth is being copied
        assert ingest.stdout.readline().strip() == b"landed"
    ingest.send_signal(signal.SIGKILL)
    ingest.wait()
    ingest.stdout.close()
    zone = LandingZone(root)
    bodies = {f.read_bytes(): f for f in files}
    landed = [zone.read(s) for s in zone.segments()]
    assert 3 <= len(landed) <= 4 and all(body in bodies for body in landed)  # whole, or absent
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temporary left
    results = zone.ingest_files(files)
    assert sorted(r.status for r in results) == sorted(
        ["already"] * len(landed) + ["landed"] * (len(files) - len(landed))
    )
    assert sorted(zone.read(s) for s in zone.segments()) == sorted(bodies)


def test_without_o_tmpfile_a_landing_zone_reads_and_writes(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE")
    zone = LandingZone(tmp_path / "landing")
    f = tmp_path / "a.ndjson"
    f.write_bytes(LINE)
    assert zone._staging is False and zone.ingest_file(f).status == "landed"


def test_a_copy_that_fails_falls_back_to_reading_and_staging_stays_on(tmp_path, monkeypatch):
    copy_file_range = os.copy_file_range
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def fails_once(*args: object) -> int:
        if failures:
            raise failures.pop()
        return copy_file_range(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "copy_file_range", fails_once)
    zone = LandingZone(tmp_path / "landing")
    for i in range(2):
        f = tmp_path / f"{i}.ndjson"
        f.write_bytes(LINE * (i + 1))
        assert zone.ingest_file(f).status == "landed"
    assert zone._staging  # a full disk says nothing of what the file system can do
    assert sorted(zone.read(s) for s in zone.segments()) == [LINE, LINE * 2]
    assert not [p for p in zone.root.rglob("*") if p.name.startswith(".")]


@pytest.mark.parametrize("staging", [True, False], ids=["staged", "written"])
@pytest.mark.parametrize("failing", ["marker write", "marker rename"])
def test_a_full_disk_when_indexing_lands_nothing_and_a_rerun_lands_once(
    tmp_path, monkeypatch, staging, failing
):
    """The content-hash marker is part of landing: a segment without its marker would land
    again on the rerun the error message asks for (CI once saw this on a full tmpfs)."""
    f = tmp_path / "a.ndjson"
    f.write_bytes(LINE * 1_000)
    zone = LandingZone(tmp_path / "landing")
    zone._staging = staging
    full = OSError(errno.ENOSPC, "No space left on device")
    if failing == "marker write":
        write_text = Path.write_text

        def no_room(self: Path, *args: object, **kwargs: object) -> int:
            if "_index" in self.parts:
                raise full
            return write_text(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", no_room)
    else:
        replace = os.replace

        def no_room_to_rename(source: object, target: object) -> None:
            if "_index" in Path(str(target)).parts:
                raise full
            replace(source, target)

        monkeypatch.setattr(os, "replace", no_room_to_rename)
    with pytest.raises(StorageError, match=r"No space left on device.*nothing of this file"):
        zone.ingest_file(f)
    assert list(zone.segments()) == [] and _files(zone.root) == set()
    monkeypatch.undo()
    assert zone.ingest_file(f).status == "landed"
    assert zone.ingest_file(f).status == "already" and len(zone.segments()) == 1
