"""The monitor on the real pipeline: generated files with faults → ingest → process → monitor.

This covers what the simulation cannot: the SQL that turns curated tables, ops.batches,
the catalog's segment records and the landing zone into observations, the ops.alerts
history in Iceberg, the CLI verbs, and the processor metrics the runner records.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from advertisex.cli.app import app
from advertisex.monitor.gather import Gatherer
from advertisex.monitor.model import floor_hour
from advertisex.monitor.notify.simple import MemoryNotifier
from advertisex.monitor.service import Monitor, lake_history
from advertisex.monitor.state import StateStore
from advertisex.synth.config import FaultConfig
from advertisex.synth.generator import generate
from advertisex.synth.monitor_sim import SimClock
from advertisex.util import jsonutil
from advertisex.util.timeutil import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A day of traffic with 10 % malformed records; half the impression files dropped."""
    raw = tmp_path_factory.mktemp("raw")
    generate(
        raw, events=8000, seed=5, start=date(2026, 11, 20), faults=FaultConfig(malformed_rate=0.1)
    )
    for path in sorted((raw / "impressions").glob("*.ndjson"))[::2]:
        path.unlink()  # clicks on these hours' impressions become orphans
    return raw


RUNNER = CliRunner()


def cli(env: dict[str, str], *args: str) -> Any:
    result = RUNNER.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return jsonutil.loads(result.stdout) if "json" in args else result


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, faulty: Path) -> dict[str, Any]:
    """The faulty day ingested and processed once, through the CLI; status seen in between."""
    data = tmp_path_factory.mktemp("platform") / "data"
    env = {"ADVERTISEX_DATA_DIR": str(data)}
    cli(env, "ingest", *(str(faulty / s) for s in ("impressions", "clicks", "bids")))
    before = cli(env, "status", "--format", "json")
    processed = cli(env, "process", "--format", "json")
    return {"env": env, "data": data, "before": before, "processed": processed}


def monitor(ax: Any, clock: SimClock) -> Monitor:
    memory = MemoryNotifier("memory")
    cfg = ax.settings.monitor.model_copy(
        update={
            "routes": {s: ("memory",) for s in ("critical", "warning", "info")},
            "discrepancy_min_events": 20,  # a small day: tens of clicks per hour
        }
    )
    store = StateStore(None)
    return Monitor(
        cfg,
        Gatherer(ax.settings, ax.lake, clock, store).observe,
        store=store,
        notifiers={"memory": memory},
        history=lake_history(ax.lake),
        clock=clock,
    )


