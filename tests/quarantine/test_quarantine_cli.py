"""``advertisex quarantine list|show|replay``: a real subprocess for the entry point, the rest in-process."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_list_show_replay_with_a_changed_setting(tmp_path, cli, run_subprocess, open_lake):
    data = tmp_path / "data"
    events = tmp_path / "imps.ndjson"
    events.write_text(
        '{"impression_id":"far","timestamp":"2099-01-01T00:00:00Z","ad_creative_id":"c",'
        '"user_id":"u","website":"w"}\n'
        '{"impression_id":"bad","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    )
    ax = open_lake(data)
    ax.ingest([str(events)])
    ax.runner.process()

    code, out, err = run_subprocess(data, "quarantine", "list", "--format", "json")
    assert code == 0, err
    assert {r["reason"]: r["records"] for r in json.loads(out)} == {
        "timestamp_in_future": 1,
        "required_missing:timestamp": 1,
    }
    _, out, _ = cli(data, "quarantine", "list")
    assert "timestamp_in_future" in out
    assert not re.search(r"\d\d:\d\d:\d\d[.+]", out)  # landing times short, as in status
    # On an 80-column terminal: a table of the counts (it was a block of 7 lines a reason).
    _, out, err = cli(data, "quarantine", "list", COLUMNS="80")
    assert "one record per block" not in out and "│ impressions │ timestamp_in_future " in out
    assert "1 more column, too wide for 80: --format json shows it" in err
    code, _, err = cli(data, "quarantine", "show", "--reason", "timestamp-in-future")
    assert code == 2 and "did you mean timestamp_in_future?" in err
    _, out, _ = cli(data, "quarantine", "show", "--reason", "timestamp_in_future")
    assert "timestamp_in_future" in out and '"far"' in out
    assert ".ndjson:1" in out  # landing file:position

    code, _, err = cli(data, "quarantine", "replay")
    assert code == 0 and "no change" in err

    # A far wider future skew (a changed setting) lets the record through on replay.
    skew = str(100 * 365 * 86400)
    code, out, err = cli(
        data, "quarantine", "replay", "-f", "json", ADVERTISEX_PROCESSOR__FUTURE_SKEW_SECONDS=skew
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["batch_id"].startswith("replay-")
    assert report["tables"] == {"curated.impressions": 1}
    _, out, _ = cli(data, "quarantine", "list", "--format", "json")
    assert [r["reason"] for r in json.loads(out)] == ["required_missing:timestamp"]

    code, _, err = run_subprocess(data, "quarantine", "list", "--source", "clickz")
    assert code == 2 and "unknown source 'clickz'" in err and "Traceback" not in err
    code, _, err = cli(data, "quarantine", "show", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday'" in err


def test_show_cuts_a_long_raw_text_and_json_gives_it_whole(tmp_path, cli, open_lake):
    """A damaged file's bytes or a runaway line can be megabytes: ``show`` prints the first
    SHOWN_RAW_CHARS of it and says how much more there is; ``--format json`` all of it."""
    from advertisex.model.reasons import SHOWN_RAW_CHARS

    data = tmp_path / "data"
    runaway = '{"impression_id":"long","website":"' + "w" * 5000 + "\n"  # not JSON: no close
    events = tmp_path / "imps.ndjson"
    events.write_text('{"impression_id":"i","ad_creative_id":"c","user_id":"u"}\n' + runaway)
    ax = open_lake(data)
    ax.ingest([str(events)])
    ax.runner.process()

    _, out, _ = cli(data, "quarantine", "show", "--reason", "json_invalid")
    more = len(runaway.rstrip("\n")) - SHOWN_RAW_CHARS
    assert f"… ({more:,} more characters: --format json shows the raw text whole)" in out
    assert "w" * SHOWN_RAW_CHARS not in out
    _, out, _ = cli(data, "quarantine", "show", "--reason", "json_invalid", "--format", "json")
    assert [r["raw"] for r in json.loads(out)] == [runaway.rstrip("\n")]
