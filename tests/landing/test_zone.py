import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.errors import UserInputError
from advertisex.landing.zone import (
    LandingZone,
    ObjectStoreLandingZone,
    ReadBuffer,
    content_hash,
    expand_paths,
    legacy_marker,
    marker,
    segment_name,
    segment_time,
    segment_times,
)
from tests.disk_events import disk_events, fsyncs

DAY = datetime(2026, 1, 1, tzinfo=UTC).date()  # a follower lists from the first day on


def test_ingesting_the_same_bytes_twice_lands_them_once(tmp_path: Path):
    zone = LandingZone(tmp_path / "landing")
    f = tmp_path / "imps.ndjson"
    f.write_bytes(b'{"ad_creative_id":"c","user_id":"u","timestamp":"2026-01-01","website":"w"}\n')
    first = zone.ingest_file(f)
    again = zone.ingest_file(f)
    assert (first.status, first.source) == ("landed", "impressions")
    assert again.status == "already" and again.segment == first.segment
    assert [s.name for s in zone.segments()] == [first.segment]


class _Local:
    """A local landing zone, its files written and removed as any file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def zone(self) -> LandingZone:
        return LandingZone(self.root)

    def write(self, relative: str, text: str) -> None:
        (self.root / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.root / relative).write_text(text)

    def read(self, relative: str) -> str:
        return (self.root / relative).read_text()

    def remove(self, relative: str) -> None:
        (self.root / relative).unlink()


class _Store(_Local):
    """A landing zone on an object store (fsspec's in-memory one, through Arrow)."""

    def __init__(self, root: Path) -> None:
        import fsspec
        import pyarrow.fs as pafs

        self.base = str(root)  # the memory store is one per process: a base of this test's own
        self.fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory")))

    def zone(self) -> LandingZone:
        return ObjectStoreLandingZone(f"memory://{self.base}", self.fs, self.base)

    def write(self, relative: str, text: str) -> None:
        with self.fs.open_output_stream(f"{self.base}/{relative}") as out:
            out.write(text.encode())

    def read(self, relative: str) -> str:
        with self.fs.open_input_stream(f"{self.base}/{relative}") as f:
            return bytes(f.readall()).decode()

    def remove(self, relative: str) -> None:
        self.fs.delete_file(f"{self.base}/{relative}")


@pytest.mark.parametrize("kind", [_Local, _Store], ids=["local", "store"])
def test_files_marked_by_the_earlier_sha256_index_are_not_landed_again(tmp_path: Path, kind):
    """A lake ingested into by a version that indexed files by SHA-256 keeps its markers:
    those files are found there; a new file is marked in the BLAKE3 index, and once no
    SHA-256 marker is left that is the only index looked at."""
    import hashlib

    lake = kind(tmp_path / "landing")
    old, new = tmp_path / "old.ndjson", tmp_path / "new.ndjson"
    old.write_bytes(b'{"ad_creative_id":"c","user_id":"u1","timestamp":"2026-01-01"}\n')
    new.write_bytes(b'{"ad_creative_id":"c","user_id":"u2","timestamp":"2026-01-01"}\n')
    # what an earlier version left: the segment, and its marker under the SHA-256 of the bytes
    landed_before = "impressions/2026-01-01/00/20260101T000000000000Z-file-0123.ndjson"
    legacy = legacy_marker(hashlib.sha256(old.read_bytes()).hexdigest())
    lake.write(legacy, landed_before + "\n")

    again = lake.zone().ingest_files([old, new])
    assert [r.status for r in again] == ["already", "landed"]
    assert again[0].segment == landed_before
    assert lake.read(marker(content_hash(new.read_bytes()))).strip() == again[1].segment
    assert lake.zone().ingest_file(new).status == "already"

    lake.remove(legacy)  # no SHA-256 marker left: the old file's bytes are new to the lake
    assert lake.zone().ingest_file(old).status == "landed"


def test_ingesting_many_files_at_once_keeps_their_order_and_lands_same_bytes_once(
    tmp_path: Path,
):
    zone = LandingZone(tmp_path / "landing")
    paths = []
    for i in range(60):
        f = tmp_path / f"imps-{i:02}.ndjson"
        # every third file repeats the bytes of the file before it
        n = i - 1 if i % 3 == 2 else i
        f.write_bytes(b'{"ad_creative_id":"c","user_id":"u%d","timestamp":"2026-01-01"}\n' % n)
        paths.append(f)
    told: list[int] = []
    results = zone.ingest_files(paths, done=told.append)
    assert told == list(range(1, 61))
    assert [r.path for r in results] == [str(p) for p in paths]
    landed = [r for r in results if r.status == "landed"]
    assert len(landed) == 40
    assert all(results[i].status == "already" for i in range(2, 60, 3))
    assert all(results[i].segment == results[i - 1].segment for i in range(2, 60, 3))
    # name order (arrival order) is the order the files were given in
    assert [s.name for s in zone.segments()] == [r.segment for r in landed]


@pytest.mark.parametrize("staging", [True, False], ids=["copied by the kernel", "read buffers"])
def test_files_of_any_size_land_their_own_bytes_through_reused_read_buffers(
    tmp_path: Path, staging: bool
):
    # Copied in by the kernel, or (where it cannot) read by the ingest threads into memory
    # they reuse: a small file after a big one, a file only of spaces between, a file above
    # what a buffer keeps.
    zone = LandingZone(tmp_path / "landing")
    zone._staging = staging
    sizes = [300_000, 70, 5_000_000, 0, 1, 70_000, 2_000_000, 40]  # bytes, about
    paths, contents = [], []
    for i, size in enumerate(sizes):
        line = b'{"ad_creative_id":"c","user_id":"u%d","timestamp":"2026-01-01"}\n' % i
        content = line * -(-size // len(line)) if size != 1 else b" "  # whole lines
        f = tmp_path / f"part-{i}.ndjson"
        f.write_bytes(content)
        paths.append(f)
        contents.append(content)
    ReadBuffer.KEPT_BYTES, kept = 3_000_000, ReadBuffer.KEPT_BYTES
    try:
        results = zone.ingest_files(paths)
    finally:
        ReadBuffer.KEPT_BYTES = kept
    landed = {r.path: r for r in results if r.status == "landed"}
    assert [r.status for r in results] == [
        "skipped" if content.strip() == b"" else "landed" for content in contents
    ]
    segments = {s.name: s for s in zone.segments()}
    for path, content in zip(paths, contents, strict=True):
        if str(path) in landed:
            segment = segments[landed[str(path)].segment]
            assert zone.read(segment) == content
            assert landed[str(path)].bytes == len(content)


def test_a_read_buffer_rereads_a_file_that_grew_while_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    f = tmp_path / "growing.ndjson"
    f.write_bytes(b"x" * 1000)
    buffer = ReadBuffer()
    assert bytes(buffer.read(f)) == b"x" * 1000
    real_fstat = os.fstat

    class Smaller:  # the size the file had when it was opened
        def __init__(self, fd: int) -> None:
            self.st_size = real_fstat(fd).st_size - 10

    monkeypatch.setattr(os, "fstat", Smaller)
    assert bytes(buffer.read(f)) == b"x" * 1000  # all of it, not the first 990 bytes
    f.write_bytes(b"y" * 5)  # and a file that shrank reads as it is now
    monkeypatch.setattr(os, "fstat", real_fstat)
    assert bytes(buffer.read(f)) == b"y" * 5


def test_a_read_buffer_reads_a_pipe_whose_size_says_nothing(tmp_path: Path):
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    body = b'{"user_id":"u"}\n' * 10_000
    writer = threading.Thread(target=fifo.write_bytes, args=(body,))
    writer.start()
    assert bytes(ReadBuffer().read(fifo)) == body  # fstat says 0 bytes; no seek back either
    writer.join()


@pytest.mark.parametrize(
    ("content", "status", "source"),
    [
        (b"", "skipped", None),
        (b"   \n", "skipped", None),
        (b" \t\r\n\x0b\x0c", "skipped", None),
        (b'{"seed": 1, "events": 2}', "skipped", None),
        (b"campaign_id,advertiser\nc,a\n", "skipped", None),
        (b"timestamp,user_id,campaign_id,event_type\n", "landed", "clicks"),
        (b"Obj\x01rest", "landed", "bids"),
    ],
)
@pytest.mark.parametrize("many", [False, True], ids=["one file", "ingest threads"])
def test_source_detection_and_skips(
    tmp_path: Path, content: bytes, status: str, source: str | None, many: bool
):
    f = tmp_path / "file.dat"
    f.write_bytes(content)
    zone = LandingZone(tmp_path / "landing")
    result = zone.ingest_files([f])[0] if many else zone.ingest_file(f)
    assert (result.status, result.source) == (status, source)
    if status == "skipped":
        assert result.detail


def test_segments_are_listed_in_arrival_order_and_partial_writes_are_invisible(tmp_path: Path):
    zone = LandingZone(tmp_path)
    a = zone.write_segment("impressions", b"{}\n", label="a")
    b = zone.write_segment("clicks", b"x\n", label="b")
    _, _, temporary = zone.new_segment_path("impressions", label="c")
    temporary.write_bytes(b"half")
    assert [s.name for s in zone.segments()] == [a.name, b.name]


def test_segments_named_in_skip_are_left_out_before_their_size_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A follower passes its committed segments: a day of micro-batches lands tens of
    thousands, and each pass used to ``stat`` every one of them again."""
    zone = LandingZone(tmp_path)
    # Landed at set times in one hour: written at the clock's, the hour ended between
    # them at 59:59.99 and the listing of new's hour missed done.
    at = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    done = [
        zone.write_segment(
            "impressions", b"{}\n", label=f"d{k}", fsync=False, at=at + timedelta(seconds=k)
        )
        for k in range(3)
    ]
    new = zone.write_segment(
        "impressions", b"{}\n{}\n", label="new", fsync=False, at=at + timedelta(seconds=3)
    )
    sized: list[Path] = []
    stat = Path.stat

    def counted(path: Path, *args, **kwargs):
        sized.append(path)
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", counted)
    assert zone.segments(skip={s.name for s in done}) == [new]
    assert [p.name for p in sized if p.suffix] == [Path(new.name).name]  # files, not folders
    assert zone.segments("impressions", hour=segment_time(new), skip={new.name}) == done


def test_a_settled_folder_is_listed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A follower lists the day's folders at every pass: a folder whose mtime is old enough
    that no change can share its clock tick is read once and then only ``stat``-ed, and a
    segment sealed into it later (or removed from it) is still seen at the next pass."""
    import os

    from advertisex.landing import zone as module

    zone = LandingZone(tmp_path)
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    first = zone.write_segment("impressions", b"{}\n", at=at, fsync=False)
    folder = (tmp_path / first.name).parent
    settled = 1_700_000_000_000_000_000  # long ago: the folder is settled
    os.utime(folder, ns=(settled, settled))
    read: list[str] = []

    def counted(reader):
        def read_folder(path):
            read.append(Path(path).relative_to(tmp_path).as_posix())
            return reader(path)

        return read_folder

    monkeypatch.setattr(module.os, "scandir", counted(os.scandir))
    monkeypatch.setattr(module.os, "listdir", counted(os.listdir))
    assert zone.segments(since=DAY) == [first]
    assert zone.segments(since=DAY) == [first]
    assert read.count("impressions/2026-01-01/10") == 1  # the second pass only stat-ed it

    second = zone.write_segment("impressions", b"{}\n", at=at.replace(minute=5), fsync=False)
    assert zone.segments(since=DAY) == [first, second]  # the rename moved the folder's mtime on
    assert zone.segments(since=DAY) == [first, second]
    assert read.count("impressions/2026-01-01/10") == 3  # changed just now: not kept

    os.utime(folder, ns=(settled + 1, settled + 1))
    assert zone.segments(since=DAY) == [first, second]
    zone.remove(first)
    assert zone.segments(since=DAY) == [second]


def test_a_followers_committed_segments_of_a_settled_folder_are_not_looked_up_again(
    tmp_path: Path,
):
    """Passed the same growing set of committed names, a pass looks up in it only the
    segments of an unchanged folder that were not committed the last time; a new set is
    checked whole."""
    import os

    zone = LandingZone(tmp_path)
    at = datetime(2026, 1, 1, 10, tzinfo=UTC)
    landed = [
        zone.write_segment("impressions", b"{}\n", at=at.replace(minute=m), fsync=False)
        for m in range(3)
    ]
    folder = landed[0].name.rsplit("/", 1)[0]
    settled = 1_700_000_000_000_000_000
    os.utime(tmp_path / folder, ns=(settled, settled))
    committed = {landed[0].name, landed[1].name}
    assert zone.segments(since=DAY, skip=committed) == [landed[2]]
    assert zone._left[folder].names == {landed[2].name}  # what the next pass looks up
    committed.add(landed[2].name)
    assert zone.segments(since=DAY, skip=committed) == []
    assert zone._left[folder].names == frozenset()
    assert zone.segments(since=DAY, skip=committed - {landed[0].name}) == [landed[0]]  # a new set


def test_missing_path_is_a_user_error_with_a_hint(tmp_path: Path):
    with pytest.raises(UserInputError) as error:
        expand_paths([str(tmp_path / "nope*.json")])
    assert error.value.hint


def test_listing_since_a_day_skips_older_landing_days(tmp_path: Path):
    from datetime import UTC, date, datetime

    zone = LandingZone(tmp_path)
    old = zone.write_segment("impressions", b"{}\n", at=datetime(2026, 1, 1, tzinfo=UTC))
    new = zone.write_segment("impressions", b"{}\n", at=datetime(2026, 1, 3, tzinfo=UTC))
    assert [s.name for s in zone.segments()] == [old.name, new.name]
    assert [s.name for s in zone.segments(since=date(2026, 1, 2))] == [new.name]


def test_segments_of_one_source_and_hour(tmp_path: Path):
    from datetime import UTC, datetime

    zone = LandingZone(tmp_path / "landing")
    seven = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    eight = datetime(2026, 1, 1, 8, 5, tzinfo=UTC)
    a = zone.write_segment("impressions", b"{}\n", at=seven, fsync=False)
    zone.write_segment("impressions", b"{}\n", at=eight, fsync=False)
    zone.write_segment("clicks", b"x\n", at=seven, fsync=False)
    hour = datetime(2026, 1, 1, 7, tzinfo=UTC)
    assert zone.segments("impressions", hour=hour) == [a]
    assert zone.segments("impressions", hour=datetime(2026, 1, 2, 7, tzinfo=UTC)) == []
    assert len(zone.segments("impressions")) == 2  # a source's name, not its letters
    # What the monitor re-reads of an hour: names without a stat each, sized on request.
    (tmp_path / "landing" / a.name).with_name(".being-written.tmp").write_bytes(b"{")
    assert zone.listing("impressions", hour) == {a.name: None}
    assert zone.listing("clicks", datetime(2026, 1, 1, 9, tzinfo=UTC)) == {}
    assert zone.sizes([a.name, "impressions/gone"]) == {a.name: 3}


@settings(deadline=None)  # the first example imports pyarrow.compute
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(0, 7),  # digits of the fraction
    st.text("0123456789TZ-", max_size=6),
)
def test_segment_times_read_as_strptime_reads_them(at: datetime, digits: int, noise: str):
    def slow(name: str) -> datetime:
        stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
        try:
            return datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        except ValueError:
            return datetime(1970, 1, 1, tzinfo=UTC)

    stamp = at.strftime("%Y%m%dT%H%M%S") + f"{at.microsecond:06d}7"[:digits] + "Z"
    names = []
    for variant in (stamp, stamp[:-1] + noise, noise + stamp, stamp[:8] + noise + stamp[8:]):
        name = f"impressions/2026-01-01/07/{variant}-label.ndjson"
        assert segment_time(name) == slow(name)
        names += [name, variant]
    # Many at once (the monitor reads an hour's names so) reads each as one at a time does.
    assert segment_times(names).to_pylist() == [slow(n) for n in names]


def test_many_segment_times_fall_back_where_arrow_would_read_otherwise() -> None:
    names = [
        "clicks/2026-12-01/20/20261201T205958123456Z-a.csv",
        "20261201T2059581Z",  # a bare stamp, one digit of fraction
        "a/20261301T000000000001Z-x",  # no 13th month
        "a/20261201T205960123Z-x",  # no 60th second (Arrow would roll it over)
        "a/00000101T000000123Z-x",  # no year 0
        "a/20261201T20595Z-x",  # what only strptime reads
        "a/b-20261201T205958123456Z",
        "bad",
    ]
    assert segment_times(names).to_pylist() == [segment_time(n) for n in names]
    assert segment_times([]).to_pylist() == []


def test_many_segment_times_of_made_names_are_read_in_arrow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import advertisex.landing.zone as zone

    at = datetime(2026, 12, 1, 20, 59, 58, 123456, tzinfo=UTC)
    names = [segment_name("bids", at=at), segment_name("clicks", at=at, label="l.0000001")]

    def one_at_a_time(name: object) -> datetime:
        raise AssertionError(f"{name} read one at a time")

    monkeypatch.setattr(zone, "segment_time", one_at_a_time)
    assert segment_times(names).to_pylist() == [at, at]


def test_json_lines_whose_first_record_is_broken_still_land_as_impressions(tmp_path: Path):
    good = b'{"ad_creative_id":"c","user_id":"u","timestamp":"2026-01-01","website":"w"}\n'
    f = tmp_path / "imps.ndjson"
    f.write_bytes(b"1796029200860025\n" + good)
    result = LandingZone(tmp_path / "landing").ingest_file(f)
    assert (result.status, result.source) == ("landed", "impressions")
    other = tmp_path / "notes.txt"  # no JSON extension: still judged by its first line
    other.write_bytes(b"1796029200860025\n" + good)
    assert LandingZone(tmp_path / "landing").ingest_file(other).status == "skipped"


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["write", "start", "seal", "remove", "settle", "commit"]),
            st.integers(0, 2),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_a_kept_listing_always_equals_a_fresh_one(operations: list[tuple[str, int]]) -> None:
    """Whatever lands, is sealed late, goes, settles or is committed (a follower's skip set
    grows) between passes, the listing a follower's zone keeps answers exactly what a zone
    reading every folder answers."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        zone = LandingZone(Path(root))
        started: list[tuple[Path, Path]] = []
        committed: set[str] = set()  # the same set every pass, growing
        for number, (operation, hour) in enumerate(operations):
            at = datetime(2026, 1, 1, 10 + hour, number, tzinfo=UTC)
            if operation == "write":
                zone.write_segment("impressions", b"{}\n", at=at, fsync=False)
            elif operation == "start":
                _, final, temporary = zone.new_segment_path("impressions", at=at)
                temporary.write_bytes(b"{}\n")
                started.append((temporary, final))
            elif operation == "seal" and started:
                zone.seal(*started.pop(0), fsync=False)
            elif operation == "remove" and (listed := LandingZone(Path(root)).segments()):
                zone.remove(listed[hour % len(listed)])
            elif operation == "commit" and (listed := LandingZone(Path(root)).segments()):
                committed.add(listed[hour % len(listed)].name)
            elif operation == "settle":
                for folder, _, _ in os.walk(root):
                    os.utime(folder, ns=(1_700_000_000_000_000_000 + number,) * 2)
            assert zone.segments(since=DAY) == LandingZone(Path(root)).segments()
            fresh = LandingZone(Path(root)).segments(skip=set(committed))
            assert zone.segments(since=DAY, skip=committed) == fresh


def test_a_follower_keeps_listings_only_of_the_days_it_still_lists(tmp_path: Path):
    """A process that follows for months must not hold every day's names: listings of
    days before ``since`` are let go, and a walk without ``since`` keeps none."""
    zone = LandingZone(tmp_path)
    for day in (1, 2):
        zone.write_segment("impressions", b"{}\n", at=datetime(2026, 1, day, tzinfo=UTC))
    zone.segments()
    assert zone._listings == {}
    zone.segments(since=DAY)
    assert {f.split("/")[1] for f in zone._listings} == {"2026-01-01", "2026-01-02"}
    zone.segments(since=DAY.replace(day=2))
    assert {f.split("/")[1] for f in zone._listings} == {"2026-01-02"}


IMPRESSION = b'{"ad_creative_id":"c","user_id":"u","timestamp":"2026-01-01","website":"w"}\n'


def test_a_power_cut_before_the_markers_rename_was_on_disk_does_not_land_the_file_twice(
    tmp_path: Path,
):
    """The segment is on disk, its index marker still under its pending name (the rename
    was lost with the page cache): the next ingest of those bytes finds the pending marker,
    sees its segment, and puts the marker in place instead of landing the bytes again."""
    f = tmp_path / "imps.ndjson"
    f.write_bytes(IMPRESSION)
    zone = LandingZone(tmp_path / "landing")
    first = zone.ingest_file(f)
    placed = zone.root / marker(content_hash(IMPRESSION))
    pending = placed.with_name(f".{placed.name}.tmp")
    placed.rename(pending)  # as a power cut leaves it
    again = LandingZone(tmp_path / "landing").ingest_file(f)
    assert again.status == "already" and again.segment == first.segment
    assert [s.name for s in zone.segments()] == [first.segment]
    assert placed.read_text().strip() == first.segment and not pending.exists()


def test_a_pending_marker_whose_segment_never_appeared_lands_the_bytes(tmp_path: Path):
    f = tmp_path / "imps.ndjson"
    f.write_bytes(IMPRESSION)
    zone = LandingZone(tmp_path / "landing")
    first = zone.ingest_file(f)
    placed = zone.root / marker(content_hash(IMPRESSION))
    placed.rename(placed.with_name(f".{placed.name}.tmp"))
    (zone.root / first.segment).unlink()  # the cut came before the segment was named
    again = zone.ingest_file(f)
    assert again.status == "landed"
    assert [s.name for s in zone.segments()] == [again.segment]
    assert zone.ingest_file(f).status == "already"


@pytest.mark.parametrize("how", ["one file", "files"])
def test_a_landed_files_marker_is_on_disk_before_ingest_says_so(
    tmp_path: Path, monkeypatch, how: str
):
    """A power cut after ``ingest`` answered cannot land its files again: each landed
    file's index marker, and its folder, is fsync'd after it was renamed into place and
    before the answer."""
    events = disk_events(monkeypatch, (os, "replace"))
    files = [tmp_path / "a.ndjson", tmp_path / "b.ndjson"]
    for i, f in enumerate(files):
        f.write_bytes(IMPRESSION.replace(b'"u"', f'"u{i}"'.encode()))
    zone = LandingZone(tmp_path / "landing")
    if how == "one file":
        files = files[:1]
        results = [zone.ingest_file(files[0])]
    else:
        results = zone.ingest_files(files)
    monkeypatch.undo()
    assert [r.status for r in results] == ["landed"] * len(files)
    for f in files:
        placed = zone.root / marker(content_hash(f.read_bytes()))
        named = events.index(("named", str(placed)))
        assert ("fsync", str(placed)) in events[named:]
        assert ("fsync", str(placed.parent)) in events[named:]


def test_the_markers_of_an_ingest_are_fsynced_several_at_once(tmp_path: Path, monkeypatch):
    """An ingest's index markers, and then their folders, are fsync'd together, not one
    after the other (one after the other they were a third of a 2 M-event ingest): two
    fsyncs of markers are in flight at once, and every marker and folder is fsync'd."""
    import threading

    files = [tmp_path / f"{i}.ndjson" for i in range(6)]
    for i, f in enumerate(files):
        f.write_bytes(IMPRESSION.replace(b'"u"', f'"u{i}"'.encode()))
    zone = LandingZone(tmp_path / "landing")
    index = str(zone.root / "_index")
    together = threading.Barrier(2, timeout=20)  # broken if the second never comes
    met: list[bool] = []
    synced: list[str] = []
    fsync = os.fsync

    def watched(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if path.startswith(index) and os.path.isfile(path) and not met:
            together.wait()
            met.append(threading.current_thread().name.startswith("adx-fsync"))
        fsync(fd)
        synced.append(path)

    monkeypatch.setattr(os, "fsync", watched)
    results = zone.ingest_files(files)
    monkeypatch.undo()
    assert [r.status for r in results] == ["landed"] * len(files) and all(met)
    placed = [zone.root / marker(content_hash(f.read_bytes())) for f in files]
    assert {str(p) for p in placed} | {str(p.parent) for p in placed} <= set(synced)


@pytest.mark.parametrize("staging", [True, False], ids=["linked", "written"])
def test_every_folder_a_landed_file_needs_is_flushed_in_its_parent_before_ingest_says_so(
    tmp_path: Path, monkeypatch, staging: bool
):
    """The index marker's folders (``_index``, ``blake3``, its two-hex prefix) and the
    landing zone's own were made with ``mkdir`` and never flushed in their parents: a
    power cut after ``ingest`` answered could lose a folder, and the markers in it — the
    same bytes then landed again — or, for the landing folder, every segment."""
    flushed = fsyncs(monkeypatch)
    f = tmp_path / "a.ndjson"
    f.write_bytes(IMPRESSION)
    zone = LandingZone(tmp_path / "data" / "landing")
    zone._staging = staging and zone._staging
    results = zone.ingest_files([f])
    monkeypatch.undo()
    assert [r.status for r in results] == ["landed"]
    placed = zone.root / marker(content_hash(IMPRESSION))
    segment = zone.root / str(results[0].segment)
    made = {*placed.parents, *segment.parents} - {*(tmp_path / "data").parents}
    missing = [folder for folder in sorted(made) if str(folder.parent) not in flushed]
    assert made and not missing, f"not flushed in their parents: {missing}"


def test_a_rewritten_segments_new_marker_is_in_folders_flushed_in_their_parents(
    tmp_path: Path, monkeypatch
):
    """An erasure's rewrite indexes the new bytes (else they could be ingested again): the
    index's folders it makes - a collector's landing zone has none yet - are flushed in
    their parents, as the marker is in its folder."""
    zone = LandingZone(tmp_path / "landing")
    segment = zone.write_segment("impressions", IMPRESSION * 2)
    flushed = fsyncs(monkeypatch)
    zone.rewrite(segment, IMPRESSION)
    monkeypatch.undo()
    placed = zone.root / marker(content_hash(IMPRESSION))
    assert placed.read_text().strip() == segment.name
    made = [placed.parent, placed.parent.parent, placed.parent.parent.parent]
    missing = [folder for folder in made if str(folder.parent) not in flushed]
    assert not missing, f"not flushed in their parents: {missing}"


def test_a_rewrite_that_fails_leaves_the_segment_whole_and_no_hidden_copy(
    tmp_path: Path, monkeypatch
):
    """An erasure's rewrite on a full disk: the segment keeps its bytes, and the hidden
    copy it was writing is not left beside it (it held other users' records)."""
    zone = LandingZone(tmp_path / "landing")
    segment = zone.write_segment("impressions", IMPRESSION * 2)

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        zone.rewrite(segment, IMPRESSION)
    monkeypatch.undo()
    assert zone.read(segment) == IMPRESSION * 2
    assert not [p for p in zone.root.rglob(".*") if p.is_file()]


def test_old_index_markers_are_packed_and_still_found(tmp_path: Path):
    """maintain packs the index markers older than a day into one SQLite file and deletes
    their files (a block and an inode each, for good): the same bytes ingested again are
    still found, the recent markers stay files."""
    from datetime import datetime

    from advertisex.landing.zone import PACK_MARKERS_AFTER

    zone = LandingZone(tmp_path / "landing")
    files = []
    for i in range(4):
        f = tmp_path / f"imps-{i}.ndjson"
        f.write_bytes(IMPRESSION.replace(b'"u"', f'"u{i}"'.encode()))
        files.append(f)
    landed = [zone.ingest_file(f) for f in files]
    now = datetime.now(UTC)
    old = (now - PACK_MARKERS_AFTER - timedelta(minutes=1)).timestamp()
    markers = [zone.root / marker(content_hash(f.read_bytes())) for f in files]
    for path in markers[:3]:
        os.utime(path, (old, old))
    assert zone.pack_markers(now) == 3
    assert [path.exists() for path in markers] == [False, False, False, True]
    assert zone.pack_markers(now) == 0
    again = LandingZone(tmp_path / "landing").ingest_files(files)
    assert [r.status for r in again] == ["already"] * 4
    assert [r.segment for r in again] == [r.segment for r in landed]
    assert len(zone.segments()) == 4


def test_a_damaged_gzip_file_is_recognised_by_what_it_holds_before_the_damage(tmp_path: Path):
    """Its head un-gzipped as far as it goes: before, a zlib error there gave nothing, and
    the file was "not recognised" (its CRC failing at the end of a small file was enough)."""
    import gzip

    line = (
        b'{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u%d","website":"w"}\n'
    )
    member = bytearray(gzip.compress(b"".join(line % n for n in range(300)), mtime=0))
    member[len(member) * 3 // 4] ^= 0xFF
    f = tmp_path / "imps.ndjson.gz"
    f.write_bytes(bytes(member))
    result = LandingZone(tmp_path / "landing").ingest_file(f)
    assert (result.status, result.source) == ("landed", "impressions")


@pytest.mark.parametrize("o_path", [True, False], ids=["o-path", "no-o-path"])
def test_a_walked_file_is_read_only_if_what_is_opened_is_a_regular_file_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, o_path: bool
) -> None:
    from advertisex.landing.zone import open_within

    if not o_path:  # as where there is no O_PATH (not Linux): O_NOFOLLOW
        monkeypatch.delattr(os, "O_PATH", raising=False)
    root = (tmp_path / "inbox").resolve()
    root.mkdir()
    (root / "plain.csv").write_bytes(b"a,b\n")
    (tmp_path / "outside.csv").write_bytes(b"secret\n")
    (root / "out.csv").symlink_to(tmp_path / "outside.csv")
    os.mkfifo(root / "pipe.csv")
    opened = open_within(root / "plain.csv", root)
    assert isinstance(opened, int)
    try:
        assert os.read(opened, 100) == b"a,b\n"
    finally:
        os.close(opened)
    assert open_within(root / "out.csv", root) == (
        "replaced since its folder was read by a link out of the folder: not read"
        if o_path
        else "a symbolic link: not followed here (where it leads cannot be checked as it is "
        "opened on this system); name its target to ingest it"
    )
    assert open_within(root / "pipe.csv", root) == (
        "replaced since its folder was read, and not a regular file now: not read"
    )


def test_segments_before_a_day_lists_only_the_days_before_it(tmp_path: Path) -> None:
    # Retention's listing: what it may delete, not the months of segments it keeps.
    zone = LandingZone(tmp_path)
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    old, kept = (
        zone.write_segment("clicks", b"a\n", at=start + timedelta(days=d), fsync=False)
        for d in (0, 1)
    )
    (tmp_path / "clicks" / "loose.csv").write_bytes(b"b\n")  # no landing day: never retention's
    assert zone.segments(before=(start + timedelta(days=1)).date()) == [old]
    assert {s.name for s in zone.segments()} == {old.name, kept.name, "clicks/loose.csv"}