def test_observations_match_the_accounting_and_faults_raise_alerts(
    platform: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import advertisex

    ax = advertisex.open(data_dir=platform["data"])
    sources = platform["processed"]["sources"]
    clock = SimClock(utcnow())
    mon = monitor(ax, clock)
    first = mon.evaluate()
    obs = first.observations
    total = sum(s["records_in"] for s in sources)
    assert pc.sum(obs.arrivals.column("records")).as_py() == total
    assert pc.sum(obs.batches.column("records_in")).as_py() == total
    quarantined = sum(s["quarantined"] for s in sources)
    assert pc.sum(obs.batches.column("quarantined")).as_py() == quarantined
    rows = {r["table"]: r["rows"] for r in obs.tables.to_pylist()}
    assert rows == {t: n for t, n in platform["processed"]["tables"].items() if t in rows and n}
    assert {f.alertname for f in first.findings} >= {"QuarantineRateHigh"}
    # Once the ingest hour is over and settled, the orphan clicks are judged: the hour most
    # clicks landed in, not the test's (the fixture's ingest at hh:59:5x and this clock at
    # hh+1:00 judged an hour with no data), and past the rate window of the batches.
    [busiest] = ax.query(
        "select date_trunc('hour', ingest_time) as hour from curated.clicks "
        "group by all order by count(*) desc limit 1"
    ).to_pylist()
    landed = busiest["hour"]
    settled = timedelta(seconds=mon.cfg.settle_seconds + 60)
    clock.now = max(floor_hour(landed) + timedelta(hours=1), clock.now) + settled
    later = mon.evaluate()
    links = later.observations.links.to_pylist()
    (judged,) = [row for row in links if row["hour"] == floor_hour(landed)]
    assert 0 < judged["orphan_clicks"] < judged["clicks"]
    assert judged["impressions_without_bid"] == 0  # every won auction has its request
    assert "OrphanClicks" in {f.alertname for f in later.findings}
    assert later.observations.dims is None  # no dims.campaigns loaded: pacing skipped
    seen = {(r["table"], r["field"], r["type"]) for r in later.observations.fields.to_pylist()}
    assert ("curated.impressions", "auction_id", "column") in seen
    assert ("curated.clicks", "impression_id", "column") in seen
    # A restarted monitor finds complete hours' aggregates in its state, not in the lake.
    from advertisex.monitor import queries

    monkeypatch.setattr(queries, "hourly", lambda *a, **k: pytest.fail("recomputed"))
    again = Gatherer(ax.settings, ax.lake, clock, mon.store).observe()
    assert again.links.to_pylist() == links
    history = ax.query('select alertname, state from ops.alerts order by "at"').to_pylist()
    assert {"alertname": "QuarantineRateHigh", "state": "firing"} in history
    assert {"alertname": "QuarantineRateHigh", "state": "resolved"} in history


def test_freshness_and_delay_on_a_landing_zone_nobody_processes(ax: Any, faulty: Path) -> None:
    ax.ingest([str(faulty / "bids")])
    clock = SimClock(utcnow() + timedelta(minutes=20))
    result = monitor(ax, clock).evaluate()
    found = {(f.alertname, f.labels.get("source")) for f in result.findings}
    assert ("SourceStale", "bids") in found and ("IngestDelayHigh", "bids") in found
    assert result.observations.settled_until is not None  # pending data holds hours open
    arrivals = result.observations.arrivals
    assert pc.sum(arrivals.column("pending")).as_py() == len(list((faulty / "bids").iterdir()))


@pytest.mark.parametrize("width", [80, 100])
def test_status_on_an_ordinary_terminal_is_tables_not_blocks(
    platform: dict[str, Any], width: int
) -> None:
    """``status`` at 100 columns was one 11-line block per source and a 9-line block per
    table: its tables keep the columns looked at most, and say how many were left out."""
    result = cli({**platform["env"], "COLUMNS": str(width)}, "status")
    lines = result.stdout.splitlines()
    assert "one record per block" not in result.stdout
    assert max(len(line) for line in lines) <= width
    assert any(line.startswith("│ bids ") for line in lines)
    assert any(line.startswith("│ curated.impressions ") for line in lines)
    left = re.findall(
        rf"\d+ more columns?, too wide for {width}: --format json shows", result.stderr
    )
    assert len(left) == 2, result.stderr


def test_cli_monitor_once_alerts_and_status(platform: dict[str, Any], faulty: Path) -> None:
    env, data = platform["env"], platform["data"]
    bids = next(s for s in platform["before"]["sources"] if s["source"] == "bids")
    assert bids["backlog_segments"] == len(list((faulty / "bids").iterdir()))
    assert bids["records_1h"] == 0 and bids["freshness_s"] is not None
    once = cli(env, "monitor", "--once", "--format", "json")
    assert {"QuarantineRateHigh"} <= {f["alertname"] for f in once}
    states = [(r["alertname"], r["state"]) for r in cli(env, "alerts", "--format", "json")]
    assert ("QuarantineRateHigh", "firing") in states
    firing = cli(env, "alerts", "--firing", "--format", "json")
    assert {"source=bids", "source=impressions"} <= {r["labels"] for r in firing}
    assert cli(env, "alerts", "--since", "2999-01-01", "--format", "json") == []
    # For people: times short (no microseconds or offset), and no empty table.
    for args in (["alerts", "--firing"], ["alerts"]):
        shown = cli(env, *args).stdout
        assert "QuarantineRateHigh" in shown and not re.search(r"\d\d:\d\d:\d\d[.+]", shown)
    none = cli(env, "alerts", "--since", "2999-01-01")
    assert none.stdout == "" and "no alert since 2999-01-01 in ops.alerts." in none.stderr
    assert RUNNER.invoke(app, ["alerts", "--since", "yesterday"], env=env).exit_code != 0
    after = cli(env, "status", "--format", "json")
    assert {s["backlog_segments"] for s in after["sources"]} == {0}
    assert any(r["alertname"] == "QuarantineRateHigh" for r in after["firing"])
    outbox = StateStore(data / "monitor" / "state.db").outbox()
    assert {r["channel"] for r in outbox} == {"log"}  # the default route
    assert all(r["delivered_at"] for r in outbox)
    prom = (data / "monitor" / "processor.prom").read_text()
    assert 'advertisex_processor_rows_total{outcome="quarantined",source="bids"}' in prom
