"""The marts kept longer than the curated tables survive ``advertisex report refresh --rebuild``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from advertisex.util.timeutil import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Curated rows kept 9 days (the marts: forever), the marts built as processing goes.
ENV = {
    "ADVERTISEX_RETENTION__DAYS": '{"curated": 9}',
    "ADVERTISEX_CORRELATION__UPDATE_MARTS": "true",
}


def _campaigns(cli, data: Path) -> list[dict[str, object]]:
    code, out, err = cli(
        data,
        "report",
        "campaigns",
        "--from",
        "today-12",
        "--to",
        "today",
        "--format",
        "json",
        **ENV,
    )
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def _processed(
    cli, tmp_path: Path, events: str, seed: str, days: str, sources: tuple[str, ...]
) -> Path:
    """A lake of ``days`` days of generated traffic from twelve days ago, processed."""
    data, drop = tmp_path / "data", tmp_path / "drop"
    code, _, err = cli(
        data, "generate", "--out", str(drop), "--events", events, "--seed", seed,
        "--start", "today-12", "--days", days,
    )  # fmt: skip
    assert code == 0, err
    for source in sources:
        code, _, err = cli(data, "ingest", str(drop / source), "--source", source, **ENV)
        assert code == 0, err
    assert cli(data, "process", **ENV)[0] == 0
    return data


def test_a_rebuild_after_curated_retention_keeps_the_older_marts(cli, tmp_path: Path) -> None:
    """Twelve days of traffic, the curated tables kept nine: retention leaves the report
    alone, and so does a rebuild — it recomputes only from the first day the curated
    tables answer whole (their cutoff and the seven-day click-through window on), says
    so, and keeps the days before it; it used to drop every day past the cutoff."""
    data = _processed(cli, tmp_path, "3000", "3", "12", ("impressions", "clicks", "bids"))
    built = _campaigns(cli, data)
    assert len({row["day"] for row in built}) == 12

    code, _, err = cli(data, "maintain", **ENV)
    assert code == 0, err
    assert _campaigns(cli, data) == built

    code, out, err = cli(data, "report", "refresh", "--rebuild", "--format", "json", **ENV)
    assert code == 0, err
    assert _campaigns(cli, data) == built
    since = (utcnow().date() - timedelta(days=8) + timedelta(days=7)).isoformat()
    assert json.loads(out)[0]["recomputed_from"] == since

    code, out, err = cli(data, "report", "refresh", "--rebuild", **ENV)
    assert code == 0, err
    assert f"recomputed from {since} on; their rows before it were kept" in " ".join(err.split())
    assert _campaigns(cli, data) == built


def test_a_rebuild_after_retention_took_every_curated_day_keeps_the_marts(
    cli, tmp_path: Path
) -> None:
    """Two days of traffic twelve days ago, the curated tables kept nine: retention takes
    every curated row. With the retention setting removed since, the curated tables name
    no cutoff either — a rebuild then has nothing to recompute from and keeps the marts
    whole (it used to replace every mart row by nothing)."""
    data = _processed(cli, tmp_path, "1000", "5", "2", ("impressions", "clicks"))
    built = _campaigns(cli, data)
    assert built
    code, _, err = cli(data, "maintain", **ENV)
    assert code == 0, err
    code, out, err = cli(
        data, "query", "select count(*) as n from curated.impressions", "--format", "json"
    )
    assert code == 0 and json.loads(out) == [{"n": 0}], (out, err)

    unset = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "true"}
    code, out, err = cli(data, "report", "refresh", "--rebuild", "--format", "json", **unset)
    assert code == 0, err
    assert json.loads(out)[0]["kept_everything"] is True
    assert _campaigns(cli, data) == built
