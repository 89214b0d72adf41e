"""The Spark engine from the CLI: an unreachable master is one line at once, and Spark's own
log stays off the terminal unless --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ports import free_port

pytestmark = pytest.mark.integration


def dead_port() -> int:
    return free_port()  # nothing listens on it


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


def test_what_the_jvm_prints_goes_to_the_log_not_the_terminal(tmp_path, capfd):
    """spark_session starts the JVM inside _jvm_output_to (unless --verbose): a process
    started there keeps writing to the log, however long it runs."""
    from advertisex.runners.spark import _jvm_output_to

    log = tmp_path / "logs" / "spark.log"
    with _jvm_output_to(log):
        child = subprocess.Popen(
            ["sh", "-c", "sleep 0.2; echo 'WARN NativeCodeLoader: …' >&2; echo started"]
        )
    print("after the block", flush=True)
    child.wait(30)
    out, err = capfd.readouterr()
    assert out == "after the block\n" and err == ""
    assert log.read_text() == "WARN NativeCodeLoader: …\nstarted\n"


def test_the_spark_log_is_moved_aside_once_it_is_large(tmp_path, monkeypatch):
    """Every run appends to the log: past its size it becomes spark.log.1 (the one before
    that goes), so months of runs keep two logs, not one that only grows."""
    from advertisex.runners import spark

    monkeypatch.setattr(spark, "SPARK_LOG_KEEP", 10)
    log = tmp_path / "logs" / "spark.log"
    for run in ("first run, long enough\n", "second\n", "third\n"):
        with spark._jvm_output_to(log):
            os.write(2, run.encode())
    assert log.read_text() == "second\nthird\n"
    assert (tmp_path / "logs" / "spark.log.1").read_text() == "first run, long enough\n"
