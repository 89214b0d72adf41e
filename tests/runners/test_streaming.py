"""A batch streamed through many small pieces on two workers equals the same batch in one
piece: the same rows in every table, the same duplicates and conflicts (across pieces
too), the same invalid traffic and the same accounts — and it holds no more than a
piece per worker at a time."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from advertisex.landing.zone import Segment
from advertisex.runners.embedded import plan_pieces
from tests.table_snapshots import CURATED, snapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 12, 0, 0, tzinfo=UTC)
PIECE = 100_000  # bytes: a third of an impression file


def _open(data: Path, **processor: Any) -> Any:
    import advertisex

    return advertisex.open(data_dir=data, processor=processor, correlation={"update_marts": False})


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A landing zone with duplicates, conflicts, invalid traffic and malformed records,
    and, landing last, re-sent and altered impressions of the first file."""
    from advertisex.synth.config import FaultConfig
    from advertisex.synth.generator import generate

    root = tmp_path_factory.mktemp("streaming")
    generate(
        root / "input", events=3000, seed=21, start=date(2026, 11, 10), faults=FaultConfig.demo()
    )
    # Few segments (each piece costs its own data files): the hourly files joined in
    # three impression files, one click file, and four bid files.
    hourly = sorted((root / "input" / "impressions").iterdir())
    for k in range(3):
        joined = b"".join(f.read_bytes() for f in hourly[k * 8 : (k + 1) * 8])
        (root / f"impressions-{k}.ndjson").write_bytes(joined)
    header, *rows = zip(
        *(f.read_text().split("\n", 1) for f in sorted((root / "input" / "clicks").iterdir())),
        strict=True,
    )
    (root / "clicks.csv").write_text(header[0] + "\n" + "".join(rows[0]))
    ax = _open(root / "data")
    ax.ingest([str(root / f"impressions-{k}.ndjson") for k in range(3)], source="impressions")
    ax.ingest([str(root / "clicks.csv")], source="clicks")
    ax.ingest([str(f) for f in sorted((root / "input" / "bids").iterdir())[:4]], source="bids")
    lines = hourly[0].read_bytes().splitlines(keepends=True)[:40]
    altered = []
    for line in lines[:10]:
        record = orjson.loads(line)
        record["cost"] = 99.0  # same id, another payload: a conflict
        altered.append(orjson.dumps(record) + b"\n")
    (root / "resent.ndjson").write_bytes(b"".join(lines[10:] + altered))
    ax.ingest([str(root / "resent.ndjson")], source="impressions")
    # Clicks of a user the impressions expose as invalid traffic (the crawler users of the
    # demo faults): invalid traffic too, whichever piece caught the user.
    crawler = orjson.loads((root / "input" / "truth.json").read_bytes())["ground_truth"][
        "bot_user_ids"
    ][0]
    clicks = "".join(f"2026-11-10T0{h}:30:00Z,{crawler},cmp-001,click\n" for h in range(3))
    (root / "ivt.csv").write_text("timestamp,user_id,campaign_id,event_type\n" + clicks)
    ax.ingest([str(root / "ivt.csv")], source="clicks")
    return root / "data"


def _run(landed: Path, target: Path, **processor: Any) -> tuple[Any, Any]:
    shutil.copytree(landed / "landing", target / "landing")
    ax = _open(target, **processor)
    return ax, ax.runner.process(now=NOW)


def test_a_batch_in_small_pieces_on_two_workers_equals_it_in_one(
    landed: Path, tmp_path: Path
) -> None:
    whole_ax, whole = _run(landed, tmp_path / "whole", piece_bytes=1 << 30, workers=1)
    # Pieces smaller than a segment: segments are sliced too.
    pieces_ax, pieces = _run(landed, tmp_path / "pieces", piece_bytes=PIECE, workers=2)

    assert pieces.batches == whole.batches == [whole.batches[0]]  # one batch, one commit
    assert pieces.accounts == whole.accounts
    impressions = whole.accounts["impressions"]
    assert impressions.duplicates >= 40 and impressions.conflicts >= 10
    assert impressions.filtered > 0 and whole.accounts["clicks"].filtered > 0
    assert sum(a.quarantined for a in whole.accounts.values()) > 0
    _assert_same_tables(whole_ax, pieces_ax)
    # Each piece wrote its own files; all of them were committed together.
    assert len(pieces_ax.lake.data_files("curated.impressions")) > len(
        whole_ax.lake.data_files("curated.impressions")
    )


