"""Reports on a generated dataset against truth.json and against plain brute-force loops.

The data arrives the awkward way round — impressions first, then clicks and
conversions, then bid requests, each its own processing run — so the marts are built
incrementally; a rebuild must then change nothing.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

import advertisex
from advertisex.reports.common import ReportOptions
from advertisex.synth import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = date(2026, 11, 1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    base = tmp_path_factory.mktemp("reports")
    truth = generate(base / "in", events=30_000, seed=5, start=START, days=2)
    ax = advertisex.open(data_dir=base / "data")
    modes = []
    for source in ("impressions", "clicks", "bids"):
        ax.ingest([str(base / "in" / source)])
        ax.process()
        modes.append(ax.refresh_marts().mode)
    assert modes == ["unchanged"] * 3  # processing already brought the marts up to date
    return ax, truth


def _rows(ax: Any, sql: str) -> list[dict[str, Any]]:
    return ax.query(sql).to_pylist()


def test_campaign_report_matches_truth(platform: tuple[Any, dict[str, Any]]) -> None:
    ax, truth = platform
    got = {(r["campaign_id"], r["day"].isoformat()): r for r in ax.report_campaigns().to_pylist()}
    expected_days = truth["ground_truth"]["campaign_days"]
    assert len(got) == len(expected_days)
    for expected in expected_days:
        row = got[(expected["campaign_id"], expected["day"])]
        assert row["impressions"] == expected["impressions"] - expected.get("bot_impressions", 0)
        assert row["unique_users"] == expected.get("human_users", expected["users"])
        assert row["clicks"] == expected["clicks"] - expected.get("bot_clicks", 0)
        assert row["conversions"] == expected["conversions"]
        assert row["spend"] == pytest.approx(
            expected.get("human_spend", expected["spend"]), abs=1e-6
        )
        if row["impressions"]:
            assert row["ecpm"] == pytest.approx(1000 * row["spend"] / row["impressions"], abs=1e-3)


def test_auction_numbers_match_truth(platform: tuple[Any, dict[str, Any]]) -> None:
    ax, truth = platform
    bids = ax.report("bids").to_pylist()
    facts = truth["ground_truth"]
    assert sum(r["wins"] for r in bids) == facts["won_bids"]
    assert sum(r["no_bids"] for r in bids) == facts["no_bids"]
    assert sum(r["bid_requests"] for r in bids) == truth["tables"]["bid_requests"]["unique"]
    (total,) = [r for r in ax.report("funnel").to_pylist() if r["campaign_id"] == "(all)"]
    assert total["wins"] == facts["won_bids"]
    assert total["impressions"] == truth["tables"]["impressions"]["unique"]
    assert total["clicks"] == truth["tables"]["clicks"]["unique"]


def brute_force_attribution(ax: Any) -> dict[str, int]:
    """Attributed conversions per campaign, by the rules, with plain loops over curated rows."""
    impressions, clicks = defaultdict(list), defaultdict(list)
    for r in _rows(ax, "select user_id, campaign_id, event_time from curated.impressions"):
        impressions[(r["user_id"], r["campaign_id"])].append(r["event_time"])
    for r in _rows(ax, "select user_id, campaign_id, event_time from curated.clicks"):
        clicks[(r["user_id"], r["campaign_id"])].append(r["event_time"])
    credited: dict[str, int] = defaultdict(int)
    for c in _rows(ax, "select user_id, campaign_id, event_time from curated.conversions"):
        key, t = (c["user_id"], c["campaign_id"]), c["event_time"]
        by_click = [k for k in clicks[key] if t - timedelta(days=7) <= k <= t]
        by_view = [i for i in impressions[key] if t - timedelta(days=1) <= i <= t]
        if by_click or by_view:
            credited[c["campaign_id"]] += 1
    return dict(credited)


def test_attributed_conversions_match_brute_force(platform: tuple[Any, dict[str, Any]]) -> None:
    ax, _ = platform
    expected = brute_force_attribution(ax)
    for model in ("last", "first", "linear"):
        funnel = ax.report("funnel", ReportOptions(model=model)).to_pylist()
        got = {r["campaign_id"]: r["conversions"] for r in funnel if r["campaign_id"] != "(all)"}
        assert {c: round(v) for c, v in got.items() if v} == expected, model


def test_click_matches_agree_with_the_impression_ids_clicks_carry(
    platform: tuple[Any, dict[str, Any]],
) -> None:
    ax, truth = platform
    rows = _rows(
        ax,
        """select c.impression_id named, a.match, a.impression_id matched
                        from curated.clicks c join marts.attributed_clicks a using (event_id)""",
    )
    assert len(rows) == truth["tables"]["clicks"]["unique"]
    carried = [r for r in rows if r["named"] is not None]
    assert all(r["match"] == "exact" and r["matched"] == r["named"] for r in carried)
    counts = truth["ground_truth"]["clicks_by_impression"]
    assert len(carried) == counts["with_impression_id"]


def test_reach_over_both_days_is_not_the_sum_of_the_days(
    platform: tuple[Any, dict[str, Any]],
) -> None:
    ax, _ = platform
    reach = {r["campaign_id"]: r["users"] for r in ax.report("users")["reach"].to_pylist()}
    exact = _rows(
        ax, "select campaign_id, count(distinct user_id) n from curated.impressions group by 1"
    )
    assert reach == {r["campaign_id"]: r["n"] for r in exact}


def test_a_rebuild_changes_no_report(platform: tuple[Any, dict[str, Any]]) -> None:
    ax, _ = platform
    before = {name: _dump(ax.report(name)) for name in ("campaigns", "funnel", "bids", "users")}
    assert ax.refresh_marts(rebuild=True).mode == "rebuild"
    after = {name: _dump(ax.report(name)) for name in ("campaigns", "funnel", "bids", "users")}
    assert before == after


def _dump(result: Any) -> Any:
    if isinstance(result, dict):
        return {k: v.to_pylist() for k, v in result.items()}
    return result.to_pylist()


def test_cli_reports_in_every_format(
    platform: tuple[Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ax, _ = platform
    from advertisex.cli.app import app

    monkeypatch.setenv("ADVERTISEX_DATA_DIR", str(ax.settings.data_dir))
    runner = CliRunner()
    campaigns = runner.invoke(
        app,
        [
            "report",
            "campaigns",
            "--campaign",
            "cmp-001",
            "--from",
            START.isoformat(),
            "--to",
            START.isoformat(),
            "--format",
            "json",
        ],
    )
    rows = json.loads(campaigns.stdout)
    assert [(r["campaign_id"], r["day"]) for r in rows] == [("cmp-001", START.isoformat())]
    assert {"cpa", "roas", "ecpm", "win_rate", "unique_users"} <= set(rows[0])
    users = json.loads(runner.invoke(app, ["report", "users", "--format", "json"]).stdout)
    assert set(users) == {"frequency", "reach", "time_to_click", "time_to_convert"}
    csv_text = runner.invoke(app, ["report", "bids", "--format", "csv"]).stdout
    assert csv_text.splitlines()[0].startswith("campaign_id,day,bid_requests,bids")
    table = runner.invoke(app, ["report", "funnel", "--model", "linear"])
    assert table.exit_code == 0 and "(all)" in table.stdout
    bad = runner.invoke(app, ["report", "funnel", "--model", "middle"])
    assert bad.exit_code != 0 and "last, first or linear" in str(bad.exception)


def test_report_options_refuse_reversed_ranges() -> None:
    from advertisex.errors import UserInputError

    with pytest.raises(UserInputError, match="before"):
        ReportOptions(start=START, end=START - timedelta(days=1))


WIDE_REPORTS = ("campaigns", "funnel", "bids", "hourly")


@pytest.mark.parametrize("width", [80, 100])
def test_wide_reports_are_tables_of_their_most_asked_columns_on_an_ordinary_terminal(
    platform: tuple[Any, dict[str, Any]], cli: Any, width: int
) -> None:
    """``report campaigns`` (18 columns) was one 19-line block per campaign and day below
    ≈ 190 columns, ``funnel``, ``bids`` and ``hourly`` blocks too at 80 and 100: each is a
    table of its keys and most asked columns that fits, and one line says what was left."""
    ax, _ = platform
    for name in WIDE_REPORTS:
        code, out, err = cli(ax.settings.data_dir, "report", name, COLUMNS=str(width))
        lines = out.splitlines()
        assert code == 0 and "one record per block" not in out, (name, width)
        assert max(len(line) for line in lines) <= width, (name, width)
        assert sum(line.startswith("│ cmp-001 ") for line in lines) >= 1, (name, width)
        left = re.fullmatch(
            rf"(\d+) more columns?, too wide for {width}: --columns all or --format json\|csv "
            r"shows (them|it)\n",
            err,
        )
        assert left is not None, (name, width, err)
        code, out, _ = cli(ax.settings.data_dir, "report", name, "--format", "json")
        assert len(json.loads(out)[0]) == int(left[1]) + _columns_shown(lines), (name, width)


def _columns_shown(lines: list[str]) -> int:
    return next(line for line in lines if line.startswith("│ ")).count("│") - 1


def test_every_column_of_a_wide_report_has_its_place_when_the_terminal_is_narrow(
    platform: tuple[Any, dict[str, Any]],
) -> None:
    from advertisex.cli.report import NARROWINGS

    ax, _ = platform
    assert set(NARROWINGS) == set(WIDE_REPORTS)
    for name, narrowing in NARROWINGS.items():
        columns = ax.report(name, ReportOptions(include_ivt=True)).column_names
        assert sorted(columns) == sorted([*narrowing.keys, *narrowing.wanted]), name


def test_report_columns_are_chosen_by_name_in_every_format(
    platform: tuple[Any, dict[str, Any]], cli: Any
) -> None:
    ax, _ = platform
    data = ax.settings.data_dir
    asked = ("report", "campaigns", "--columns", " spend, Campaign_ID,spend")
    code, out, err = cli(data, *asked, "--format", "csv")
    assert (code, err, out.splitlines()[0]) == (0, "", "spend,campaign_id")
    code, out, err = cli(data, *asked, "--format", "json")
    assert [list(row) for row in json.loads(out)][:1] == [["spend", "campaign_id"]]
    code, out, err = cli(
        data, "report", "funnel", "--columns", "bid_rate,campaign_id", COLUMNS="80"
    )
    assert (code, err) == (0, "") and "┃ bid_rate ┃ campaign_id ┃" in out
    code, out, err = cli(data, "report", "campaigns", "--columns", "all", COLUMNS="80")
    assert code == 0 and "one record per block" in out and err == ""
    code, out, err = cli(data, "report", "bids", "--columns", "day,shadng,wins,,x")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: --columns: no columns 'shadng', 'x' in this report\n")
    assert "name some of: campaign_id, day, bid_requests," in err and "shading" in err
    code, out, err = cli(data, "report", "hourly", "--columns", " ,", "--format", "csv")
    assert code == 2 and out == "" and err.startswith("error: --columns names no column")
