"""A landing file's kept words rule it out of an erasure only where the full scan would
leave it as it is: hostile files, compared with the full scan."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import pyarrow as pa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from advertisex.formats.decode import container_format
from advertisex.formats.scrub import Forgotten
from advertisex.formats.scrubwords import (
    WORDS_VERSION,
    _hashes_of,
    _word_hashes,
    word_test,
    words_of,
)
from advertisex.landing.zone import UNREADABLE, LandingZone, Segment
from advertisex.runners.forget import (
    ForgetReport,
    _Archive,
    _scrub_segment,
    _words_of,
    scrub_archived_segments,
    scrub_landing,
)

# Ids that are words, that hold a space, a quote, a backslash, a non-ASCII letter, numbers,
# prefixes and suffixes of one another; and fragments that spell them in part, escaped,
# split by CSV quoting, next to word characters.
IDS = ["u1", "u12", "42", "a b", 'q"x', "jos\u00e9", "x-y.z@w", "1.5", "\\n", "\U0001f600"]
PIECES = [
    *IDS,
    "u",
    "1",
    "2",
    "4",
    "x",
    "xu1",
    "u1x",
    "u1.",
    "@u1",
    "\\u0075\\u0031",
    "\\u00e9",
    "\\u00E9",
    "jos",
    "\\\\",
    '\\"',
    '"',
    '""',
    "'",
    ",",
    ";",
    " ",
    "\t",
    "\n",
    "\r\n",
    "{",
    "}",
    "[",
    "]",
    ":",
    "base64:",
    "dTE=",
    "\\ud83d\\ude00",
    "\u00e9",
    "-",
    ".",
]
text = st.lists(st.sampled_from(PIECES), max_size=8).map("".join)
value = st.one_of(text, st.integers(-5, 50).map(str), st.sampled_from(IDS))


def _json(draw: Any) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["object", "number", "free", "junk", "pair"]))
        user = draw(value)
        if kind == "object":
            lines.append(f'{{"user_id": "{user}", "note": "{draw(text)}"}}')
        elif kind == "number":
            lines.append(f'{{"user_id": {draw(st.integers(0, 50))}, "cost": {user}}}')
        elif kind == "free":
            lines.append(f'{{"user_id": "v", "extra": {{"deep": ["{draw(text)}"]}}}}')
        elif kind == "pair":
            lines.append(f'{{"user_id": "{user}"}}{{"user_id": "{draw(value)}"}}')
        else:
            lines.append(draw(text))
    body = "\n".join(lines)
    if draw(st.booleans()):
        body = "[" + ",".join(lines) + "]"
    return body.encode("utf-8", "surrogatepass")


def _csv(draw: Any) -> bytes:
    header = draw(st.sampled_from(["timestamp,user_id,campaign_id,event_type,note", "a;b"]))
    rows = [header]
    for _ in range(draw(st.integers(1, 6))):
        user = draw(value)
        quoted = draw(st.sampled_from(["plain", "quoted", "split"]))
        if quoted == "quoted":
            user = '"' + user.replace('"', '""') + '"'
        elif quoted == "split" and len(user) > 1:
            user = '"' + user[:1] + '"' + user[1:]
        rows.append(f"2026-12-07T00:42:00Z,{user},c,click,{draw(text)}")
    return "\r\n".join(rows).encode("utf-8", "surrogatepass")


def _avro(draw: Any) -> bytes:
    schema = {
        "type": "record",
        "name": "Bid",
        "fields": [
            {"name": "user_id", "type": ["null", "string", "long"]},
            {"name": "targeting", "type": {"type": "map", "values": "string"}},
            {"name": "note", "type": "string"},
        ],
    }
    records = []
    for _ in range(draw(st.integers(1, 6))):
        user: Any = draw(value)
        if draw(st.booleans()) and user.isdigit():
            user = int(user)
        records.append({"user_id": user, "targeting": {draw(text): draw(text)}, "note": draw(text)})
    out = io.BytesIO()
    codec = draw(st.sampled_from(["null", "deflate"]))
    # A fixed sync marker: the same draws make the same bytes.
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec, sync_marker=b"s" * 16)
    return out.getvalue()


def _damaged(draw: Any, data: bytes) -> bytes:
    """``data``, or cut short, or with a byte flipped (a record, a block, a gzip member)."""
    damage = draw(st.integers(0, 7))
    if damage == 0:
        return data[: draw(st.integers(0, len(data)))]
    if damage == 1 and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


@st.composite
def segments(draw: Any) -> tuple[Segment, bytes]:
    """A hostile landing file: its segment (its name tells its format) and its bytes."""
    source, suffix, build = draw(
        st.sampled_from(
            [("impressions", "ndjson", _json), ("clicks", "csv", _csv), ("bids", "avro", _avro)]
        )
    )
    data = build(draw)
    data = _damaged(draw, data)
    if draw(st.integers(0, 3)) == 0:
        data = _damaged(draw, gzip.compress(data, mtime=0))
        suffix += ".gz"
    name = f"{source}/2026-12-07/00/20261207T000000-{draw(st.integers(0, 10**6))}.{suffix}"
    if draw(st.integers(0, 4)) == 0:  # set aside as unreadable: searched line by line
        name = f"{UNREADABLE}/{name}"
    return Segment(source, name, len(data)), data


# A few ids, or with many more (looked up in one pass rather than one by one).
PADDING = [f"pad{n}" for n in range(9)]
ids_asked = st.tuples(
    st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True), st.booleans()
).map(lambda asked: asked[0] + (PADDING if asked[1] else []))
# The segments of a landing zone (or an archive of one): a few, each name once.
files_of_a_zone = st.lists(segments(), min_size=1, max_size=6, unique_by=lambda s: s[0].name)


def _avro_note(note: str) -> bytes:
    schema = {"type": "record", "name": "R", "fields": [{"name": "note", "type": "string"}]}
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), [{"note": note}], sync_marker=b"s" * 16)
    return out.getvalue()


def _example(name: str, data: bytes) -> tuple[Segment, bytes]:
    return Segment(name.split("/", 1)[0], name, len(data)), data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments(), ids_asked)
# A JSON array is framed again (escapes decoded): "\u0075\u0031" is u1 once "u1" is
# anywhere in the file, inside "xu1x" too — its words must be kept, not a filter of them.
@example(_example("impressions/a.ndjson", b'[{"user_id":"\\u0075\\u0031"},{"n":"xu1x"}]'), ["u1"])
# An Avro string of 24 bytes follows its length, 0x30 ("0"): the id is inside the word "0u1".
@example(_example("bids/a.avro", _avro_note("u1 " + "x" * 21)), ["u1"])
def test_words_rule_a_file_out_only_when_the_full_scan_leaves_it_whole(
    segment: tuple[Segment, bytes], asked: list[str]
) -> None:
    found, data = segment
    ids = Forgotten(asked)
    full = _scrub_segment(found, data, ids)
    words = _words_of(found, data)
    may_pass = word_test(ids)
    if words is None or may_pass is None or may_pass(words):
        return  # the file is read, as the full scan reads it
    assert full is None or (full.removed == 0 and full.data == data and not full.by_columns)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments(), ids_asked)
def test_the_words_of_what_the_search_inflated_are_those_of_the_file(
    segment: tuple[Segment, bytes], asked: list[str]
) -> None:
    """An erasure that reads a file keeps the words of the texts its search inflated (the
    gzip stream, the Avro blocks) instead of inflating them again: the same summary."""
    found, data = segment
    result = _scrub_segment(found, data, Forgotten(asked))
    container = container_format(found)
    if result is not None and result.searched is not None:
        assert not result.removed
        assert words_of(data, container, result.searched) == _words_of(found, data)


def test_a_spelling_is_looked_for_by_its_words_and_their_ends() -> None:
    array = words_of(b'[{"user_id":"u12","n":"a b-c"}]\n', "json")  # framed whole
    assert array is not None and b"\nu12\n" in array and b"\nb-c\n" in array
    assert word_test(Forgotten(["u1"]))(array)  # type: ignore[misc]  # inside u12: read
    assert not word_test(Forgotten(["u3"]))(array)  # type: ignore[misc]
    assert word_test(Forgotten(["a b"]))(array)  # type: ignore[misc]  # "a" ends, "b" starts one
    assert not word_test(Forgotten(["b a"]))(array)  # type: ignore[misc]
    assert word_test(Forgotten(["!!"])) is None  # no word to rule a file out by
    many = [f"v{n}" for n in range(20)]  # past a few ids, one pass for all
    assert not word_test(Forgotten(many))(array)  # type: ignore[misc]
    assert word_test(Forgotten([*many, "b-c"]))(array)  # type: ignore[misc]
    assert word_test(Forgotten([*many, "a b"]))(array)  # type: ignore[misc]
    # JSON lines lose a record only where a line holds the id as whole words: a filter.
    lines = words_of(b'{"user_id":"u12","n":"a b-c"}\n', "json")
    assert lines is not None and lines[:1] == b"F" and len(lines) < 200
    assert word_test(Forgotten(["u12"]))(lines)  # type: ignore[misc]
    assert not word_test(Forgotten(["u1", *many]))(lines)  # type: ignore[misc]
    assert word_test(Forgotten(["b-c a"]))(lines)  # type: ignore[misc]  # (its words, any order)


def test_the_words_are_those_of_the_texts_whose_search_decides() -> None:
    """A gzip stream's output, an Avro file's blocks inflated: not the deflated bytes nor an
    Avro header (a bid file's summary cost ≈ 10 ms of CPU a MB when it held the random
    words of its deflated bytes too). Those are searched only where the texts hold an id."""
    body = b'[{"user_id":"u12","n":"a b-c"}]\n'
    assert words_of(gzip.compress(body, mtime=0), "json") == words_of(body, "json")
    schema = {"type": "record", "name": "R", "fields": [{"name": "note", "type": "string"}]}
    out = io.BytesIO()
    records = [{"note": f"note-{n} of user u{n % 7}"} for n in range(300)]
    marker = b"sync-marker-u999"  # 16 bytes: a word of the file, not of its records
    fastavro.writer(out, fastavro.parse_schema(schema), records, "deflate", sync_marker=marker)
    words = words_of(out.getvalue(), "avro")
    assert words is not None and b"\nu6\n" in words and b"\nnote-299\n" in words
    assert b"marker" not in words and b"avro" not in words  # (the header's "avro.codec")
    assert words == words_of(gzip.compress(out.getvalue(), mtime=0), "avro")
    assert not word_test(Forgotten(["u999"]))(words)  # type: ignore[misc]


def test_a_filters_hashes_are_the_same_computed_for_many_words_or_one(monkeypatch: Any) -> None:
    """A filter written by one process is read by another: a word's probes computed for
    a whole file at once must be those computed for the id alone, or a file holding it
    would be ruled out."""
    monkeypatch.setattr("advertisex.formats.scrubwords._BATCH_BYTES", 4096)  # many batches
    words = [b"u-%07d" % n for n in range(70_000)] + [b"x" * 5000, b"a", b"jos"]
    array = pa.array(words, pa.large_binary())
    hashed = [pair for first, step in _hashes_of(array) for pair in zip(first, step, strict=True)]
    picked = [0, 1, 65_535, 65_536, 69_999, 70_000, 70_001, 70_002]
    assert [(int(a), int(b)) for a, b in (hashed[i] for i in picked)] == [
        _word_hashes(words[i]) for i in picked
    ]
    assert _word_hashes(b"u1") == (0xD0BC213924A631D5, 0xF0DE0A2E4CC21005)  # pinned for good
    # A word longer than a filter hashes keeps the file's words instead (no memory bomb).
    long = words_of(b'{"user_id":"u1","n":"' + b"a" * 70_000 + b'"}\n', "json")
    assert long is not None and long[:1] == b"W" and word_test(Forgotten(["u1"]))(long)  # type: ignore[misc]


def _zone(root: Path, files: list[tuple[Segment, bytes]]) -> LandingZone:
    zone = LandingZone(root)
    for segment, data in files:
        path = root / segment.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return zone


def _erase(zone: LandingZone, asked: list[str]) -> tuple[Any, ...]:
    report = ForgetReport("e", len(asked))
    judged: dict[str, set[int]] = {}
    removed = scrub_landing(zone, Forgotten(asked), report, None, judged)
    files = _files_under(zone.root, leaving_out="_index")
    return removed, report.segments, dict(report.rows), report.found, judged, files


def _files_under(root: Path, leaving_out: str | None = None) -> list[tuple[str, bytes]]:
    """(name under ``root``, bytes) of every file there, sorted; none of a folder
    ``leaving_out`` (the landing zone's ingest index)."""
    return sorted(
        (str(p.relative_to(root)), p.read_bytes())
        for p in root.rglob("*")
        if p.is_file() and leaving_out not in p.parts
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files_of_a_zone, ids_asked, ids_asked)
def test_an_erasure_that_skips_by_words_equals_the_full_scan(
    tmp_path_factory: Any, files: list[tuple[Segment, bytes]], first: list[str], second: list[str]
) -> None:
    """Two erasures in a row: the second reads only what the words kept by the first do not
    rule out, and leaves every file, count and judgement as a full scan does."""
    base = tmp_path_factory.mktemp("words")
    kept = _zone(base / "kept", files)
    full = _zone(base / "full", files)
    full.summaries = lambda version: None  # type: ignore[method-assign]
    assert _erase(kept, first) == _erase(full, first)
    assert _erase(kept, second) == _erase(full, second)
    shutil.rmtree(base)


def _archived(root: Path, files: list[tuple[Segment, bytes]]) -> Any:
    """Settings whose ``retention.archive`` holds ``files`` as retention copies them."""
    _zone(root / "archive" / "landing", files)
    retention = SimpleNamespace(archive=str(root / "archive"))
    return SimpleNamespace(retention=retention, scale=None, words_dir=root / "words")


def _erase_archive(settings: Any, asked: list[str]) -> tuple[Any, ...]:
    report = ForgetReport("e", len(asked))
    removed = scrub_archived_segments(settings, Forgotten(asked), report)
    files = _files_under(Path(settings.retention.archive))
    return removed, dict(report.rows), report.found, files


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files_of_a_zone, ids_asked, ids_asked)
def test_an_erasure_of_the_archive_that_skips_by_words_equals_the_full_scan(
    tmp_path_factory: Any, files: list[tuple[Segment, bytes]], first: list[str], second: list[str]
) -> None:
    """The segments ``retention.archive`` holds are skipped by their words as the landing
    zone's are, and the second erasure leaves every file and count as a full scan does."""
    base = tmp_path_factory.mktemp("archive")
    kept, full = _archived(base / "kept", files), _archived(base / "full", files)
    for asked in (first, second):
        shutil.rmtree(full.words_dir, ignore_errors=True)  # no words: every file read
        assert _erase_archive(kept, asked) == _erase_archive(full, asked)
    shutil.rmtree(base)


