"""The Spark engine from the CLI: an unreachable master is one line at once, and Spark's own
log stays off the terminal unless --verbose."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("verb", [["process"], ["process", "--follow"], ["report", "refresh"]])
def test_an_unreachable_master_is_one_line_naming_it(tmp_path, monkeypatch, capsys, verb):
    from advertisex.cli.app import main

    def never(*args, **kwargs):
        raise AssertionError("started Spark for a master that does not answer")

    monkeypatch.setattr("advertisex.runners.spark.spark_session", never)
    monkeypatch.setenv("ADVERTISEX_DATA_DIR", str(tmp_path))
    master = f"spark://127.0.0.1:{dead_port()}"
    monkeypatch.setattr(sys, "argv", ["advertisex", *verb, "--engine", "spark", "--master", master])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err
    assert err.startswith(f"error: cannot reach the Spark master {master}: ")
    assert len(err.strip().splitlines()) == 2  # the error and its hint


@pytest.mark.slow
def test_spark_keeps_its_log_off_the_terminal(spark_available, tmp_path, seed_samples):
    import advertisex

    data = tmp_path / "data"
    ax = advertisex.open(data_dir=data)
    ax.ingest([str(seed_samples)])
    env = {**os.environ, "ADVERTISEX_DATA_DIR": str(data), "ADVERTISEX_CONFIG": ""}
    command = [sys.executable, "-m", "advertisex.cli.app", "process", "--engine", "spark"]
    result = subprocess.run(
        [*command, "--master", "local[1]"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "WARN" not in result.stderr and "log4j" not in result.stderr.lower(), result.stderr
    log = Path(data) / "logs" / "spark.log"
    assert log.exists() and log.stat().st_size > 0  # what Spark said went here
