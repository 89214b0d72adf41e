"""``advertisex maintain``: what it would do, what it did, and clear refusals."""

from __future__ import annotations

import json
import re
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


@pytest.mark.slow
def test_maintain_dry_run_then_for_real(cli, lake_dir: Path) -> None:
    code, out, err = cli(lake_dir, "maintain", "--dry-run", "--format", "json", **EAGER)
    assert code == 0, err
    planned = {t["table"]: t for t in json.loads(out)["tables"]}
    assert planned["curated.impressions"]["files_compacted"] == 4
    assert planned["curated.impressions"]["data_files_after"] == 4  # nothing changed
    code, out, err = cli(lake_dir, "maintain", "--dry-run", "-t", "curated.impressions", **EAGER)
    assert code == 0 and "would do (dry run" in out
    assert "4 → 4" not in out and "→" not in out  # what is, not an "after" that would not be
    # On a 100-column terminal: a table (it was a block of 11 lines a table), the error kept.
    code, out, err = cli(lake_dir, "maintain", "--dry-run", COLUMNS="100", **EAGER)
    assert code == 0 and "one record per block" not in out
    assert re.search(r"┃ table +┃ files ┃ .* ┃ error ┃", out)
    assert re.search(r"\d+ more columns?, too wide for 100: --format json shows", err)

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
    code, out, _ = cli(lake_dir, "status", "--format", "json")
    lake = {row["table"]: row for row in json.loads(out)["lake"]}
    assert lake["curated.impressions"]["data_files"] == 1
    assert lake["curated.impressions"]["last_maintenance"] is not None
    assert (
        lake["ops.batches"]["data_files"] == 4 and lake["ops.batches"]["last_maintenance"] is None
    )


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


def test_forget_from_the_command_line(cli, lake_dir: Path, tmp_path: Path) -> None:
    code, _, err = cli(lake_dir, "forget", "--user-id", "never-seen")
    assert code == 0 and "nothing to forget" in err
    code, _, err = cli(lake_dir, "forget")
    assert code == 2 and "no user id to forget" in err and "Traceback" not in err
    code, _, err = cli(lake_dir, "forget", "--from-file", str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read" in err

    ids = tmp_path / "ids.txt"
    ids.write_text("# requests of 2026-11-21\nu1-0\n\nu2-3  # by email\n")
    code, out, err = cli(lake_dir, "forget", "--from-file", str(ids), "--format", "json")
    assert code == 0, err
    done = json.loads(out)
    assert done["found"] == 2 and done["rows_removed"]["curated.impressions"] == 2
    assert done["rows_removed"]["landing"] == 2
    code, out, _ = cli(
        lake_dir, "query", "select count(*) n from curated.impressions", "-f", "json"
    )
    assert json.loads(out) == [{"n": 18}]


def test_forget_from_a_file_reads_a_hash_inside_an_id_as_part_of_it(
    cli, lake_dir: Path, tmp_path: Path
) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("u1-0#x  # not u1-0, who is another user\n")
    code, out, err = cli(lake_dir, "forget", "--from-file", str(ids), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["found"] == 0  # u1-0 untouched
    code, out, _ = cli(
        lake_dir, "query", "select count(*) n from curated.impressions", "-f", "json"
    )
    assert json.loads(out) == [{"n": 20}]
    ids.write_bytes(b"u1-0\n\xffu2\n")
    code, _, err = cli(lake_dir, "forget", "--from-file", str(ids))
    assert code == 2 and "is not UTF-8 text" in err and "Traceback" not in err


def test_forget_refuses_an_id_too_long_to_search_for(cli, lake_dir: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("u1-0\n" + "x" * 3_000_000 + "\n")  # a file with its line ends lost
    code, _, err = cli(lake_dir, "forget", "--from-file", str(ids))
    assert code == 2 and "a user id of 3,000,000 characters" in err and "Traceback" not in err
    code, out, _ = cli(
        lake_dir, "query", "select count(*) n from curated.impressions", "-f", "json"
    )
    assert json.loads(out) == [{"n": 20}]  # nothing erased


HOLD_MAINTENANCE = (
    "import sys, time; from pathlib import Path; from advertisex.runners.lock import maintenance_lock\n"
    "with maintenance_lock(Path(sys.argv[1])):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


def test_a_second_maintain_at_once_is_refused_naming_the_first(cli, lake_dir: Path) -> None:
    """Two ``maintain`` runs at once (a cron job and someone at the terminal) each skipped
    what the other was changing, recording a conflict; the second now leaves the lake to
    the first and says who it is."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_MAINTENANCE, str(lake_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, out, err = cli(lake_dir, "maintain")
        assert code == 2 and "Traceback" not in err and out == ""
        assert f"error: another maintain is running (pid {holder.pid} " in err
        code, _, err = cli(lake_dir, "maintain", "--dry-run")  # a look needs no lock
        assert code == 0, err
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    code, _, err = cli(lake_dir, "maintain")  # the first one gone: its lock with it
    assert code == 0, err