def test_an_archived_segment_is_read_again_only_when_its_words_may_hold_an_id(
    tmp_path: Path, monkeypatch: Any
) -> None:
    name = "clicks/2026-12-07/00/20261207T000000-a.csv"
    header = b"timestamp,user_id,campaign_id,event_type\n"
    data = header + b"1,u1,c,click\n1,u2,c,click\n"
    settings = _archived(tmp_path, [(Segment("clicks", name, 0), data)])
    read: list[str] = []
    reading = _Archive.read
    monkeypatch.setattr(_Archive, "read", lambda self, s: read.append(s.name) or reading(self, s))

    def erase(*asked: str) -> int:
        read.clear()
        scrub_archived_segments(settings, Forgotten(asked), ForgetReport("e", 1))
        return len(read)

    assert erase("nobody") == 1  # read, and its words kept
    assert erase("nobody-else") == 0  # ruled out by them
    assert erase("u2") == 1  # its words hold u2: read, and the row erased
    path = tmp_path / "archive" / "landing" / name
    assert path.read_bytes() == header + b"1,u1,c,click\n"
    assert erase("u3") == 1  # rewritten: read again (its old words may be the id)
    assert erase("u4") == 0
    path.write_bytes(header + b"1,u5,c,click\n")  # copied back, replaced: another file
    assert erase("u5") == 1 and path.read_bytes() == header


