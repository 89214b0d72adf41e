"""``advertisex process`` beside another processor, and interrupted: one line, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from advertisex.runners.embedded import EmbeddedRunner
from advertisex.runners.runner import batch_id_for

pytestmark = pytest.mark.integration


@pytest.fixture
def landed(tmp_path: Path, open_lake) -> Path:
    """A data dir whose landing zone holds a small generated day, not processed yet."""
    from advertisex import synth

    drop, data = tmp_path / "drop", tmp_path / "data"
    synth.generate(drop, events=3000, seed=5, start=date(2026, 11, 20), days=1)
    open_lake(data).ingest([str(drop / s) for s in ("impressions", "clicks", "bids")])
    return data


def counts(data: Path, open_lake) -> dict[str, int]:
    ax = open_lake(data)
    row = ax.query(
        "select (select count(*) from curated.impressions) i, (select count(*) from curated.bid_requests) b,"
        " (select sum(records_in) from ops.batches) r"
    ).to_pylist()[0]
    return row


def test_process_beside_a_running_processor_is_refused_naming_it(cli, landed, lock_holder):
    holder = lock_holder(landed)
    code, _, err = cli(landed, "process")
    assert code == 2 and "Traceback" not in err
    assert f"another processor is running (pid {holder.pid} " in err


@pytest.mark.slow
def test_two_processes_at_once_commit_every_record_once(landed, open_lake):
    env = dict(
        os.environ, ADVERTISEX_DATA_DIR=str(landed), ADVERTISEX_CORRELATION__UPDATE_MARTS="false"
    )
    command = [sys.executable, "-m", "advertisex.cli.app", "process", "--format", "json"]
    both = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(120), *p.communicate()) for p in both]
    for code, _, err in results:
        assert "Traceback" not in err
        assert code == 0 or (code == 2 and "another processor is running (pid" in err), err
    records = sum(
        sum(s["records_in"] for s in json.loads(out)["sources"])
        for code, out, _ in results
        if code == 0
    )
    assert records == 3000
    assert counts(landed, open_lake)["r"] == 3000


@pytest.mark.slow
@pytest.mark.parametrize(
    "duckdb_style", [False, True], ids=["KeyboardInterrupt", "Query interrupted"]
)
def test_ctrl_c_names_the_batch_left_uncommitted_and_exits_130(
    cli, landed, open_lake, monkeypatch, duckdb_style
):
    original = EmbeddedRunner.run_batch
    calls: list[list] = []

    def second_batch_interrupted(self, segments, *args, **kwargs):
        calls.append(segments)
        if len(calls) == 1:
            return original(self, segments, *args, **kwargs)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(10)  # the interrupt arrives here
        except BaseException:
            if duckdb_style:  # what DuckDB makes of it inside a query
                raise RuntimeError("Query interrupted") from None
            raise
        raise AssertionError("no interrupt")

    monkeypatch.setattr(EmbeddedRunner, "run_batch", second_batch_interrupted)
    code, _, err = cli(landed, "process", ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES="200000")
    assert code == 130 and "Traceback" not in err
    assert f"interrupted: batch {batch_id_for(calls[1])} not committed" in err
    assert "run `advertisex process` again" in err
    done = open_lake(landed).lake.done_segments()
    assert done == {s.name for s in calls[0]}  # the first batch, whole; nothing of the second
    monkeypatch.setattr(EmbeddedRunner, "run_batch", original)
    code, _, _ = cli(landed, "process")
    assert code == 0 and counts(landed, open_lake)["r"] == 3000


def test_one_batch_and_one_file_are_said_in_the_singular(cli, tmp_path, open_lake, capsys):
    """``replaying 1 batches (1 landing files)`` and the follow loop's ``1 segments``: the
    lines a new lake and live traffic print most."""
    from types import SimpleNamespace

    from advertisex.cli.output import Format
    from advertisex.cli.serve import _print_batch

    data = tmp_path / "data"
    ax = open_lake(data)
    line = '{"timestamp":"2026-11-20T01:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'
    ax.landing.write_segment("impressions", line.encode(), label="one")
    assert len(ax.process().batches) == 1
    code, _, err = cli(data, "replay", "--from", "today")
    assert code == 0 and "replaying 1 batch (1 landing file) …" in err, err

    counts = {"accepted": 1}
    batch = SimpleNamespace(
        batch_id="b-1", segments=1, records_in=1, total=lambda k: counts.get(k, 0),
        seconds=0.1, lag_seconds=0.2,
    )  # fmt: skip
    capsys.readouterr()
    _print_batch(batch, Format.table)
    assert "batch b-1: 1 segment, 1 record → 1 accepted" in capsys.readouterr().out


def test_replay_says_how_many_rows_retention_left_out(cli, open_lake, tmp_path: Path) -> None:
    from datetime import timedelta

    from advertisex.util.timeutil import utcnow

    data = tmp_path / "data"
    keep = {"ADVERTISEX_RETENTION__DAYS": '{"curated.impressions": 30}'}
    ax = open_lake(data, retention={"days": {"curated.impressions": 30}})
    old = utcnow() - timedelta(days=60)
    line = f'{{"timestamp":"{old:%Y-%m-%dT%H:%M:%SZ}","ad_creative_id":"c","user_id":"u","website":"w"}}\n'
    ax.landing.write_segment("impressions", line.encode())
    assert len(ax.process().batches) == 1
    code, out, err = cli(data, "replay", **keep)
    assert code == 0, err
    assert "1 row of days past their table's retention was left out (1 curated.impressions)" in (
        out + err
    )
    code, out, err = cli(data, "replay", "--format", "json", **keep)
    assert code == 0 and json.loads(out)["past_retention"] == {"curated.impressions": 1}, err


def test_process_and_the_follow_loop_say_how_many_rows_retention_left_out(
    cli, open_lake, tmp_path: Path, capsys
) -> None:
    """A backfill's events of days past the curated retention were committed and stayed
    until the next ``maintain``. They are expired at the end of the run (the follow loop:
    after its marts' update), and counted as accepted: ``process`` says how many, in its
    table and its JSON, and so does the follow loop's line of the batch."""
    import threading
    from datetime import timedelta

    from advertisex.cli.output import Format
    from advertisex.cli.serve import _print_batch
    from advertisex.runners.follow import Follower
    from advertisex.util.timeutil import utcnow

    def count(ax: Any) -> int:
        return ax.query("select count(*) n from curated.impressions")["n"][0].as_py()

    data = tmp_path / "data"
    keep = {"ADVERTISEX_RETENTION__DAYS": '{"curated.impressions": 30}'}
    ax = open_lake(data, retention={"days": {"curated.impressions": 30}})
    old = utcnow() - timedelta(days=60)
    line = '{{"timestamp":"{at:%Y-%m-%dT%H:%M:%SZ}","ad_creative_id":"c","user_id":"u{n}","website":"w"}}\n'
    line = line.replace("{at:%Y-%m-%dT%H:%M:%SZ}", f"{old:%Y-%m-%dT%H:%M:%SZ}")
    ax.landing.write_segment("impressions", line.format(n=1).encode())
    code, out, err = cli(data, "process", **keep)
    assert code == 0, err
    assert "1 row of days past their table's retention was left out (1 curated.impressions)" in (
        out + err
    )
    assert count(open_lake(data)) == 0  # not until the next maintain
    ax.landing.write_segment("impressions", line.format(n=2).encode())
    code, out, err = cli(data, "process", "--format", "json", **keep)
    assert code == 0 and json.loads(out)["past_retention"] == {"curated.impressions": 1}, err

    ax.landing.write_segment("impressions", (line.format(n=3) + line.format(n=4)).encode())
    batches: list = []
    follower = Follower(
        open_lake(data, retention={"days": {"curated.impressions": 30}}).runner, interval=0.01
    )
    following = threading.Thread(target=follower.run, args=(batches.append,))
    following.start()
    try:
        for _ in range(600):  # until the follower expired them, after its batch
            if count(open_lake(data)) == 0 and batches:
                break
            time.sleep(0.05)
    finally:
        follower.stop.set()
        following.join(60)
    assert [b.past_retention for b in batches] == [{"curated.impressions": 2}]
    capsys.readouterr()
    _print_batch(batches[0], Format.table)
    assert "2 accepted (2 of days past their table's retention, left out)" in (
        capsys.readouterr().out
    )
    _print_batch(batches[0], Format.json)
    assert json.loads(capsys.readouterr().out)["past_retention"] == {"curated.impressions": 2}
    assert count(open_lake(data)) == 0
