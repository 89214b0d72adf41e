"""Processor and monitor metrics, their /metrics endpoint, and deploy/prometheus/ against them."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from advertisex.collector.metrics import CollectorMetrics
from advertisex.landing.zone import Segment
from advertisex.monitor import metrics
from advertisex.runners.batch import SourceAccount
from advertisex.synth.monitor_sim import Simulation
from advertisex.util import jsonutil
from advertisex.util.timeutil import utcnow
from tests.ports import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "advertisex-rules.yml"


def exported_names() -> set[str]:
    """Every sample name the collector, processor and monitor registries can expose."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    names = set()
    for registry in (CollectorMetrics().registry, metrics.PROCESSOR, metrics.MONITOR):
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, [""]))
    names.update(family.name for family in metrics.FollowerPasses(None).describe())
    names.update(family.name for family in metrics.MARTS_BEHIND.describe())  # absent until judged
    return names


def test_record_batch_counts_rows_and_writes_the_textfile(tmp_path: Path) -> None:
    account = SourceAccount(
        "bids", records_in=100, accepted=80, quarantined=10, filtered=5, duplicates=5, conflicts=1
    )
    landed = utcnow() - timedelta(seconds=30)
    segment = Segment("bids", f"bids/x/{landed:%Y%m%dT%H%M%S%fZ}-a.avro", 10)
    newest = datetime(2030, 1, 1, tzinfo=UTC)
    table = pa.table({"event_time": pa.array([newest], pa.timestamp("us", tz="UTC"))})
    before = metrics.ROWS.labels("bids", "quarantined")._value.get()
    metrics.record_batch(
        {"bids": account}, 1.5, [segment], {"curated.bid_requests": table}, tmp_path
    )
    assert metrics.ROWS.labels("bids", "quarantined")._value.get() == before + 10
    assert metrics.LAST_EVENT.labels("bids")._value.get() == newest.timestamp()
    text = (tmp_path / "monitor" / "processor.prom").read_text()
    assert 'advertisex_processor_rows_total{outcome="accepted",source="bids"}' in text
    assert "advertisex_processor_ingest_delay_seconds_bucket" in text
    metrics.record_batch({"bids": object()}, 1.0)  # broken input: logged, never raised


def test_the_textfile_is_written_at_most_once_a_second_and_never_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches a second apart or closer (``process --follow``) write the textfile once a
    second: the first at once, the others' counts by the write waiting for its turn, or at
    exit (``flush_textfiles``)."""
    path = tmp_path / "monitor" / "processor.prom"
    counted = "advertisex_processor_batches_total {:.1f}"

    def batches() -> float:
        return metrics.PROCESSOR.get_sample_value("advertisex_processor_batches_total") or 0.0

    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    assert counted.format(batches()) in path.read_text()  # the first: at once
    written = path.stat().st_mtime_ns
    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    assert path.stat().st_mtime_ns == written  # waiting for its turn
    metrics.flush_textfiles()  # at exit
    assert counted.format(batches()) in path.read_text()
    monkeypatch.setattr(metrics, "EXPORT_EVERY", 0.2)
    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    deadline = time.monotonic() + 10
    while counted.format(batches()) not in path.read_text():  # the timer's write
        assert time.monotonic() < deadline, "the waiting write never came"
        time.sleep(0.05)
    # A data dir removed before its waiting write (a test's, a bench's) is not made again.
    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    shutil.rmtree(tmp_path / "monitor")
    metrics.flush_textfiles()
    assert not (tmp_path / "monitor").exists()


def test_metrics_endpoint_serves_monitor_gauges_and_processor_textfile(tmp_path: Path) -> None:
    metrics.record_batch({}, 0.1, data_dir=tmp_path)
    sim = Simulation(datetime(2026, 11, 1, tzinfo=UTC), days=2, seed=1)
    obs = sim.observe(datetime(2026, 11, 2, 12, 3, tzinfo=UTC))
    alert = {"state": "firing", "severity": "critical"}
    metrics.record_observations(obs, [alert])
    port = free_port()  # nothing listens on it yet
    server = metrics.serve(port, tmp_path)
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    assert 'advertisex_alerts{severity="critical",state="firing"} 1.0' in body
    assert 'advertisex_source_freshness_seconds{source="bids"} 120.0' in body
    assert "advertisex_processor_batches_total" in body  # from the processor's textfile


def test_metrics_endpoint_serves_the_running_follower_s_failed_passes(tmp_path: Path) -> None:
    """A follower failing every pass commits nothing, so the processor's textfile (written
    after commits) said nothing of it: Prometheus could not alert on it."""
    from advertisex.config import load_settings
    from advertisex.errors import TransientError
    from advertisex.runners.lock import processor_lock
    from advertisex.util.health import HealthFile

    settings = load_settings(data_dir=tmp_path / "data")
    port = free_port()
    server = metrics.serve(port, settings.data_dir, settings=settings)

    def scraped() -> str:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    try:
        with processor_lock(settings.data_dir):  # as a follower holds it
            health = HealthFile(settings.data_dir, interval=0.5, max_wait=30.0)
            health.passed()
            assert "advertisex_processor_failed_passes 0.0" in scraped()
            for _ in range(3):
                health.failed(TransientError("cannot write curated.impressions"))
            body = scraped()
        assert "advertisex_processor_failed_passes 3.0" in body
        [age] = re.findall(r"^advertisex_processor_good_pass_age_seconds (\S+)$", body, re.M)
        assert 0 <= float(age) < 60
        # The follower gone (killed: its file still says running), nothing is said of it.
        assert "advertisex_processor_failed_passes" not in scraped()
    finally:
        server.shutdown()
        server.server_close()


def test_rules_and_dashboard_only_use_metrics_that_exist() -> None:
    names = exported_names()
    recorded = set(re.findall(r"record: (\S+)", RULES.read_text()))
    for path in (RULES, DEPLOY / "grafana-dashboard.json"):
        used = set(re.findall(r"\badvertisex_[a-z_]+", path.read_text()))
        missing = {n for n in used if n not in names} - recorded
        assert not missing, f"{path.name} uses metrics nobody exports: {sorted(missing)}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    for args in (["check", "rules", RULES.name], ["test", "rules", "advertisex-rules.test.yml"]):
        done = subprocess.run(
            ["promtool", *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_monitor_runs_until_sigterm_and_serves_metrics(tmp_path: Path) -> None:
    import os
    import signal
    import sys
    import time

    port = free_port()  # nothing listens on it yet
    env = {**os.environ, "ADVERTISEX_DATA_DIR": str(tmp_path / "data")}
    command = [sys.executable, "-m", "advertisex.cli.app", "monitor", "--interval", "0.2"]
    child = subprocess.Popen(
        [*command, "--metrics-port", str(port), "--format", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        body = ""
        for _ in range(300):  # until the first evaluation is exported, at most ~30 s
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                body = ""
            if "advertisex_monitor_evaluations_total 1" in body or "evaluations_total 2" in body:
                break
            time.sleep(0.1)
        assert "advertisex_monitor_last_evaluation_timestamp_seconds" in body
    finally:
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    first = jsonutil.loads(out.splitlines()[0])
    assert first["findings"] == 0 and first["errors"] == {}  # an empty platform is healthy