class _Store:
    """An object store whose HEAD answers an ETag, the MD5 of the object's bytes (S3's for a
    PUT in one part), as a PyArrow filesystem: fsspec's in-memory one through Arrow."""

    type_name = "test-store"

    def __init__(self) -> None:
        import fsspec
        import pyarrow.fs as pafs

        self.fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem("memory")))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)

    def open_input_file(self, path: str) -> Any:
        import hashlib

        with self.fs.open_input_stream(path, compression=None) as stream:
            data = bytes(stream.readall())
        etag = f'"{hashlib.md5(data).hexdigest()}"'.encode()
        head = pa.KeyValueMetadata({"Content-Length": str(len(data)).encode(), "ETag": etag})
        return contextlib.nullcontext(SimpleNamespace(metadata=lambda: head))


def _in_store(base: str, files: list[tuple[Segment, bytes]], words: Path | None) -> Any:
    from advertisex.landing.zone import ObjectStoreLandingZone

    store = _Store()
    for segment, data in files:
        with store.fs.open_output_stream(f"{base}/{segment.name}", compression=None) as out:
            out.write(data)
    return ObjectStoreLandingZone(f"memory://{base}", store, base, words)


def _erase_store(zone: Any, asked: list[str]) -> tuple[Any, ...]:
    import pyarrow.fs as pafs

    report = ForgetReport("e", len(asked))
    judged: dict[str, set[int]] = {}
    removed = scrub_landing(zone, Forgotten(asked), report, None, judged)
    files = []
    for info in zone.fs.get_file_info(pafs.FileSelector(zone.base, recursive=True)):
        if info.type == pafs.FileType.File and "/_index/" not in info.path:
            with zone.fs.open_input_stream(info.path, compression=None) as stream:
                files.append((info.path[len(zone.base) :], bytes(stream.readall())))
    return removed, report.segments, dict(report.rows), report.found, judged, sorted(files)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files_of_a_zone, ids_asked, ids_asked)
