"""Decoders run under a time and a memory budget: hostile bytes cannot hang or exhaust us."""

from __future__ import annotations

import gzip
import os
import time
from typing import Any

import pyarrow as pa
import pytest

from advertisex.formats.avrofmt import frame_avro
from advertisex.formats.bounded import (
    DecodeLimits,
    DecodeRefused,
    decode_bounded,
    decode_bounded_each,
)
from advertisex.formats.jsonfmt import frame_json
from tests.hostile import gzip_bomb, poison_avro

TIGHT = DecodeLimits(seconds=3.0, seconds_per_mib=0.0, memory_bytes=256 << 20)


def spinning_decoder(data: bytes) -> pa.Table:
    while True:
        time.sleep(0.01)


def crashing_decoder(data: bytes) -> pa.Table:
    os.abort()


def failing_decoder(data: bytes) -> pa.Table:
    raise ValueError("not this one")


def test_the_poison_avro_is_read_by_the_salvage_path_once_the_fast_path_overruns() -> None:
    frame = decode_bounded(frame_avro, poison_avro(), TIGHT)
    assert frame.column("auction_id").to_pylist() == ["a1000"]
    assert frame.column("frame_error").to_pylist() == [None]


def test_a_decoder_over_its_time_budget_is_stopped() -> None:
    with pytest.raises(DecodeRefused) as refused:
        decode_bounded(spinning_decoder, b"x", DecodeLimits(seconds=0.5, memory_bytes=1 << 30))
    assert refused.value.code == "decode_timeout"


def hungry_decoder(data: bytes) -> pa.Table:
    hoard = [bytearray(16 << 20) for _ in range(128)]  # 2 GiB, touched
    raise AssertionError(len(hoard))


def test_a_decoder_over_its_memory_budget_is_stopped() -> None:
    with pytest.raises(DecodeRefused) as refused:
        decode_bounded(hungry_decoder, b"x", TIGHT)
    assert refused.value.code == "decode_memory"
    assert "256 MiB" in refused.value.message


def test_a_gzip_bomb_is_refused_before_it_inflates() -> None:
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 2 << 20
    with pytest.raises(DecodeRefused) as refused:  # 200× its size, not a gigabyte
        decode_bounded(frame_json, bomb, DecodeLimits(seconds=10, memory_bytes=1 << 30))
    assert refused.value.code == "decode_memory"
    assert "inflates past" in refused.value.message


def test_a_small_file_may_not_swell_to_the_whole_memory_budget() -> None:
    roomy = DecodeLimits(memory_bytes=8 << 30)
    assert roomy.budget(1 << 20).memory_bytes == 1 << 30  # 1 MiB: a gigabyte, not eight
    assert roomy.budget(100 << 20).memory_bytes == 6400 << 20
    assert roomy.budget(1 << 30).memory_bytes == 8 << 30


def test_a_crashing_decoder_is_reported_and_the_next_job_gets_a_fresh_worker() -> None:
    # Time as TIGHT, memory not what is tested: a worker kept from an earlier test (the gzip
    # bomb's inflating) may already hold more than TIGHT's 256 MiB when the crash is seen.
    tight_time = DecodeLimits(seconds=3.0, seconds_per_mib=0.0, memory_bytes=2 << 30)
    with pytest.raises(DecodeRefused) as refused:
        decode_bounded(crashing_decoder, b"x", tight_time)
    assert refused.value.code == "decoder_crashed"
    # a roomy time budget: the fresh worker's first job imports the JSON framing, which on
    # a loaded machine can take longer than TIGHT's 3 s (seen at a load of 8)
    roomy = DecodeLimits(seconds=120.0, seconds_per_mib=0.0, memory_bytes=256 << 20)
    frame = decode_bounded(frame_json, b'{"a": 1}\n', roomy)
    assert frame.num_rows == 1


def test_a_decoder_error_is_raised_as_it_is() -> None:
    with pytest.raises(ValueError, match="not this one"):
        decode_bounded(failing_decoder, b"x", TIGHT)


def test_in_process_decoding_when_isolation_is_off() -> None:
    frame = decode_bounded(frame_json, b'{"a": 1}\n', DecodeLimits(isolated=False))
    assert frame.column("raw").to_pylist() == ['{"a": 1}\n']


