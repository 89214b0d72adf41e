"""A simulated platform for the monitors: days of traffic aggregates, faults, a clock.

It produces what :mod:`advertisex.monitor.gather` reads from a real lake — one landing
segment and one batch per source every 5 minutes, hourly curated aggregates — drawn
from the generator's diurnal curve (:data:`advertisex.synth.clock.DIURNAL`) with
Poisson noise and the generator's fault rates (:class:`FaultConfig`) as binomial
draws. Faults are then injected over a time span: a source stopping, volume scaled,
a malformed or duplicate burst, orphan clicks. Because only aggregates are simulated,
a week of evaluations every few minutes takes seconds; the gatherer that builds the
same aggregates from real tables is tested on the real pipeline separately.

>>> sim = Simulation(datetime(2026, 11, 1, tzinfo=UTC), days=8, seed=1)   # doctest: +SKIP
>>> sim.inject(Fault("stop", "impressions", start, start + HOUR))         # doctest: +SKIP
>>> obs = sim.observe(start + 2 * HOUR)                                    # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from advertisex.monitor.model import (
    ARRIVALS,
    BATCHES,
    CAMPAIGN_HOURS,
    CAMPAIGNS,
    FIELDS,
    HOUR,
    LINKS,
    TABLE_HOURS,
    Observations,
)
from advertisex.synth.clock import DIURNAL
from advertisex.synth.config import FaultConfig

SOURCES = ("impressions", "clicks", "bids")
STEP = timedelta(minutes=5)
CPM = 2.0  # spend per thousand impressions


@dataclass(frozen=True)
class Fault:
    """``kind`` on ``source`` from ``start`` to ``end``: stop | volume | malformed |
    duplicates | orphans (clicks without impressions), with its ``amount``
    (volume factor, or share of records)."""

    kind: str
    source: str
    start: datetime
    end: datetime
    amount: float = 0.0


class Simulation:
    def __init__(
        self,
        start: datetime,
        days: int,
        *,
        seed: int = 7,
        peak_per_hour: dict[str, float] | None = None,
        faults: FaultConfig | None = None,
        campaigns: int = 8,
        lookback_days: int = 8,
    ) -> None:
        self.start = start
        self.lookback = timedelta(days=lookback_days).total_seconds()
        self.rng = np.random.default_rng(seed)
        self.faults = faults or FaultConfig.demo()
        peak = peak_per_hour or {"impressions": 20_000.0, "bids": 30_000.0}
        steps = days * 24 * 12
        self.times = np.array([start + STEP * i for i in range(steps)], dtype=object)
        hour_of_day = np.array([t.hour for t in self.times])
        curve = np.asarray(DIURNAL)[hour_of_day]
        self.weights = self.rng.dirichlet(np.full(campaigns, 3.0))
        self.ctr = self.rng.uniform(0.01, 0.03, campaigns)
        self.campaign_ids = [f"cmp-{i:03d}" for i in range(campaigns)]
        # Per campaign and step: impressions, clicks, conversions.
        self.impressions = self.rng.poisson(
            np.outer(curve * peak["impressions"] / 12, self.weights)
        )
        self.clicks = self.rng.binomial(self.impressions, self.ctr)
        self.conversions = self.rng.binomial(self.clicks, 0.08)
        self.records = {
            "impressions": self.impressions.sum(axis=1),
            "clicks": self.clicks.sum(axis=1) + self.conversions.sum(axis=1),
            "bids": self.rng.poisson(curve * peak["bids"] / 12),
        }
        self.quarantined = {s: self._share(s, self.faults.malformed_rate) for s in SOURCES}
        self.duplicates = {s: self._share(s, self.faults.duplicate_rate) for s in SOURCES}
        self.filtered = {s: self._share(s, self.faults.bot_rate) for s in SOURCES}
        self.orphans = self.rng.binomial(self.clicks.sum(axis=1), 0.002)
        self.stopped = {s: np.zeros(steps, dtype=bool) for s in SOURCES}
        self.delay_s = self.rng.uniform(5, 40, (len(SOURCES), steps))
        self.epoch = start.timestamp() + STEP.total_seconds() * np.arange(steps)
        self._cache: tuple[int, tuple[pa.Table, ...]] | None = None
        self._full: list[tuple[np.ndarray, np.ndarray, pa.Table, pa.Table]] | None = None

    def _share(self, source: str, rate: float) -> np.ndarray:
        return self.rng.binomial(self.records[source], rate)

    def _span(self, fault: Fault) -> np.ndarray:
        return (self.epoch >= fault.start.timestamp()) & (self.epoch < fault.end.timestamp())

    def inject(self, fault: Fault) -> None:
        """Apply ``fault`` to the simulated traffic between its start and end."""
        span = self._span(fault)
        s = fault.source
        if fault.kind == "stop":
            self.stopped[s] |= span
        elif fault.kind == "volume":
            self.records[s] = np.where(
                span, self.rng.binomial(self.records[s], min(fault.amount, 1.0)), self.records[s]
            )
            if s == "impressions":
                self.impressions[span] = self.rng.binomial(self.impressions[span], fault.amount)
        elif fault.kind in ("malformed", "duplicates"):
            extra = self.rng.binomial(self.records[s], fault.amount)
            target = self.quarantined if fault.kind == "malformed" else self.duplicates
            self.records[s] = self.records[s] + np.where(span, extra, 0)
            target[s] = target[s] + np.where(span, extra, 0)
        elif fault.kind == "orphans":
            total = self.clicks.sum(axis=1)
            self.orphans = np.where(span, self.rng.binomial(total, fault.amount), self.orphans)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        self._cache = None
        self._full = None

    # ------------------------------------------------------------ observations
    def observe(self, now: datetime) -> Observations:
        """What the gatherer would see at ``now``."""
        at = now.timestamp()
        if self._full is None:
            self._full = [self._source_tables(i, s) for i, s in enumerate(SOURCES)]
        arrivals, batches = [], []
        for landed, committed, arrived, batched in self._full:
            lo = int(np.searchsorted(landed, at - self.lookback))
            hi = int(np.searchsorted(landed, at, side="right"))
            done = int(np.searchsorted(committed, at, side="right"))
            arrivals.append(arrived.slice(lo, max(min(done, hi) - lo, 0)))
            if hi > done:  # landed, not yet committed: what a pending segment looks like
                tail = arrived.slice(done, hi - done)
                arrivals.append(
                    tail.set_column(4, "records", pa.nulls(tail.num_rows, pa.int64()))
                    .set_column(5, "pending", pa.array(np.ones(tail.num_rows, dtype=np.int64)))
                    .set_column(6, "pending_bytes", tail.column("bytes"))
                    .set_column(8, "oldest_pending_at", tail.column("last_landed_at"))
                    .set_column(9, "delay_max_s", pa.nulls(tail.num_rows, pa.float64()))
                )
            batches.append(batched.slice(lo, max(done - lo, 0)))
        hours = self._complete_hours(now)
        if self._cache is None or self._cache[0] != len(hours):
            tables = (
                self._tables(hours),
                self._campaigns(hours),
                self._links(hours),
                self._fields(hours),
            )
            self._cache = (len(hours), tables)
        tables_, campaigns_, links_, fields_ = self._cache[1]
        return Observations(
            now=now,
            arrivals=pa.concat_tables(arrivals),
            batches=pa.concat_tables(batches),
            tables=tables_,
            campaigns=campaigns_,
            links=links_,
            fields=fields_,
            dims=self._dims(),
            sources=SOURCES,
        )

    def _source_tables(
        self, i: int, source: str
    ) -> tuple[np.ndarray, np.ndarray, pa.Table, pa.Table]:
        """Every segment of ``source`` as committed (landing times, commit times, tables)."""
        keep = np.flatnonzero(~self.stopped[source])
        landed = (self.epoch + 60.0)[keep]
        delay = self.delay_s[i][keep]
        records = self.records[source][keep]
        n = len(keep)
        names = pa.array([source] * n, pa.string())
        arrived = pa.table(
            {
                "source": names,
                "bucket": _ts(self.epoch[keep]),
                "segments": np.ones(n, dtype=np.int64),
                "bytes": records * 300,
                "records": records,
                "pending": np.zeros(n, dtype=np.int64),
                "pending_bytes": np.zeros(n, dtype=np.int64),
                "last_landed_at": _ts(landed),
                "oldest_pending_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
                "delay_max_s": delay,
            },
            schema=ARRIVALS,
        )
        q, d, f = (x[source][keep] for x in (self.quarantined, self.duplicates, self.filtered))
        batched = pa.table(
            {
                "source": names,
                "bucket": _ts(self.epoch[keep]),
                "records_in": records,
                "accepted": records - q - d - f,
                "quarantined": q,
                "filtered": f,
                "duplicates": d,
                "conflicts": np.zeros(n, dtype=np.int64),
            },
            schema=BATCHES,
        )
        return landed, landed + delay, arrived, batched

    def _complete_hours(self, now: datetime) -> np.ndarray:
        """Step indices grouped by hour, for the hours that ended by ``now``."""
        n_hours = int((now - self.start) / HOUR)
        return np.arange(min(n_hours, len(self.times) // 12))

    def _hourly(self, values: np.ndarray, hours: np.ndarray) -> np.ndarray:
        return values[: len(hours) * 12].reshape(len(hours), 12, *values.shape[1:]).sum(axis=1)

    def _hour_times(self, hours: np.ndarray) -> list[datetime]:
        return [self.start + HOUR * int(h) for h in hours]

    def _alive(self, source: str, hours: np.ndarray) -> np.ndarray:
        return 1 - self._hourly(self.stopped[source].astype(np.int64), hours) / 12

    def _tables(self, hours: np.ndarray) -> pa.Table:
        parts = []
        for table, source in (
            ("curated.impressions", "impressions"),
            ("curated.clicks", "clicks"),
            ("curated.bid_requests", "bids"),
        ):
            rows = self._hourly(self.records[source], hours) * self._alive(source, hours)
            parts.append(
                pa.table(
                    {
                        "table": [table] * len(hours),
                        "hour": self._hour_times(hours),
                        "rows": rows.astype(np.int64),
                        "lag_p95_s": np.full(len(hours), 180.0),
                    },
                    schema=TABLE_HOURS,
                )
            )
        return pa.concat_tables(parts)

    def _campaigns(self, hours: np.ndarray) -> pa.Table:
        alive_i = self._alive("impressions", hours)[:, None]
        alive_c = self._alive("clicks", hours)[:, None]
        imps = (self._hourly(self.impressions, hours) * alive_i).astype(np.int64)
        n = len(self.campaign_ids)
        return pa.table(
            {
                "campaign_id": self.campaign_ids * len(hours),
                "hour": [t for t in self._hour_times(hours) for _ in range(n)],
                "impressions": imps.ravel(),
                "clicks": (self._hourly(self.clicks, hours) * alive_c).astype(np.int64).ravel(),
                "conversions": (self._hourly(self.conversions, hours) * alive_c)
                .astype(np.int64)
                .ravel(),
                "spend": (imps * CPM / 1000).ravel(),
            },
            schema=CAMPAIGN_HOURS,
        )

    def _links(self, hours: np.ndarray) -> pa.Table:
        clicks = self._hourly(self.clicks.sum(axis=1), hours) * self._alive("clicks", hours)
        programmatic = self._hourly(self.impressions.sum(axis=1), hours) * 0.6
        conversions = self._hourly(self.conversions.sum(axis=1), hours)
        zeros = np.zeros(len(hours), dtype=np.int64)
        return pa.table(
            {
                "hour": self._hour_times(hours),
                "clicks": clicks.astype(np.int64),
                "orphan_clicks": self._hourly(self.orphans, hours),
                "conversions": conversions,
                "unattributed_conversions": (conversions * 0.05).astype(np.int64),
                "programmatic_impressions": programmatic.astype(np.int64),
                "impressions_without_bid": zeros,
                "won_bids": zeros,
                "won_bids_without_impression": zeros,
            },
            schema=LINKS,
        )

    def _fields(self, hours: np.ndarray) -> pa.Table:
        rows = self._hourly(self.records["impressions"], hours)
        names = ["campaign_id", "auction_id", "cost", "sdk_version"]
        return pa.table(
            {
                "table": ["curated.impressions"] * (len(hours) * len(names)),
                "hour": [t for t in self._hour_times(hours) for _ in names],
                "field": names * len(hours),
                "type": ["column", "column", "column", "varchar"] * len(hours),
                "rows": np.repeat(rows, len(names)),
            },
            schema=FIELDS,
        )

    def _dims(self) -> pa.Table:
        """Budgets that match the simulated spend: a clean run is on pace."""
        daily = self.weights * float(self.impressions.sum()) / self.weights.sum()
        days = len(self.times) / (24 * 12)
        budget = daily / days * CPM / 1000 * 30
        first = (self.start - timedelta(days=1)).date()
        return pa.table(
            {
                "campaign_id": self.campaign_ids,
                "budget": budget,
                "start_date": [first] * len(budget),
                "end_date": [first + timedelta(days=29)] * len(budget),
                "valid_from": [self.start - timedelta(days=1)] * len(budget),
            },
            schema=CAMPAIGNS,
        )


def _ts(seconds: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    micros = (seconds * 1_000_000).astype(np.int64)
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=mask)


class SimClock:
    """A clock the test moves: ``clock()`` is now, ``clock.advance(step)`` moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, step: timedelta) -> datetime:
        self.now += step
        return self.now