def test_an_erasure_of_an_object_store_that_skips_by_words_equals_the_full_scan(
    tmp_path_factory: Any, files: list[tuple[Segment, bytes]], first: list[str], second: list[str]
) -> None:
    """A landing zone on an object store keeps its files' words under their ETags: two
    erasures in a row leave every object, count and judgement as a full scan does."""
    base = tmp_path_factory.mktemp("store")
    kept = _in_store(f"{base}/kept", files, base / "words.db")
    full = _in_store(f"{base}/full", files, None)
    for asked in (first, second):
        assert _erase_store(kept, asked) == _erase_store(full, asked)
    shutil.rmtree(base)


def test_an_object_is_read_again_only_when_its_words_may_hold_an_id(
    tmp_path: Path, monkeypatch: Any
) -> None:
    name = "impressions/2026-12-07/00/20261207T000000-a.ndjson"
    base = f"{tmp_path}/bucket"
    zone = _in_store(
        base, [(Segment("impressions", name, 0), b'{"user_id":"u1"}\n')], tmp_path / "w"
    )
    read: list[str] = []
    reading = zone.read
    monkeypatch.setattr(zone, "read", lambda s: read.append(s.name) or reading(s))

    def erase(*asked: str) -> int:
        read.clear()
        scrub_landing(zone, Forgotten(asked), ForgetReport("e", 1), None)
        return len(read)

    assert erase("nobody") == 1  # read, and its words kept under its ETag
    assert erase("nobody-else") == 0  # ruled out by them
    with zone.fs.open_output_stream(f"{base}/{name}") as out:
        out.write(b'{"user_id":"u2"}\n')  # replaced: the same size, another ETag
    assert erase("u2") == 1 and zone.read(Segment("impressions", name, 0)) == b""
    assert erase("u3") == 1  # rewritten by the erasure: read again next time
    assert erase("u4") == 0


