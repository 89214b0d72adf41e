"""What landed and what is committed, per source and landing hour, kept up to date.

An hour's arrivals join two listings: the segments in the hour's landing folder (or
under its prefix on object storage) and the ledger's marks of those committed. At
10 k events/s an hour holds tens of thousands of segments, and reading both in full on
every observation cost more than everything else a page shows. So :class:`LandingView`
remembers each hour it has read:

- the committed segments with their marks. Marks are only ever added — except by a
  replay, which raises the ledger's epoch, and the gatherer then starts over;
- the pending ones (landed, not committed) by name.

An observation of a remembered hour counts the hour's marks (one range count), lists
its names again (one directory read without ``stat``, or the object listing), and looks
up in the ledger only the names not seen before and the pending ones, and only when
the count says something was committed. Marks of segments it never listed — landed,
committed and moved away between two observations — show as a count it cannot account
for: that hour is read afresh. Pending segments are sized again each time (an erasure
may rewrite them); committed ones keep their mark's size, as a full read does. The
result equals a full read of the same moment (``tests/monitor/test_arrivals.py``).

The hours of a source's landing day are looked at together: the ledger first, then
their listings (``LandingZone.listings``), which object storage answers with one
paged listing of the day's prefix where that costs fewer requests than one per hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from advertisex.lake.tables import Lake
from advertisex.landing.zone import LandingZone, hour_prefix, segment_times
from advertisex.monitor import queries
from advertisex.monitor.model import HOUR

Key = tuple[str, datetime]  # (source, landing hour)
# One segment's row, as queries.arrivals folds them.
SEGMENT_ROWS = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("landed_at", pa.timestamp("us", tz="UTC")),
        pa.field("bytes", pa.int64()),
        pa.field("records", pa.int64()),
        pa.field("committed_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class _Hour:
    committed: pa.Table  # SEGMENT_ROWS of the committed segments
    names: set[str]  # their names
    pending: dict[str, int]  # landed, not committed: name → size
    arrivals: pa.Table | None = None  # ARRIVALS rows; None once something changed


class LandingView:
    """Arrivals per (source, hour), each hour read in full once and then incrementally."""

    def __init__(self, landing: LandingZone, lake: Lake) -> None:
        self.landing = landing
        self.lake = lake
        self._hours: dict[Key, _Hour] = {}

    def arrivals(self, keys: list[Key]) -> dict[Key, pa.Table]:
        """ARRIVALS rows of each (source, hour) as of now; hours not asked for are forgotten."""
        wanted = set(keys)
        self._hours = {k: v for k, v in self._hours.items() if k in wanted}
        days: dict[tuple[str, date], list[datetime]] = {}
        for source, hour in sorted(wanted):
            days.setdefault((source, hour.date()), []).append(hour)
        for (source, _), hours in days.items():
            self._look(source, hours)
        stale = [k for k in keys if self._hours[k].arrivals is None]
        if stale:
            self._fold(stale)
        return {k: self._hours[k].arrivals for k in keys}  # type: ignore[misc]

    def follows(self, key: Key) -> bool:
        """Whether the hour is remembered (read before, followed since)."""
        return key in self._hours

    def forget(self, key: Key) -> None:
        """Stop following an hour (it is final: the caller keeps its arrivals)."""
        self._hours.pop(key, None)

    def clear(self) -> None:
        """Forget everything: the next observation reads every hour in full."""
        self._hours.clear()

    # ------------------------------------------------------------------ a look
    def _look(self, source: str, hours: list[datetime]) -> None:
        """Bring a source's hours up to date: a remembered hour incrementally, another one
        in full. Their listings are asked for together (object storage lists a day in one
        request where that is cheaper); the ledger is read before them (see _update)."""
        followed = [h for h in hours if (source, h) in self._hours]
        counts = {
            hour: self.lake.ledger_reads.count((p := hour_prefix(source, hour), p + "\uffff"))
            for hour in followed
        }
        marks = self._marks(source, [h for h in hours if h not in counts])
        for hour, listed in self.landing.listings(source, hours):
            if hour in counts:
                self._update((source, hour), counts[hour], listed)
            else:
                self._read((source, hour), marks[hour], listed)
        again = [h for h in followed if (source, h) not in self._hours]
        if again:  # marks it could not account for: read those hours afresh
            self._look(source, again)

    # ------------------------------------------------------------------ full reads
    def _marks(self, source: str, hours: list[datetime]) -> dict[datetime, pa.Table]:
        """The ledger's marks of each hour: one range read per run of consecutive hours."""
        runs: list[list[datetime]] = []
        for hour in sorted(hours):
            if runs and runs[-1][-1] + HOUR == hour:
                runs[-1].append(hour)
            else:
                runs.append([hour])
        found = {}
        for run in runs:
            first, last = hour_prefix(source, run[0]), hour_prefix(source, run[-1])
            marks = self.lake.ledger_reads.table(between=(first, last + "\uffff"))
            for hour in run:
                found[hour] = marks.filter(
                    pc.starts_with(marks.column("segment"), hour_prefix(source, hour))
                )
        return found

    def _read(self, key: Key, mine: pa.Table, listed: dict[str, int | None]) -> None:
        """Read an hour in full from its marks and its listing (made after them)."""
        names = mine.column("segment").to_pylist()
        known = set(names)
        pending = self._sized({n: s for n, s in listed.items() if n not in known})
        self._hours[key] = _Hour(_committed(key[0], mine), known, pending)

    # ------------------------------------------------------------------ increments
    def _update(self, key: Key, count: int, listed: dict[str, int | None]) -> None:
        """Follow a remembered hour from the ledger's ``count`` of its marks and its
        listing. Count before listing: a segment committed before the count was sealed
        before it, so the listing holds it — unless it was moved away (then: read afresh)."""
        state = self._hours[key]
        added = count - len(state.names)
        new = [n for n in listed if n not in state.names and n not in state.pending]
        candidates = new + list(state.pending)
        if added:
            marks = (
                self.lake.ledger_reads.table(among=candidates) if candidates and added > 0 else None
            )
            if marks is None or marks.num_rows < added:  # unlisted marks, or withdrawn ones
                del self._hours[key]
                return
            state.committed = pa.concat_tables([state.committed, _committed(key[0], marks)])
            if state.committed.column(0).num_chunks > 32:  # one per increment: keep scans quick
                state.committed = state.committed.combine_chunks()
            state.names.update(marks.column("segment").to_pylist())
        pending = self._sized(
            {n: listed[n] for n in candidates if n in listed and n not in state.names}
        )
        if new or added or pending != state.pending:
            state.pending = pending
            state.arrivals = None

    def _sized(self, listed: dict[str, int | None]) -> dict[str, int]:
        """Sizes of listed segments: the listing's, else asked for (gone ones dropped)."""
        asked = self.landing.sizes(n for n, size in listed.items() if size is None)
        return {
            n: asked[n] if size is None else size
            for n, size in listed.items()
            if size is not None or n in asked
        }

    # ------------------------------------------------------------------ folding
    def _fold(self, keys: list[Key]) -> None:
        """ARRIVALS rows of each hour: its segments in 5-minute buckets of landing time
        (a segment whose name carries no landing time counts in no hour, as before)."""
        parts = []
        for source, hour in keys:
            state = self._hours[(source, hour)]
            names = list(state.pending)
            pending = pa.table(
                {
                    "source": pa.array([source] * len(names), pa.string()),
                    "landed_at": segment_times(names),
                    "bytes": pa.array(list(state.pending.values()), pa.int64()),
                    "records": pa.nulls(len(names), pa.int64()),
                    "committed_at": pa.nulls(len(names), SEGMENT_ROWS[4].type),
                },
                schema=SEGMENT_ROWS,
            )
            parts += [state.committed, pending]
        folded = queries.arrivals(pa.concat_tables(parts))
        hours = pc.floor_temporal(folded.column("bucket"), unit="hour")
        for source, hour in keys:
            mine = pc.and_(pc.equal(folded.column("source"), source), pc.equal(hours, hour))
            self._hours[(source, hour)].arrivals = folded.filter(mine)


def _committed(source: str, marks: pa.Table) -> pa.Table:
    """SEGMENT_ROWS of committed segments from their ledger marks."""
    return pa.table(
        {
            "source": pa.array([source] * marks.num_rows, pa.string()),
            "landed_at": segment_times(marks.column("segment")),
            "bytes": marks.column("bytes"),
            "records": marks.column("records"),
            "committed_at": marks.column("committed_at"),
        },
        schema=SEGMENT_ROWS,
    )
