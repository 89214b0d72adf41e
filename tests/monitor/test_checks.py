"""Each monitor on small, hand-checkable observations (pure functions, no lake, no clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from advertisex.config import MonitorSettings
from advertisex.monitor.checks import MONITORS, evaluate
from advertisex.monitor.checks.stats import Seasonal, proportion_z, seasonal
from advertisex.monitor.model import BATCHES, CAMPAIGNS, FIELDS, TABLE_HOURS, Observations
from advertisex.synth.monitor_sim import Fault, Simulation

START = datetime(2026, 11, 1, tzinfo=UTC)
T = START + timedelta(days=8, hours=10)
CFG = MonitorSettings()


def names(findings: list) -> set[str]:
    return {f.alertname for f in findings}


def test_seasonal_baseline_uses_median_and_mad_with_a_poisson_floor() -> None:
    series = {("s", START + timedelta(days=d)): v for d, v in enumerate([100, 104, 98, 500, 102])}
    s = seasonal(series, ("s",), START + timedelta(days=5), 5, START)
    assert s.median == 102 and s.value == 0.0
    assert s.scale == pytest.approx(max(1.4826 * 2, 102**0.5))  # one outlier moves nothing
    assert s.change == -1.0
    # Days before the source existed are not history.
    assert seasonal(
        series, ("s",), START + timedelta(days=2), 5, START + timedelta(days=1)
    ).history == [104.0]
    assert Seasonal(10.0, []).median == 0.0
    assert proportion_z(30, 1000, 0.02) == pytest.approx(10 / (1000 * 0.02 * 0.98) ** 0.5)


def test_freshness_fires_only_after_the_expected_interval() -> None:
    sim = Simulation(START, days=10, seed=1)
    sim.inject(Fault("stop", "bids", T, T + timedelta(hours=1)))
    limit = CFG.freshness_seconds["bids"]
    last = T - timedelta(minutes=4)  # the last segment before the stop landed at 09:56
    early = sim.observe(last + timedelta(seconds=limit - 60))
    late = sim.observe(last + timedelta(seconds=limit + 60))
    assert "SourceStale" not in names(MONITORS["freshness"](early, CFG))
    (finding,) = MONITORS["freshness"](late, CFG)
    assert finding.labels == {"source": "bids"} and finding.severity == "critical"


def test_delay_sees_a_segment_pending_too_long_and_late_events() -> None:
    sim = Simulation(START, days=10, seed=1)
    obs = sim.observe(T)
    assert MONITORS["delay"](obs, CFG) == []
    stuck = CFG.model_copy(update={"delay_max_seconds": 10})
    assert "IngestDelayHigh" in names(MONITORS["delay"](obs, stuck))
    lagging = CFG.model_copy(update={"event_lag_max_seconds": 60})  # the sim's p95 is 180 s
    assert {f.labels["table"] for f in MONITORS["delay"](obs, lagging)} >= {"curated.impressions"}


def batches(rows: list[tuple[datetime, int, int, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "source": "clicks",
                "bucket": at,
                "records_in": n,
                "accepted": n - q - d,
                "quarantined": q,
                "filtered": 0,
                "duplicates": d,
                "conflicts": 0,
            }
            for at, n, q, d in rows
        ],
        schema=BATCHES,
    )


def test_rates_fire_above_a_bound_and_on_a_jump() -> None:
    now = T
    quiet = [(now - timedelta(hours=h), 1000, 1, 2) for h in range(1, 20)]
    obs = Observations(now, batches=batches([*quiet, (now, 1000, 1, 2)]))
    assert MONITORS["rates"](obs, CFG) == []
    burst = Observations(now, batches=batches([*quiet, (now, 1000, 60, 2)]))
    (finding,) = MONITORS["rates"](burst, CFG)
    assert finding.alertname == "QuarantineRateHigh" and finding.value == pytest.approx(0.06)
    assert finding.severity == "critical"  # more than twice the bound
    # 1.5 % duplicates is under the 5 % bound but 7.5 times the usual 0.2 %: a jump.
    jump = Observations(now, batches=batches([*quiet, (now, 1000, 1, 15)]))
    (finding,) = MONITORS["rates"](jump, CFG)
    assert finding.alertname == "DuplicateRateHigh" and "up from 0.20%" in finding.summary
    # Too few records to judge.
    small = Observations(now, batches=batches([(now, 100, 50, 0)]))
    assert MONITORS["rates"](small, CFG) == []


def test_a_landing_file_set_aside_whole_is_critical_until_replayed() -> None:
    from advertisex.monitor.model import SET_ASIDE

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    entries = pa.Table.from_pylist(
        [
            {
                "source": "bids",
                "reason": "segment_unreadable:decode_timeout",
                "files": 2,
                "oldest": now,
            }
        ],
        schema=SET_ASIDE,
    )
    [finding] = MONITORS["set_aside"](Observations(now, set_aside=entries), MonitorSettings())
    assert (finding.alertname, finding.labels, finding.severity) == (
        "LandingFilesSetAside",
        {"source": "bids"},
        "critical",
    )
    assert "decode_timeout ×2" in finding.summary and finding.value == 2
    assert MONITORS["set_aside"](Observations(now), MonitorSettings()) == []


def test_a_damaged_landing_file_is_a_warning_beside_the_files_set_aside_whole() -> None:
    from advertisex.monitor.model import SET_ASIDE

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    entries = pa.Table.from_pylist(
        [
            {"source": "bids", "reason": "avro_unreadable", "files": 2, "oldest": now},
            {"source": "bids", "reason": "gzip_damaged", "files": 1, "oldest": now},
            {
                "source": "clicks",
                "reason": "segment_unreadable:decoder_crashed",
                "files": 1,
                "oldest": now,
            },
        ],
        schema=SET_ASIDE,
    )
    found = MONITORS["set_aside"](Observations(now, set_aside=entries), MonitorSettings())
    assert [(f.alertname, f.labels["source"], f.severity, f.value) for f in found] == [
        ("LandingFilesSetAside", "clicks", "critical", 1.0),
        ("LandingFilesDamaged", "bids", "warning", 3.0),
    ]
    assert "avro_unreadable ×2, gzip_damaged ×1" in found[1].summary


def test_a_table_whose_storage_lost_files_is_a_critical_alert_with_the_way_back() -> None:
    from advertisex.monitor.model import DAMAGED

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert MONITORS["lake_files"](Observations(now), MonitorSettings()) == []
    rows = pa.Table.from_pylist(
        [
            {
                "table": "curated.impressions",
                "files": 2,
                "first": "/lake/x.parquet (missing)",
                "way_back": "… advertisex replay --from 2026-11-20 --to 2026-11-20",
            }
        ],
        schema=DAMAGED,
    )
    (found,) = MONITORS["lake_files"](Observations(now, damaged=rows), MonitorSettings())
    assert (found.alertname, found.labels, found.severity, found.value) == (
        "LakeFilesDamaged",
        {"table": "curated.impressions"},
        "critical",
        2.0,
    )
    assert "/lake/x.parquet (missing)" in found.summary and "replay --from" in found.summary


def test_volume_compares_with_the_same_hour_on_previous_days() -> None:
    sim = Simulation(START, days=10, seed=2)
    after = T + timedelta(hours=1, minutes=20)
    assert MONITORS["volume"](sim.observe(after), CFG) == []
    sim.inject(Fault("volume", "bids", T, T + timedelta(hours=1), 0.6))
    found = MONITORS["volume"](sim.observe(after), CFG)
    assert [(f.alertname, f.labels) for f in found] == [("VolumeAnomaly", {"source": "bids"})]
    assert "dropped" in found[0].summary
    # Less sensitive settings let a 40 % dip pass.
    lenient = CFG.model_copy(update={"volume_min_change": 0.5})
    assert MONITORS["volume"](sim.observe(after), lenient) == []


def test_business_flags_a_ctr_shift_and_skips_pacing_without_budgets() -> None:
    sim = Simulation(START, days=10, seed=3)
    after = T + timedelta(minutes=20)
    assert MONITORS["business"](sim.observe(after), CFG) == []
    window = range(
        int((T - START) / timedelta(minutes=5)) - 72, int((T - START) / timedelta(minutes=5))
    )
    sim.clicks[list(window), 0] *= 3  # campaign 0 gets three times its clicks for 6 hours
    sim._cache = None
    found = MONITORS["business"](sim.observe(after), CFG)
    assert [(f.alertname, f.labels["campaign"]) for f in found] == [("CtrShift", "cmp-000")]
    no_dims = Observations(after, campaigns=sim.observe(after).campaigns, dims=None)
    assert "SpendOffPace" not in names(MONITORS["business"](no_dims, CFG))


def test_pacing_against_dims_campaign_budgets() -> None:
    sim = Simulation(START, days=10, seed=3)
    obs = sim.observe(T + timedelta(hours=4, minutes=20))
    assert MONITORS["business"](obs, CFG) == []  # budgets match the simulated spend
    tight = budgets(["cmp-001"], in_force=datetime(2026, 10, 1, tzinfo=UTC))
    obs = Observations(obs.now, arrivals=obs.arrivals, campaigns=obs.campaigns, dims=tight)
    (finding,) = MONITORS["business"](obs, CFG)
    assert finding.alertname == "SpendOffPace" and finding.value > 1.5


def budgets(campaigns: list[str], in_force: datetime) -> pa.Table:
    """A budget of 1.0 for each campaign (far below its spend), in force from ``in_force``."""
    n = len(campaigns)
    return pa.table(
        {
            "campaign_id": campaigns,
            "budget": [1.0] * n,
            "start_date": [date(2026, 10, 1)] * n,
            "end_date": [date(2026, 12, 31)] * n,
            "valid_from": [in_force] * n,
        },
        schema=CAMPAIGNS,
    )


def test_pacing_waits_for_a_day_the_budget_held_from_its_start() -> None:
    sim = Simulation(START, days=10, seed=3)
    now = T + timedelta(hours=4, minutes=20)
    obs = sim.observe(now)
    loaded_today = budgets(["cmp-001"], in_force=now - timedelta(hours=1))
    today = Observations(now, arrivals=obs.arrivals, campaigns=obs.campaigns, dims=loaded_today)
    assert MONITORS["business"](today, CFG) == []
    tomorrow = now + timedelta(days=1)
    later = sim.observe(tomorrow)
    judged = Observations(
        tomorrow, arrivals=later.arrivals, campaigns=later.campaigns, dims=loaded_today
    )
    assert names(MONITORS["business"](judged, CFG)) == {"SpendOffPace"}


def test_pacing_skips_a_campaign_without_any_spend_data() -> None:
    sim = Simulation(START, days=10, seed=3)
    obs = sim.observe(T + timedelta(hours=4, minutes=20))
    unseen = budgets(["cmp-new"], in_force=datetime(2026, 10, 1, tzinfo=UTC))
    obs = Observations(obs.now, arrivals=obs.arrivals, campaigns=obs.campaigns, dims=unseen)
    assert MONITORS["business"](obs, CFG) == []


def test_discrepancy_orphan_clicks_and_source_ratio() -> None:
    sim = Simulation(START, days=10, seed=4)
    after = T + timedelta(hours=1, minutes=20)
    assert MONITORS["discrepancy"](sim.observe(after), CFG) == []
    sim.inject(Fault("orphans", "clicks", T, T + timedelta(hours=1), 0.2))
    (finding,) = MONITORS["discrepancy"](sim.observe(after), CFG)
    assert finding.alertname == "OrphanClicks" and finding.value == pytest.approx(0.2, abs=0.05)
    sim.inject(Fault("volume", "impressions", T, T + timedelta(hours=1), 0.4))
    found = MONITORS["discrepancy"](sim.observe(after), CFG)
    ratio = [f for f in found if f.alertname == "SourceCountsDisagree"]
    assert ratio and ratio[0].labels == {"source": "impressions", "versus": "bids"}


def fields(rows: list[tuple[datetime, str, str, int]]) -> Observations:
    hours = sorted({r[0] for r in rows})
    return Observations(
        hours[-1] + timedelta(hours=1, minutes=30),
        tables=pa.Table.from_pylist(
            [
                {"table": "curated.impressions", "hour": h, "rows": 1000, "lag_p95_s": 1.0}
                for h in hours
            ],
            schema=TABLE_HOURS,
        ),
        fields=pa.Table.from_pylist(
            [
                {"table": "curated.impressions", "hour": h, "field": f, "type": t, "rows": n}
                for h, f, t, n in rows
            ],
            schema=FIELDS,
        ),
    )


def test_schema_drift_new_missing_and_retyped_fields() -> None:
    h = [START + timedelta(hours=i) for i in range(4)]
    usual = [(x, "auction_id", "column", 900) for x in h[:3]] + [
        (x, "sdk", "varchar", 1000) for x in h[:3]
    ]
    assert (
        MONITORS["schema"](
            fields([*usual, (h[3], "auction_id", "column", 900), (h[3], "sdk", "varchar", 1000)]),
            CFG,
        )
        == []
    )
    drift = fields([*usual, (h[3], "sdk", "number", 1000), (h[3], "gdpr", "boolean", 10)])
    found = {(f.alertname, f.labels["field"]) for f in MONITORS["schema"](drift, CFG)}
    assert found == {
        ("SchemaTypeChanged", "sdk"),
        ("SchemaNewField", "gdpr"),
        ("SchemaFieldMissing", "auction_id"),
    }


def test_a_failing_monitor_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(obs: Observations, cfg: MonitorSettings) -> list:
        raise KeyError("surprise")

    monkeypatch.setitem(MONITORS, "volume", broken)
    sim = Simulation(START, days=10, seed=1)
    sim.inject(Fault("stop", "bids", T, T + timedelta(hours=1)))
    findings, errors = evaluate(sim.observe(T + timedelta(minutes=30)), CFG)
    assert "SourceStale" in names(findings) and errors == {"volume": "KeyError: 'surprise'"}
    disabled = CFG.model_copy(update={"disabled": ("freshness",)})
    assert "SourceStale" not in names(evaluate(sim.observe(T + timedelta(minutes=30)), disabled)[0])