def test_a_summary_of_other_bytes_is_never_used(tmp_path: Path, monkeypatch: Any) -> None:
    """Rewritten by an erasure, replaced behind its back, copied back by a restore, its
    database damaged: the file is read again, never ruled out by what it held before."""
    monkeypatch.setattr("advertisex.runners.forget._KEPT_AT_ONCE", 0)  # written as found
    name = "impressions/2026-12-07/00/20261207T000000-a.ndjson"
    zone = _zone(tmp_path / "landing", [(Segment("impressions", name, 0), b'{"user_id":"u1"}\n')])
    read: list[str] = []
    reading = zone.read
    monkeypatch.setattr(zone, "read", lambda s: read.append(s.name) or reading(s))

    def erase(*asked: str) -> int:
        read.clear()
        report = ForgetReport("e", 1)
        scrub_landing(zone, Forgotten(asked), report, None)
        return len(read)

    assert erase("nobody") == 1  # read, and its words kept
    assert erase("nobody-else") == 0  # ruled out by them
    path = zone.root / name
    stat = path.stat()
    path.write_bytes(b'{"user_id":"u2"}\n')  # the same size, its times put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert erase("u2") == 1  # its change time moved: read (and the record erased)
    assert path.read_bytes() == b""
    assert erase("u3") == 0  # rewritten by the erasure: the words of what it wrote
    copy = path.with_name("copy")
    shutil.copy2(path, copy)
    os.replace(copy, path)  # a restore: the same bytes, another file
    assert erase("u5") == 1
    database = zone.root / "_index" / "blake3" / "words.db"
    database.write_bytes(b"not a database")
    assert erase("u6") == 1  # damaged: read, never an error, and the database made again
    assert erase("u7") == 0


