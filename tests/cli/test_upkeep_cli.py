"""``advertisex maintain``: what it would do, what it did, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EAGER = {"ADVERTISEX_MAINTENANCE__MIN_INPUT_FILES": "2"}


def _impressions(user: str, n: int) -> bytes:
    line = (
        '{"timestamp":"2026-11-20T0%d:00:00Z","ad_creative_id":"c","user_id":"%s","website":"w"}\n'
    )
    return "".join(line % (k % 9, f"{user}-{k}") for k in range(n)).encode()


@pytest.fixture
def lake_dir(tmp_path: Path, open_lake) -> Path:
    data = tmp_path / "data"
    ax = open_lake(data, processor={"batch_max_bytes": 100})  # one batch per segment
    for k in range(4):
        ax.landing.write_segment("impressions", _impressions(f"u{k}", 5), label=f"s{k}")
    assert len(ax.process().batches) == 4
    return data


def test_maintain_dry_run_then_for_real(cli, lake_dir: Path) -> None:
    code, out, err = cli(lake_dir, "maintain", "--dry-run", "--format", "json", **EAGER)
    assert code == 0, err
    planned = {t["table"]: t for t in json.loads(out)["tables"]}
    assert planned["curated.impressions"]["files_compacted"] == 4
    assert planned["curated.impressions"]["data_files_after"] == 4  # nothing changed

    code, out, err = cli(lake_dir, "maintain", "--table", "curated.impressions", **EAGER)
    assert code == 0, err
    assert "curated.impressions" in out and "4 → 1" in out
    code, out, _ = cli(
        lake_dir, "query", "select count(*) n from curated.impressions", "-f", "json"
    )
    assert json.loads(out) == [{"n": 20}]
    code, out, _ = cli(
        lake_dir, "query", "select distinct trigger from ops.maintenance", "-f", "json"
    )
    assert json.loads(out) == [{"trigger": "command"}]


def test_maintain_refuses_an_unknown_table_and_short_retention(cli, lake_dir: Path) -> None:
    code, _, err = cli(lake_dir, "maintain", "--table", "curated.nope")
    assert code == 2 and "unknown table 'curated.nope'" in err and "Traceback" not in err
    short = {"ADVERTISEX_RETENTION__DAYS": '{"curated": 3}'}
    code, _, err = cli(lake_dir, "maintain", **short)
    assert code == 2 and "Traceback" not in err
    assert "curated = 3 days is shorter than the dedupe horizon" in err
    attribution = {
        "ADVERTISEX_RETENTION__DAYS": '{"marts.attributed_conversions": 7}',
        "ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS": "2",
        "ADVERTISEX_CORRELATION__CLICK_THROUGH_WINDOW_SECONDS": str(30 * 86400),
    }
    code, _, err = cli(lake_dir, "maintain", **attribution)
    assert code == 2 and "shorter than the click-through window" in err
