"""A run of one batch hands its rows to the marts' update in memory (lake.kept): the marts
read nothing of what the batch wrote back from its files, and are the same as when they do."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from advertisex.runners import runner
from tests.table_snapshots import MARTS, snapshot

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import advertisex
    from advertisex.synth.config import FaultConfig
    from advertisex.synth.generator import generate

    root = tmp_path_factory.mktemp("kept")
    generate(
        root / "input", events=3000, seed=5, start=date(2026, 11, 10), faults=FaultConfig.demo()
    )
    ax = advertisex.open(data_dir=root / "data")
    ax.ingest([str(root / "input" / s) for s in ("impressions", "clicks", "bids")])
    return root / "data"


def _process(landed: Path, target: Path, **processor: Any) -> tuple[Any, Any]:
    import advertisex

    shutil.copytree(landed / "landing", target / "landing")
    ax = advertisex.open(data_dir=target, processor=processor)
    return ax, ax.runner.process(now=NOW)


def _spy_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """The curated tables whose whole rows the marts' update got from memory, and those it
    read from their files."""
    from advertisex.lake import tables

    reads: dict[str, list[str]] = {"memory": [], "files": []}
    planned_table = tables.PlannedRead.table

    def table(self: tables.PlannedRead) -> Any:
        reads["memory" if self.kept() is not None else "files"].append(self.name)
        return planned_table(self)

    monkeypatch.setattr(tables.PlannedRead, "table", table)
    # A first build takes a table whose every file this process appended whole, unplanned.
    from advertisex.marts.iceberg import IcebergCurated

    kept_whole = IcebergCurated._kept_whole

    def whole(self: IcebergCurated, name: str, columns: tuple[str, ...]) -> Any:
        rows = kept_whole(self, name, columns)
        if rows is not None:
            reads["memory"].append(name)
        return rows

    monkeypatch.setattr(IcebergCurated, "_kept_whole", whole)
    return reads


@pytest.mark.slow
def test_the_marts_first_build_reads_the_batch_from_memory_with_the_same_result(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advertisex.lake.tables import Lake

    reads = _spy_reads(monkeypatch)
    settling: list[bool] = []  # at the batch's commit: the kept rows are being decoded
    commit_files = Lake.commit_files

    def commit(self: Lake, *args: Any, **kwargs: Any) -> Any:
        if self._kept is not None:
            settling.append(self._kept._settling is not None)
        return commit_files(self, *args, **kwargs)

    monkeypatch.setattr(Lake, "commit_files", commit)
    ax, report = _process(landed, tmp_path / "kept")
    assert settling == [True]
    assert len(report.batches) == 1 and report.marts is not None
    assert report.marts.mode == "rebuild"
    curated = [
        "curated.impressions",
        "curated.bid_requests",
        "curated.clicks",
        "curated.conversions",
    ]
    written = {  # the conversions: none, in this small day
        name for name in curated if ax.query(f"select count(*) as n from {name}")["n"][0].as_py()
    }
    assert written >= {"curated.impressions", "curated.bid_requests", "curated.clicks"}
    assert set(reads["memory"]) == written
    assert not [name for name in reads["files"] if name.startswith("curated.")]
    assert ax.lake._kept is None  # let go when the run ended

    reads["memory"].clear()
    monkeypatch.setattr(runner, "_KEPT_FOR_MARTS_BYTES", 0)  # nothing kept: read back
    read_back_ax, _ = _process(landed, tmp_path / "read-back")
    assert not reads["memory"]
    assert snapshot(ax, MARTS) == snapshot(read_back_ax, MARTS)
    assert snapshot(ax, MARTS)["marts.campaign_hourly"]  # the marts are not empty


def test_the_next_runs_update_takes_the_new_rows_from_memory(
    landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An incremental update reads the rows its batch appended (``IcebergCurated.added``):
    from memory too."""
    import advertisex
    from advertisex.lake.tables import Lake

    target = tmp_path / "twice"
    segments = sorted(p for p in (landed / "landing").rglob("*") if p.is_file())
    shutil.copytree(landed / "landing", target / "landing")
    first = advertisex.open(data_dir=target).runner.process(now=NOW)
    assert first.marts is not None and first.marts.mode == "rebuild"

    answered: list[str] = []
    written = Lake.written

    def spied(self: Lake, name: str, urls: Any, fields: Any) -> Any:
        rows = written(self, name, urls, fields)
        if rows is not None:
            answered.append(name)
        return rows

    monkeypatch.setattr(Lake, "written", spied)
    again = advertisex.open(data_dir=target)
    late = tmp_path / "late.ndjson"  # one more impression file, landed after the first run
    impressions = [p for p in segments if "impressions" in str(p)]
    late.write_bytes(impressions[0].read_bytes().replace(b'"imp-', b'"late-imp-'))
    again.ingest([str(late)], source="impressions")
    report = again.runner.process(now=NOW)
    assert len(report.batches) == 1 and report.marts is not None
    assert report.marts.mode == "incremental"
    assert "curated.impressions" in answered


@pytest.mark.parametrize("run", ["several batches", "one batch too big"])
def test_a_run_of_several_batches_or_a_big_one_keeps_nothing(
    run: str, landed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[Any] = []
    monkeypatch.setattr(
        "advertisex.lake.tables.Lake.keep_written", lambda self, *args: kept.append(args)
    )
    processor: dict[str, Any] = {}
    if run == "several batches":
        processor["batch_max_bytes"] = 200_000
    else:  # what it kept would pass the budget: it keeps nothing from the start
        monkeypatch.setattr(runner, "_KEPT_BATCH_BYTES", 200_000)
    _, report = _process(landed, tmp_path / "run", **processor)
    assert (len(report.batches) > 1) == (run == "several batches")
    assert kept == []
