"""The gatherer follows landing hours incrementally; it must never drift from a full read.

Hypothesis interleaves what happens to a landing zone — segments landing out of order
in the current and the previous hour, batches committing some, unreadable ones set
aside (committed with no records, left in place), an erasure rewriting a pending one, a segment landed, committed and moved away
between two looks, a replay withdrawing marks, a restart on the state store, time
passing — with observations; every observation of the long-lived gatherer must equal a
fresh gatherer's and a plain full listing's (every segment listed, every mark read).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from advertisex.lake.catalog import SegmentDone
from advertisex.monitor import queries
from advertisex.monitor.gather import SOURCES, Gatherer
from advertisex.monitor.model import HOUR, floor_hour
from advertisex.monitor.state import StateStore
from advertisex.synth.monitor_sim import SimClock

START = datetime(2026, 11, 27, 13, 5, tzinfo=UTC)
LINE = b'{"timestamp":"2026-11-27T12:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'

source = st.sampled_from(SOURCES)
operations = st.lists(
    st.one_of(
        # Out of order by up to settle_seconds: never into an hour already final.
        st.tuples(st.just("land"), source, st.integers(0, 900), st.integers(1, 3)),
        st.tuples(st.just("commit"), st.integers(1, 4), st.booleans()),
        st.tuples(st.just("aside"), st.integers(0, 50)),
        st.tuples(st.just("rewrite"), st.integers(0, 50)),
        st.tuples(st.just("sneak"), source),
        st.tuples(st.just("replay"), st.integers(1, 3)),
        st.tuples(st.just("restart")),
        st.tuples(st.just("tick"), st.integers(1, 40)),
        st.tuples(st.just("observe")),
    ),
    min_size=1,
    max_size=14,
)


class Zone:
    """A landing zone and its ledger, driven the way collectors and the processor do."""

    def __init__(self, ax: Any, clock: SimClock) -> None:
        self.ax, self.clock = ax, clock
        self.pending: list[str] = []
        self.committed: list[str] = []
        self.sequence = 0

    def land(self, source: str, seconds_back: int, lines: int) -> str:
        self.sequence += 1
        at = self.clock.now - timedelta(seconds=seconds_back)
        segment = self.ax.landing.write_segment(
            source, LINE * lines, fmt="ndjson", label=f"t.{self.sequence:06d}", at=at, fsync=False
        )
        self.pending.append(segment.name)
        return str(segment.name)

    def commit(self, names: list[str], *, records: int | None = None) -> None:
        at = self.clock.now.isoformat()
        marks = [
            SegmentDone(
                n,
                n.split("/")[0],
                f"b{self.sequence}",
                1 + len(n) % 7 if records is None else records,
                self._size(n),
                at,
            )
            for n in names
        ]
        with self.ax.lake.catalog.atomic(marks):
            pass
        self.pending = [n for n in self.pending if n not in names]
        self.committed += names

    def _size(self, name: str) -> int:
        path = self.ax.landing.root / name
        return path.stat().st_size if path.exists() else 0

    def apply(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "land":
            self.land(*op[1:])
        elif kind == "commit" and self.pending:
            chosen = self.pending[: op[1]] if op[2] else self.pending[-op[1] :]
            self.commit(chosen)
        elif kind in ("aside", "rewrite") and self.pending:
            name = self.pending[op[1] % len(self.pending)]
            if kind == "aside":  # unreadable: committed with no records, the file stays
                self.commit([name], records=0)
            else:  # an erasure rewrote it
                segment = next(s for s in self.ax.landing.segments() if s.name == name)
                self.ax.landing.rewrite(segment, LINE * 5)
        elif kind == "sneak":  # landed, committed and gone between two looks
            name = self.land(op[1], 0, 1)
            self.commit([name])
            self.ax.landing.remove(next(s for s in self.ax.landing.segments() if s.name == name))
        elif kind == "replay" and self.committed:
            withdrawn = self.committed[-op[1] :]
            with self.ax.lake.catalog.atomic([], forget=withdrawn):
                pass
            self.committed = self.committed[: -op[1]]
            self.pending += [n for n in withdrawn if (self.ax.landing.root / n).exists()]
        elif kind == "tick":
            self.clock.advance(timedelta(minutes=op[1]))


def full_read(ax: Any, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Arrivals from everything listed and every mark, the plain way."""
    rows: dict[str, tuple[str, int, int | None, datetime | None]] = {}
    for segment in ax.landing.segments():
        rows[segment.name] = (segment.source, segment.size, None, None)
    for name, mark in ax.lake.segment_marks().items():
        committed = datetime.fromisoformat(mark.committed_at)
        rows[name] = (mark.source, mark.bytes, mark.records, committed)
    from advertisex.landing.zone import segment_time

    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "source": pa.array([r[0] for r in rows.values()], pa.string()),
            "landed_at": pa.array([segment_time(n) for n in rows], ts),
            "bytes": pa.array([r[1] for r in rows.values()], pa.int64()),
            "records": pa.array([r[2] for r in rows.values()], pa.int64()),
            "committed_at": pa.array([r[3] for r in rows.values()], ts),
        }
    )
    folded = queries.arrivals(table)
    buckets = folded.column("bucket")
    inside = pc.and_(pc.greater_equal(buckets, since), pc.less(buckets, floor_hour(now) + HOUR))
    return ordered(folded.filter(inside))