def test_a_file_set_aside_as_unreadable_is_skipped_by_its_words(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A file under ``landing/_unreadable`` is searched line by line as it is: its words
    (a filter: a line goes only where it holds the id as whole words) rule it out too."""
    name = f"{UNREADABLE}/impressions/2026-12-07/00/20261207T000000-a.ndjson.gz"
    data = b'\x1f\x8b{"user_id":"u1"}\n{"user_id":"u22", "n": "xu3x"}\n'
    zone = _zone(tmp_path / "landing", [(Segment("impressions", name, 0), data)])
    read: list[str] = []
    reading = zone.read
    monkeypatch.setattr(zone, "read", lambda s: read.append(s.name) or reading(s))

    def erase(*asked: str) -> int:
        read.clear()
        scrub_landing(zone, Forgotten(asked), ForgetReport("e", 1), None)
        return len(read)

    assert erase("nobody") == 1  # read, and its words kept
    assert erase("u3") == 0  # inside a word only: no line of it goes
    assert (zone.root / name).read_bytes() == data
    assert erase("u22") == 1 and b"u22" not in (zone.root / name).read_bytes()
    assert erase("u5") == 0  # the words of what that erasure wrote
    assert erase("u1") == 1 and (zone.root / name).read_bytes() == b""


def test_the_words_of_a_file_an_erasure_rewrote_are_not_kept(tmp_path: Path) -> None:
    """A summary holds the words of its file as read: the forgotten id's among them, until
    the erasure that rewrites the file forgets them (and SQLite overwrites the row)."""
    header = b"timestamp,user_id,campaign_id,event_type,note\n"
    files = [
        (Segment("clicks", f"clicks/2026-12-07/00/{n}.csv", 0), header + row)
        for n, row in enumerate([b"1,u1,c,click,secret\n", b"1,u2,c,click,\n"])
    ]
    zone = _zone(tmp_path / "landing", files)
    scrub_landing(zone, Forgotten(["nobody"]), ForgetReport("e", 1), None)
    summaries = zone.summaries(WORDS_VERSION)
    assert summaries is not None

    def kept() -> dict[str, bytes]:
        found = {}
        for name in summaries.known():
            identity = zone.identity(Segment("clicks", name, 0))
            assert identity is not None
            found[name] = summaries.words(name, identity) or b""
        return found

    assert any(b"\nu1\n" in words for words in kept().values())
    scrub_landing(zone, Forgotten(["u1"]), ForgetReport("e", 1), None)
    # The rewritten file's words are those of what was written (its row overwritten).
    assert summaries.known() == {segment.name for segment, _ in files}
    assert not any(b"u1" in words for words in kept().values())
    assert b"secret" not in (zone.root / "_index" / "blake3" / "words.db").read_bytes()


def test_a_file_is_cut_into_parts_between_words(monkeypatch: Any) -> None:
    """A long file is read a part at a time, each cut after a byte of no word: the words
    are those of the file read whole (a run longer than a part makes a longer part): the
    Python code, where the compiled helpers were not built."""
    monkeypatch.setattr("advertisex.formats.scrubwords.distinct_words", lambda *_: None)
    data = b'{"user_id":"u-0001","n":"' + b"w" * 40 + b' tail"}\n' + b'{"x":"a.b-c@d"}\n' * 5
    whole = words_of(data, "csv")
    monkeypatch.setattr("advertisex.formats.scrubwords._PART", 7)
    assert words_of(data, "csv") == whole
    assert whole is not None and b"\nu-0001\n" in whole and b"\n" + b"w" * 40 + b"\n" in whole