def test_the_keys_earlier_pieces_remember_are_kept_in_mapped_files(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merged parts of the keys a batch remembers of its earlier pieces go to mapped files
    (only their hashes stay in memory) in the lake's spill directory, and the verdicts stay
    those of one piece."""
    from advertisex.runners import committed, embedded

    stored: list[int] = []
    places: set[Any] = set()
    mapped = committed.MappedRows._mapped

    def spied(self: committed.MappedRows, parts: Any, schema: Any) -> Any:
        rows = mapped(self, parts, schema)
        stored.append(rows.num_rows)
        places.add(self.directory)
        return rows

    whole_ax, whole = _run(landed, tmp_path / "whole", piece_bytes=1 << 30, workers=1)
    monkeypatch.setattr(committed.MappedRows, "_mapped", spied)
    monkeypatch.setattr(embedded, "EARLIER_STORED_ROWS_MIN", 64)
    pieces_ax, pieces = _run(landed, tmp_path / "pieces", piece_bytes=PIECE, workers=2)

    assert stored and min(stored) >= 64  # merged parts went to files, small ones did not
    assert places == {pieces_ax.settings.spill_dir}  # the lake's disk, not a tmpfs maybe
    assert not list(pieces_ax.settings.spill_dir.iterdir())  # each unlinked once mapped
    assert pieces.accounts == whole.accounts
    assert whole.accounts["impressions"].duplicates >= 40
    _assert_same_tables(whole_ax, pieces_ax)


def test_what_the_pieces_set_aside_is_written_once_a_batch(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine and the invalid traffic each piece sets aside are gathered across the
    batch: a file a day for the batch, not a file a piece — and written as soon as they
    hold ``GATHERED_BYTES`` (a bound on what is held)."""
    from advertisex.runners import embedded

    gathered_ax, _ = _run(landed, tmp_path / "gathered", piece_bytes=PIECE, workers=2)
    monkeypatch.setattr(embedded, "GATHERED_BYTES", 1)  # written at once: a file a piece
    each_ax, _ = _run(landed, tmp_path / "each", piece_bytes=PIECE, workers=2)

    for name in embedded.GATHERED:
        days = gathered_ax.query(
            f"select count(distinct cast({'ingest_time' if 'quarantine' in name else 'event_time'}"
            f" as date)) as n from {name}"
        )["n"][0].as_py()
        assert len(gathered_ax.lake.data_files(name)) == days, name
        assert len(each_ax.lake.data_files(name)) > days, name
    _assert_same_tables(each_ax, gathered_ax)


def test_each_slice_lets_go_of_the_mapped_pages_it_touched(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After each slice's dedupe the pages of mapped files the slice touched (its texts,
    the stored keys it looked up) leave the process (util.mapped.release_pages)."""
    from advertisex.runners import embedded
    from advertisex.runners.embedded import EmbeddedRunner

    calls = {"release": 0, "pieces": 0}
    piece = EmbeddedRunner._piece

    def counted(*args: Any) -> Any:
        calls["pieces"] += 1
        return piece(*args)

    def released() -> int:
        calls["release"] += 1
        return 0

    monkeypatch.setattr(EmbeddedRunner, "_piece", counted)
    monkeypatch.setattr(embedded, "release_pages", released)
    _, report = _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
    assert report.records_in > 0
    # Segments bigger than a piece are sliced: more slices than pieces.
    assert calls["release"] > calls["pieces"] > 1


def _assert_same_tables(want_ax: Any, got_ax: Any) -> None:
    names = [*CURATED, "ops.batches"]
    skip = {"ops.batches": ["started_at", "committed_at"]}
    want, got = snapshot(want_ax, names), snapshot(got_ax, names)
    for name in names:
        for row in want[name] + got[name]:
            for column in skip.get(name, []):
                row.pop(column, None)
        assert got[name] == want[name], name


def test_no_more_pieces_are_in_flight_than_workers(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.runners.embedded import EmbeddedRunner

    in_flight, most = 0, 0
    lock = threading.Lock()
    piece = EmbeddedRunner._piece

    def counted(*args: Any) -> Any:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        try:
            return piece(*args)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(EmbeddedRunner, "_piece", counted)
    _, report = _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
    assert report.records_in > 0
    assert most == 2  # both workers busy, never more: memory is a piece per worker


def test_the_pieces_kernels_share_the_cores_between_the_workers(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers whose kernel statements each ran on every core made twice as many
    engine threads as cores: each worker's statements run on its share."""
    from advertisex.runners import embedded
    from advertisex.util import engine

    standardize = embedded.standardize_source
    threads: set[int] = set()

    def noted(*args: Any) -> Any:
        setting = engine.run("select current_setting('threads') as n").column("n")[0]
        threads.add(int(setting.as_py()))
        return standardize(*args)

    monkeypatch.setattr(embedded, "standardize_source", noted)
    monkeypatch.setattr(embedded, "usable_cores", lambda: 6)  # not this machine's default
    _, report = _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
    assert report.records_in > 0
    assert threads == {3}


FROZEN_PER_BATCH = """
import gc, sys
import advertisex
from advertisex.runners import embedded

freezes, batches = [], []
freeze, transform = gc.freeze, embedded.EmbeddedRunner.transform

def counted():
    freeze()
    freezes.append(gc.get_freeze_count())

def noted(self, *args):
    batches.append(len(freezes))
    return transform(self, *args)

gc.freeze, embedded.EmbeddedRunner.transform = counted, noted
ax = advertisex.open(data_dir=sys.argv[1], processor={"batch_max_bytes": 200_000},
                     correlation={"update_marts": False})
ax.runner.process()
assert len(batches) >= 3, batches
print(*batches[:2], *freezes)
"""


@pytest.mark.slow
def test_the_heap_the_process_started_with_is_frozen_once(landed: Path, tmp_path: Path) -> None:
    """The cycle collector's passes skip what the process made before its first batch's
    pieces run (its modules: they held the GIL both workers need), frozen at that batch
    only: what later batches make stays collectable in a processor that runs for months."""
    import subprocess
    import sys

    shutil.copytree(landed / "landing", tmp_path / "run" / "landing")
    done = subprocess.run(
        [sys.executable, "-c", FROZEN_PER_BATCH, str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    first, second, *frozen = (int(c) for c in done.stdout.split())
    # The runner's modules, then the catalog's (loaded on the thread that opens the tables
    # beside the first pieces), frozen during the first batch, never after.
    assert first == 0 and second == len(frozen) == 2
    assert frozen[-1] > 100_000


def test_segments_are_mapped_and_the_allocator_bound_before_the_pieces(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each segment is read once: one framed alone is mapped, not read (its decoder worker
    maps the same pages), small ones framed together are read; and glibc is told to give
    large freed blocks back before the pieces' threads start."""
    from advertisex.formats.decode import SMALL_SEGMENT_BYTES
    from advertisex.landing.zone import LandingZone
    from advertisex.runners import embedded

    kinds: dict[str, list[str]] = {}

    def spied(read: Any) -> Any:
        def reading(self: LandingZone, segment: Segment) -> Any:
            data = read(self, segment)
            kinds.setdefault(segment.name, []).append(type(data).__name__)
            return data

        return reading

    bound: list[bool] = []
    monkeypatch.setattr(LandingZone, "read_mapped", spied(LandingZone.read_mapped))
    monkeypatch.setattr(LandingZone, "read", spied(LandingZone.read))
    monkeypatch.setattr(embedded, "bound_held_memory", lambda: bound.append(True))
    _, report = _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
    assert report.records_in > 0 and bound
    sizes = {s.name: s.size for s in _open(tmp_path / "run").landing.segments()}
    assert sorted(kinds) == sorted(sizes) and all(len(k) == 1 for k in kinds.values())
    big = [name for name, size in sizes.items() if size > SMALL_SEGMENT_BYTES]
    assert big and all(kinds[name] == ["MappedFile"] for name in big)
    assert any(kind == ["bytes"] for kind in kinds.values())  # the small bid files, together


def test_the_tables_open_beside_the_first_pieces(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new lake's tables are created on a thread of their own while the first pieces
    frame their segments (which needs none of them), not before the pieces start; no piece
    creates one itself, and every table the batch may write exists after it."""
    from advertisex.lake.tables import Lake
    from advertisex.runners import embedded

    framing = threading.Event()
    frame_group = embedded.EmbeddedRunner._frame_group

    def noted(self: Any, run: Any, group: Any) -> Any:
        framing.set()
        return frame_group(self, run, group)

    creators: dict[str, str] = {}
    framed_first: list[bool] = []
    create = Lake._create

    def created(self: Lake, spec: Any) -> Any:
        creators[spec.qualified] = threading.current_thread().name
        if spec.qualified == "curated.impressions":  # the pieces frame meanwhile
            framed_first.append(framing.wait(timeout=20))
        return create(self, spec)

    monkeypatch.setattr(embedded.EmbeddedRunner, "_frame_group", noted)
    monkeypatch.setattr(Lake, "_create", created)
    _, report = _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
    assert report.records_in > 0
    assert framed_first == [True]
    written = embedded._written_tables({"impressions", "clicks", "bids"})
    assert set(written) <= set(creators)
    # Nor did the batch's rules make the catalog to find no table in it (no dimensions, no
    # invalid-traffic users of committed batches): the tables' thread made them all.
    assert all(creators[n] == "tables" for n in written)


def test_a_failing_piece_fails_the_batch_and_commits_nothing(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.runners import embedded

    calls = 0
    standardize = embedded.standardize_source

    def fails_third(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("a kernel broke")
        return standardize(*args)

    monkeypatch.setattr(embedded, "standardize_source", fails_third)
    with pytest.raises(RuntimeError, match="a kernel broke"):
        _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)  # no deadlock either
    ax = _open(tmp_path / "run")
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 0}]
    assert len(ax.runner.pending()) == len(ax.landing.segments())
    # The pieces done before (and beside) the failing one wrote files: nobody's, removed.
    assert not list((tmp_path / "run" / "warehouse").rglob("*.parquet"))


_TABLE_SOURCE = {"impressions": "impressions", "clicks": "clicks", "conversions": "clicks"}


def _source_of_tables(names: Any) -> str:
    """The source of the first curated table among ``names`` (``bids`` for the bid requests)."""
    for name in names:
        table = name.split(".", 1)[-1]
        if table in _TABLE_SOURCE:
            return _TABLE_SOURCE[table]
        if table == "bid_requests":
            return "bids"
    return "gathered"


@pytest.mark.parametrize(
    ("step", "source", "nth"),
    [
        ("frame", "clicks", 1),  # a later wave's first piece, framed beside the impressions
        ("dedupe", "impressions", 3),  # a later piece, while the next ones wait for their turn
        ("ivt", "impressions", 2),  # the typo of the session that found this
        ("ivt", "clicks", 1),  # once the impressions' gate opened
        ("write", "impressions", 1),
    ],
)
def test_a_piece_raising_at_any_step_ends_the_batch_with_its_error(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, source: str, nth: int
) -> None:
    """Whatever step of whichever piece raises, the batch ends with that error: no piece
    left waiting for a dedupe turn or a gate, no thread of the batch left, nothing
    committed, no data file kept, the lake's lock released."""
    from advertisex.lake.tables import Lake
    from advertisex.runners import batch, embedded
    from advertisex.runners.lock import processor_running

    calls: dict[str, int] = {}
    lock = threading.Lock()

    def failing(original: Any, source_of: Any) -> Any:
        def step_of_a_piece(*args: Any, **kwargs: Any) -> Any:
            of = source_of(*args)
            with lock:
                calls[of] = calls.get(of, 0) + 1
                hit = of == source and calls[of] == nth
            if hit:
                raise AttributeError(f"{step} of {source} broke")
            return original(*args, **kwargs)

        return step_of_a_piece

    if step == "frame":
        framing = failing(embedded.frame_segments, lambda read, *_: read[0][1].source)
        monkeypatch.setattr(embedded, "frame_segments", framing)
    elif step == "dedupe":
        verdicts = failing(batch.BatchDedupe.verdicts, lambda dedupe, of, *_: of)
        monkeypatch.setattr(batch.BatchDedupe, "verdicts", verdicts)
    elif step == "ivt":
        ivt = failing(batch.filter_invalid_traffic, lambda name, *_: _source_of_tables([name]))
        monkeypatch.setattr(batch, "filter_invalid_traffic", ivt)
    else:
        writes = failing(Lake.write_files, lambda lake, rows, *_: _source_of_tables(rows))
        monkeypatch.setattr(Lake, "write_files", writes)
    before = set(threading.enumerate())
    raised: list[BaseException] = []

    def processing() -> None:
        try:
            _run(landed, tmp_path / "run", piece_bytes=PIECE, workers=2)
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=processing, daemon=True)
    thread.start()
    thread.join(120)  # a bound for a hung batch, not a measure of speed
    assert not thread.is_alive(), "the batch did not end"
    assert [str(e) for e in raised] == [f"{step} of {source} broke"]
    assert set(threading.enumerate()) - before == set()  # pieces and framers all ended
    data = tmp_path / "run"
    assert not processor_running(data)
    ax = _open(data)
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 0}]
    assert not list((data / "warehouse").rglob("*.parquet"))


def test_clicks_are_read_beside_the_impressions_and_finish_with_their_invalid_traffic(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A click piece does not wait for the impressions to be done to be read, standardized
    and deduplicated — only to finish: the impressions' piece here finishes only once a
    click piece has been standardized, and the clicks of the user the impressions caught
    are still invalid traffic."""
    from advertisex.runners import embedded

    clicks_read = threading.Event()
    standardize, finish = embedded.standardize_source, embedded.finish_source

    def noted(source: str, *args: Any) -> Any:
        if source == "clicks":
            clicks_read.set()
        return standardize(source, *args)

    def after_clicks(source: str, *args: Any) -> Any:
        if source == "impressions":
            assert clicks_read.wait(60), "the click piece waited for the impressions"
        return finish(source, *args)

    monkeypatch.setattr(embedded, "standardize_source", noted)
    monkeypatch.setattr(embedded, "finish_source", after_clicks)
    _, report = _run(landed, tmp_path / "run", piece_bytes=1 << 30, workers=2)
    assert report.accounts["clicks"].filtered > 0


def test_a_failed_impression_piece_releases_the_clicks_waiting_for_it(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.runners import embedded

    clicks_waiting = threading.Event()
    standardize, wait = embedded.standardize_source, embedded.Gate.wait

    def waits(gate: embedded.Gate) -> Any:
        clicks_waiting.set()
        return wait(gate)

    def fails(source: str, *args: Any) -> Any:
        if source == "impressions":
            assert clicks_waiting.wait(60)
            raise RuntimeError("an impression kernel broke")
        return standardize(source, *args)

    monkeypatch.setattr(embedded.Gate, "wait", waits)
    monkeypatch.setattr(embedded, "standardize_source", fails)
    with pytest.raises(RuntimeError, match="an impression kernel broke"):
        _run(landed, tmp_path / "run", piece_bytes=1 << 30, workers=2)


def test_pieces_keep_arrival_order_within_a_source() -> None:
    segments = [
        (0, Segment("impressions", "impressions/a", 30)),
        (1, Segment("bids", "bids/b", 4)),  # a bid's byte weighs 4 JSON bytes: 16
        (2, Segment("impressions", "impressions/c", 30)),
        (3, Segment("impressions", "impressions/d", 100)),
        (4, Segment("bids", "bids/e", 3)),
    ]
    pieces = plan_pieces(segments, 64)
    assert [(p.source, [i for i, _ in p.segments], p.turn) for p in pieces] == [
        ("impressions", [0, 2], 0),
        ("bids", [1, 4], 0),
        ("impressions", [3], 1),  # bigger than a piece: a piece of its own
    ]


def test_pieces_come_turn_by_turn_across_sources() -> None:
    """Two workers take the first two pieces: one of each source, not a source's first two
    (the second of which would wait for the first's dedupe)."""
    segments = [
        (0, Segment("bids", "bids/a", 16)),  # 64 each: a piece of its own
        (1, Segment("bids", "bids/b", 16)),
        (2, Segment("bids", "bids/c", 16)),
        (3, Segment("impressions", "impressions/d", 64)),
        (4, Segment("impressions", "impressions/e", 64)),
    ]
    pieces = plan_pieces(segments, 64)
    assert [(p.source[0], p.turn) for p in pieces] == [
        ("b", 0),
        ("i", 0),
        ("b", 1),
        ("i", 1),
        ("b", 2),
    ]


def test_a_piece_is_weighed_by_its_records_and_a_backlog_only_adds_pieces() -> None:
    """What a batch holds at a time is a piece per worker, and a piece's memory follows
    its records: Avro bids (≈ 50 landing bytes a record) and CSV clicks (≈ 100) weigh more
    than their bytes (JSON impressions: ≈ 450 a record). A backlog ten times bigger plans about
    ten times the pieces, none heavier (the planned sizes, not a measured RSS)."""
    from advertisex.runners.embedded import DENSITY, weight

    def backlog(hours: int) -> list[tuple[int, Segment]]:
        segments = []
        for hour in range(hours):  # the benchmark's hourly files at 10 M events a day
            segments.append(Segment("impressions", f"impressions/{hour}", 100 << 20))
            segments.append(Segment("bids", f"bids/{hour}", 9 << 20))
            segments.append(Segment("clicks", f"clicks/{hour}", 200 << 10))
        return list(enumerate(segments))

    piece_bytes = 24 << 20
    small, big = plan_pieces(backlog(24), piece_bytes), plan_pieces(backlog(240), piece_bytes)
    assert len(big) > 9 * len(small)
    assert max(p.size for p in big) == max(p.size for p in small)
    for pieces in (small, big):
        for piece in pieces:
            # A segment over the piece size is a piece of its own, transformed in slices
            # of the piece size (EmbeddedRunner._piece): no slice weighs more than it.
            slices = max(1, -(-piece.size // piece_bytes))
            assert piece.size / slices <= piece_bytes
        bids = [p for p in pieces if p.source == "bids"]
        assert all(p.size == 9 * (1 << 20) * DENSITY["bids"] for p in bids)
    assert weight(Segment("bids", "b", 10)) == 10 * DENSITY["bids"] > 10