def ordered(arrivals: pa.Table) -> list[dict[str, Any]]:
    return sorted(arrivals.to_pylist(), key=lambda r: (r["source"], r["bucket"]))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
# Each path of the incremental view, pinned: a mark of a segment never listed; a replay
# re-committed before the next look (same count, later commit time); a replay reopening
# a final hour; a rewrite of a pending segment.
@example(ops=[("land", "clicks", 0, 1), ("observe",), ("sneak", "clicks")])
@example(
    ops=[
        *[("land", "bids", 5, 1), ("commit", 1, True), ("observe",)],
        *[("replay", 1), ("tick", 5), ("commit", 1, True)],
    ]
)
@example(
    ops=[
        *[("land", "impressions", 0, 2), ("commit", 1, True), ("tick", 40), ("tick", 40)],
        *[("observe",), ("replay", 1)],
    ]
)
@example(ops=[("land", "impressions", 0, 2), ("observe",), ("rewrite", 0)])
@pytest.mark.slow
def test_incremental_arrivals_equal_a_full_read(ops: list[tuple[Any, ...]]) -> None:
    import advertisex

    with tempfile.TemporaryDirectory() as tmp:
        ax = advertisex.open(data_dir=Path(tmp) / "data", monitor={"lookback_days": 1})
        clock = SimClock(START)
        zone = Zone(ax, clock)
        store = StateStore(Path(tmp) / "state.db")
        gatherer = Gatherer(ax.settings, ax.lake, clock, store)
        for op in [*ops, ("observe",)]:
            if op[0] == "restart":
                gatherer = Gatherer(ax.settings, ax.lake, clock, store)
            elif op[0] != "observe":
                zone.apply(op)
                continue
            seen = gatherer.observe(hourly=False)
            fresh = Gatherer(ax.settings, ax.lake, clock).observe(hourly=False)
            since = floor_hour(clock.now) - timedelta(days=1)
            assert ordered(seen.arrivals) == ordered(fresh.arrivals)
            assert ordered(seen.arrivals) == full_read(ax, since, clock.now)
            assert seen.settled_until == fresh.settled_until
        store.close()


def test_a_restarted_gatherer_reads_final_hours_from_the_state_store(
    ax: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clock = SimClock(START)
    zone = Zone(ax, clock)
    zone.commit([zone.land("impressions", 600, 2), zone.land("bids", 300, 1)])
    store = StateStore(tmp_path / "state.db")
    clock.advance(2 * HOUR)  # that hour is past settling: final
    first = Gatherer(ax.settings, ax.lake, clock, store).observe(hourly=False)
    assert pc.sum(first.arrivals.column("segments")).as_py() == 2
    from advertisex.monitor.arrivals import LandingView

    real_read = LandingView._read

    def read(view: LandingView, key: tuple[str, datetime], *rest: Any) -> None:
        assert key[1] != floor_hour(START), "a final hour read again"
        real_read(view, key, *rest)

    monkeypatch.setattr(LandingView, "_read", read)
    again = Gatherer(ax.settings, ax.lake, clock, store).observe(hourly=False)
    assert ordered(again.arrivals) == ordered(first.arrivals)
    # A replay withdraws marks: the stored hours are stale, the hour is read again.
    monkeypatch.setattr(LandingView, "_read", real_read)
    with ax.lake.catalog.atomic([], forget=zone.committed[:1]):
        pass
    after = Gatherer(ax.settings, ax.lake, clock, store).observe(hourly=False)
    assert pc.sum(after.arrivals.column("pending")).as_py() == 1