@pytest.mark.parametrize(
    ("data", "as_views"),
    [
        (b'{"a":1}\n{"a":"\xc3\xa9"}\n{"a":3}', True),  # lines are slices of the bytes
        (b'{"a":1}\n\n{"cut":\n{"a":2} {"a":3}\n', False),  # blank and re-framed lines
        (b'\xef\xbb\xbf{"a":1}\n', False),  # the BOM is cut off: another buffer
        (gzip.compress(b'{"a":1}\n{"a":2}\n'), False),  # framed from the inflated bytes
    ],
    ids=["ndjson", "reframed", "bom", "gzip"],
)
def test_a_frame_of_slices_comes_back_as_offsets_and_reads_the_same(
    data: bytes, as_views: bool
) -> None:
    """The workers hand a frame whose texts are slices of the segment back as offsets into
    the caller's bytes; whichever way it travels, it equals the frame made in-process."""
    from advertisex.formats.bounded import TextViews, decode_for_handoff

    handed = decode_for_handoff(frame_json, data)
    assert isinstance(handed, TextViews) is as_views
    expected = frame_json(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    assert decode_bounded(frame_json, data, DecodeLimits()).equals(expected)


def framed_and_pandas_loaded(data: bytes) -> pa.Table:
    """Frame ``data`` as JSON (and a CSV beside it), then say whether pandas got loaded."""
    import sys

    from advertisex.formats.csvfmt import frame_csv

    frame = frame_json(data)
    frame_csv(b"timestamp,user_id,campaign_id,event_type\n1,u1,c1,click\n")
    loaded = "pandas" in sys.modules
    return frame.append_column("pandas", pa.array([loaded] * frame.num_rows))


def test_decoder_workers_frame_without_pandas() -> None:
    """Arrow asks pandas whether a list is a pandas object; the workers refuse it (33 MiB
    and 0.25 s of CPU in the forkserver) and frame the same records."""
    data = b'{"a":1}\n{"a": 2}\nnot json\n[1]\n'
    framed = decode_bounded(framed_and_pandas_loaded, data, DecodeLimits())
    assert framed.column("pandas").to_pylist() == [False] * framed.num_rows
    assert framed.drop_columns(["pandas"]).equals(frame_json(data))


def allocator_settings(data: bytes) -> pa.Table:
    """The allocators a decoder worker runs with: polars' jemalloc configuration and the
    backend of Arrow's default pool."""
    return pa.table(
        {
            "polars": [os.environ.get("_RJEM_MALLOC_CONF")],
            "arrow": [pa.default_memory_pool().backend_name],
        }
    )


# What the decoders' worker says of its allocators, asked from a fresh interpreter: a process
# has one forkserver, preloaded by the pool that started it, and in this test's process
# another test's pool (tests/util/test_isolate.py) may have started it without the decoders'
# modules (it failed so, by the order pytest-xdist handed the tests out).
_ASK_A_DECODER = """
import json, sys
sys.path.insert(0, {root!r})
import polars  # as the processor may have: its allocator's defaults go into the environment
from advertisex.formats.bounded import DecodeLimits, decode_bounded
from tests.formats.test_bounded import allocator_settings
print(json.dumps(decode_bounded(allocator_settings, b"", DecodeLimits()).to_pylist()[0]))
"""


def test_decoder_workers_give_freed_memory_back() -> None:
    """The forkserver configures polars' jemalloc (decay 0: freed pages go back at once) and
    Arrow's pool (jemalloc) before either library is imported — a worker kept ≈ 150 MiB
    after a bid segment — also when the processor imported polars first (whose defaults it
    then inherits); a user's own setting is kept."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from advertisex.formats.preload import DECODER_PRELOAD
    from advertisex.util.allocator import POLARS_RETURNS_MEMORY, polars_returning_memory

    preload = list(DECODER_PRELOAD)
    first_library = min(preload.index(m) for m in ("pyarrow", "duckdb"))
    assert preload.index("advertisex.formats.worker_memory") < first_library
    root = str(Path(__file__).resolve().parents[2])
    asked = subprocess.run(
        [sys.executable, "-c", _ASK_A_DECODER.format(root=root)],
        capture_output=True,
        text=True,
        check=True,
    )
    settings = json.loads(asked.stdout)
    # polars puts its own defaults before it when it loads; jemalloc takes the last said
    if polars_returning_memory(os.environ.get("_RJEM_MALLOC_CONF")) is not None:
        assert settings["polars"].endswith(POLARS_RETURNS_MEMORY)
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL", "jemalloc") == "jemalloc":
        assert settings["arrow"] == "jemalloc"


SMALL_JSON = [b'{"a": %d}\n{"b": "x"}\nnot json\n' % i for i in range(3)]


def _framed_alone(decoder: Any, data: bytes) -> pa.Table | Exception:
    try:
        return decoder(data)
    except Exception as error:
        return error


def test_small_segments_framed_together_equal_each_framed_alone() -> None:
    """One job frames them all: JSON frames handed back as views, Avro frames of one schema
    as one table (``Packed``), a failing decoder's exception in its place."""
    from tests.hostile import avro_file, bad_typed_avro, bid

    jobs = [
        (frame_json, SMALL_JSON[0]),
        (frame_avro, avro_file([bid(1), bid(2)])),
        (frame_json, SMALL_JSON[1]),
        (failing_decoder, b"x"),
        (frame_avro, bad_typed_avro(n=4, bad=2)),
    ]
    framed = decode_bounded_each(jobs, DecodeLimits())
    for (decoder, data), frame in zip(jobs, framed, strict=True):
        alone = _framed_alone(decoder, data)
        if isinstance(alone, Exception):
            assert type(frame) is type(alone) and str(frame) == str(alone)
        else:
            assert isinstance(frame, pa.Table) and frame.equals(alone)
    avros = [(frame_avro, avro_file([bid(i)])) for i in range(4)]
    assert [f.to_pylist() for f in decode_bounded_each(avros, DecodeLimits())] == [
        frame_avro(data).to_pylist() for _, data in avros
    ]


def test_small_segments_go_to_a_worker_in_one_job(monkeypatch: pytest.MonkeyPatch) -> None:
    from advertisex.util.isolate import WorkerPool

    jobs: list[str] = []
    run = WorkerPool.run

    def counted(self: WorkerPool, budget: Any, fn: Any, *args: Any, **kw: Any) -> Any:
        jobs.append(fn.__name__)
        return run(self, budget, fn, *args, **kw)

    monkeypatch.setattr(WorkerPool, "run", counted)
    framed = decode_bounded_each([(frame_json, data) for data in SMALL_JSON], DecodeLimits())
    assert [frame.num_rows for frame in framed] == [3, 3, 3]
    assert jobs == ["decode_each_for_handoff"]


@pytest.mark.parametrize(
    ("culprit", "code"),
    [(spinning_decoder, "decode_timeout"), (crashing_decoder, "decoder_crashed")],
    ids=["spinning", "crashing"],
)
def test_a_decoder_that_stops_its_groups_job_is_named_and_the_others_kept(
    culprit: Any, code: str
) -> None:
    """The group's job overran (or its worker died): each is framed again alone, so the
    culprit is refused with its own code and its neighbours' records are all there."""
    limits = DecodeLimits(seconds=1.0, seconds_per_mib=0.0, memory_bytes=2 << 30)
    jobs = [(frame_json, SMALL_JSON[0]), (culprit, b"x"), (frame_json, SMALL_JSON[1])]
    first, refused, last = decode_bounded_each(jobs, limits)
    assert isinstance(refused, DecodeRefused) and refused.code == code
    assert isinstance(first, pa.Table) and first.equals(frame_json(SMALL_JSON[0]))
    assert isinstance(last, pa.Table) and last.equals(frame_json(SMALL_JSON[1]))


def test_a_cancelled_group_stops_the_batch() -> None:
    import threading

    from advertisex.errors import BatchCancelled

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(BatchCancelled):
        decode_bounded_each([(spinning_decoder, b"x"), (spinning_decoder, b"y")], TIGHT, cancel)


def test_framing_groups_are_runs_of_small_segments_within_their_bounds() -> None:
    from types import SimpleNamespace

    from advertisex.formats.decode import (
        GROUP_BYTES,
        GROUP_SEGMENTS,
        SMALL_SEGMENT_BYTES,
        framing_groups,
    )

    def sizes_of(sizes: list[int]) -> list[list[int]]:
        indexed = [(i, SimpleNamespace(size=n)) for i, n in enumerate(sizes)]
        return [[s.size for _, s in group] for group in framing_groups(indexed)]

    many = [10] * (GROUP_SEGMENTS + 1)
    assert sizes_of(many) == [[10] * GROUP_SEGMENTS, [10]]
    heavy = SMALL_SEGMENT_BYTES
    per_group = GROUP_BYTES // heavy
    assert sizes_of([heavy] * (per_group + 1)) == [[heavy] * per_group, [heavy]]
    assert sizes_of([heavy + 1, 5, heavy + 1, heavy + 1]) == [
        [heavy + 1],
        [5],
        [heavy + 1],
        [heavy + 1],
    ]
    assert sizes_of([]) == []


def test_a_groups_time_budget_is_bounded_whatever_a_segments_is() -> None:
    """A group that overruns is framed again segment by segment: its own budget is short,
    so a spinning decoder among small segments does not cost two whole budgets."""
    limits = DecodeLimits(seconds=30.0, seconds_per_mib=2.0)
    assert limits.budget(1 << 20).seconds == 32.0
    assert limits.group_budget(1 << 20).seconds == 7.0
    assert limits.group_budget(1 << 20, 0.2).seconds == pytest.approx(1.4)
    assert DecodeLimits(seconds=1.0).group_budget(0).seconds == 1.0
    assert limits.group_budget(1 << 20).memory_bytes == limits.budget(1 << 20).memory_bytes


def test_avro_containers_in_a_job_are_unzipped_and_framed_together() -> None:
    """A job of Avro containers only: each un-gzipped (a bomb refused in its place), then
    framed together (``avrofmt.frame_avro_each``), as each would be alone."""
    import gzip as gz

    from advertisex.formats.bounded import Packed, decode_each_for_handoff
    from tests.hostile import avro_file, bid

    plain = {
        "type": "record",
        "name": "Bid",
        "fields": [{"name": n, "type": ["null", "string"]} for n in ("auction_id", "user_id")],
    }
    first, second = (avro_file([bid(i), bid(i + 1)], schema=plain) for i in (0, 2))
    datas = [first, gz.compress(second), gzip_bomb(1 << 30), first]
    in_a_worker = decode_each_for_handoff([frame_avro] * len(datas), datas)
    assert not isinstance(in_a_worker, Packed)  # the bomb's refusal is among them
    here = decode_bounded_each([(frame_avro, d) for d in datas], DecodeLimits(isolated=False))
    for answers in (in_a_worker, here):
        refused = answers[2]
        assert isinstance(refused, DecodeRefused) and refused.code == "decode_memory"
        for data, answer in zip([first, second, None, first], answers, strict=True):
            if data is not None:
                assert isinstance(answer, pa.Table)
                assert answer.to_pylist() == frame_avro(data).to_pylist()


def test_a_damaged_gzip_stream_keeps_its_sound_members_and_says_where_the_rest_begins() -> None:
    from advertisex.formats.bounded import gunzip_if_needed

    twos = b"".join(b"two %d\n" % n for n in range(1000))
    first, second = gzip.compress(b"one\n" * 1000), gzip.compress(twos)
    assert gunzip_if_needed(first + second) == (b"one\n" * 1000 + twos, None)
    assert gunzip_if_needed(first + b"\0" * 512) == (b"one\n" * 1000, None)  # gzip's padding

    corrupt = bytearray(second)
    corrupt[len(corrupt) // 2] ^= 0xFF
    inflated, damage = gunzip_if_needed(first + bytes(corrupt) + first)
    # Nothing of the corrupt member: what it inflated before zlib noticed cannot be trusted.
    assert inflated == b"one\n" * 1000
    assert damage is not None and damage.at == len(first)
    assert "corrupt" in damage.message

    cut = first + second[:-20]  # the second member's end (and its checksum) missing
    inflated, damage = gunzip_if_needed(cut)
    assert inflated.startswith(b"one\n" * 1000 + b"two 0\n") and len(inflated) < 4000 + len(twos)
    assert damage is not None and damage.at == len(cut) and "cut short" in damage.message

    inflated, damage = gunzip_if_needed(first + b"PK\x03\x04 not gzip")
    assert inflated == b"one\n" * 1000
    assert damage is not None and damage.at == len(first) and "not gzip" in damage.message


@pytest.mark.parametrize("limits", [TIGHT, DecodeLimits(isolated=False)], ids=["worker", "here"])
def test_a_damaged_gzip_segment_frames_its_readable_part_and_one_record_for_the_rest(
    limits: DecodeLimits,
) -> None:
    import base64

    lines = b"".join(b'{"n":%d}\n' % n for n in range(300))
    first, second = gzip.compress(lines), bytearray(gzip.compress(lines))
    second[len(second) // 2] ^= 0xFF
    data = first + bytes(second)
    frame = decode_bounded(frame_json, data, limits)
    assert frame.num_rows == 301
    assert frame.slice(0, 300).equals(frame_json(lines))
    last = frame.slice(300).to_pylist()[0]
    assert last["source_position"] == 301
    assert last["frame_error"].startswith("gzip_damaged: the gzip member at byte")
    assert base64.b64decode(last["raw"].removeprefix("base64:")) == bytes(second)
