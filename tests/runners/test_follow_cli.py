"""``advertisex process --follow``: the continuous processor as a user runs it.

A real CLI process follows a landing zone: segments landed while it runs are committed
batch by batch, the marts follow, and SIGTERM stops it cleanly between batches.
``report refresh --rebuild`` then recomputes the same marts. The wiring is the same for
every engine (``--engine`` only picks the runner: tests/spark/test_spark_follow.py runs
the follow loop on Spark in-process, on the shared session, without a JVM per process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advertisex.util import jsonutil

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMPRESSION = (
    '{{"impression_id":"imp-{n}","timestamp":"2026-11-20T10:0{n}:00Z","ad_creative_id":"cr-1",'
    '"campaign_id":"cmp-1","user_id":"u-{n}","website":"https://example.com/"}}\n'
)


def _lines(log: Path) -> list[dict]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            out.append(jsonutil.loads(line))
    return out


def _all_in_the_marts(lines: list[dict]) -> bool:
    """Three impressions committed, and the marts brought up to date after the last batch."""
    batches = [k for k, line in enumerate(lines) if "batch_id" in line]
    marts = [k for k, line in enumerate(lines) if "marts" in line]
    accepted = sum(lines[k]["accepted"] for k in batches)
    return accepted == 3 and bool(marts) and marts[-1] > batches[-1]


def _wait_for(log: Path, process: subprocess.Popen, predicate, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate(_lines(log)):
            return
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting:\n{log.read_text()}")


@pytest.mark.parametrize("gather", ["0", "20"], ids=["at-once", "gathered"])
def test_process_follow_commits_new_segments_and_keeps_the_marts(
    tmp_path: Path, gather: str
) -> None:
    """``gather``: ``processor.follow_gather_seconds`` — with 20 s the two segments landed
    after the first batch wait for each other: one batch, not one each."""
    import advertisex

    data = tmp_path / "data"
    ax = advertisex.open(data_dir=data)
    ax.landing.write_segment("impressions", IMPRESSION.format(n=1).encode(), label="first")
    log = tmp_path / "follow.log"
    (tmp_path / "advertisex.toml").write_text("")  # defaults, whatever the working directory
    env = {
        **os.environ,
        "ADVERTISEX_DATA_DIR": str(data),
        "ADVERTISEX_CONFIG": str(tmp_path / "advertisex.toml"),
        "ADVERTISEX_CORRELATION__FOLLOW_MARTS_EVERY_SECONDS": "0",
    }
    env["ADVERTISEX_PROCESSOR__FOLLOW_GATHER_SECONDS"] = gather
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "advertisex.cli.app",
                "process",
                "--follow",
                "--interval",
                "0.2",
                "--format",
                "json",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(log, process, lambda lines: any("batch_id" in line for line in lines))
        for n, label in ((2, "second"), (3, "third")):
            ax.landing.write_segment("impressions", IMPRESSION.format(n=n).encode(), label=label)
        _wait_for(log, process, _all_in_the_marts)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    accepted = [line["accepted"] for line in _lines(log) if "batch_id" in line]
    assert (accepted == [1, 2]) if gather == "20" else (sum(accepted) == 3)
    assert ax.query("select count(*) as n from curated.impressions").to_pylist() == [{"n": 3}]
    hourly = "select sum(impressions) as n from marts.campaign_hourly"
    assert ax.query(hourly).to_pylist() == [{"n": 3}]

    # And a full recompute of the marts from the CLI gives the same marts.
    before = ax.query("select * exclude (users) from marts.campaign_hourly order by all")
    refresh = subprocess.run(
        [
            sys.executable,
            "-m",
            "advertisex.cli.app",
            "report",
            "refresh",
            "--rebuild",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refresh.returncode == 0, refresh.stderr
    assert jsonutil.loads(refresh.stdout)[0]["mode"] == "rebuild"
    after = ax.query("select * exclude (users) from marts.campaign_hourly order by all")
    assert after == before and after.num_rows > 0
