"""Verbs that decode start the decoder workers' forkserver first thing, and the runner's pool
then forks its workers from that very server; other verbs, and runs whose decoding is not
the embedded runner's isolated workers, start none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from advertisex.cli import app
from advertisex.lazy_settings import raw_setting

pytestmark = pytest.mark.usefixtures("no_stray_config")  # tests/conftest.py


@pytest.fixture
def started(monkeypatch) -> list[bool]:
    """Calls of the forkserver's start, recorded instead of made."""
    calls: list[bool] = []
    monkeypatch.setattr(
        "advertisex.formats.preload.start_decoder_forkserver", lambda: calls.append(True) or True
    )
    return calls


@pytest.mark.parametrize(
    ("args", "config", "variables", "expected"),
    [
        (["process"], None, {}, True),
        (["process", "--format", "json"], None, {}, True),
        (["demo", "--events", "1000"], None, {}, True),
        (["process", "--engine", "embedded"], "[scale]\nengine = 'spark'\n", {}, True),
        (["process", "--engine=embedded"], None, {"ADVERTISEX_SCALE__ENGINE": "spark"}, True),
        # the demo runs the embedded runner whatever the settings say of Spark
        (["demo"], "[scale]\nengine = 'spark'\n", {}, True),
        # verbs that decode nothing, and help
        (["query", "select 1"], None, {}, False),
        (["ingest", "files"], None, {}, False),
        (["--version"], None, {}, False),
        ([], None, {}, False),
        (["process", "--help"], None, {}, False),
        (["demo", "-h"], None, {}, False),
        # runs on Spark
        (["process", "--engine", "spark"], None, {}, False),
        (["process", "--engine=spark"], None, {}, False),
        (["process", "--master", "local[2]"], None, {}, False),
        (["process", "--master=local[2]"], None, {}, False),
        (["process"], "[scale]\nengine = 'spark'\n", {}, False),
        (["process"], None, {"advertisex_scale__engine": "spark"}, False),
        # decoding in this process, not in workers
        (["process"], "[processor]\ndecode_isolated = false\n", {}, False),
        (["demo"], None, {"ADVERTISEX_PROCESSOR__DECODE_ISOLATED": "0"}, False),
    ],
)
def test_the_forkserver_starts_first_only_for_a_verb_that_decodes_in_workers(
    monkeypatch, started, args, config, variables, expected
):
    if config is not None:
        Path("advertisex.toml").write_text(config)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert app._start_decoders(args) is expected
    assert started == ([True] if expected else [])


def test_a_raw_setting_is_what_the_variable_or_the_file_says(monkeypatch):
    assert raw_setting("scale", "engine") is None
    Path("advertisex.toml").write_text("[scale]\nengine = 'spark'\n[processor]\nworkers = 3\n")
    assert raw_setting("scale", "engine") == "spark"
    assert raw_setting("processor", "workers") == 3
    monkeypatch.setenv("Advertisex_Scale__Engine", "embedded")  # variables: any case
    assert raw_setting("scale", "engine") == "embedded"
    Path("advertisex.toml").write_text("[scale\n")  # broken: load_settings will say so
    assert raw_setting("processor", "workers") is None


_EARLY_THEN_POOL = """
import os
from multiprocessing import forkserver

from advertisex.cli import app
from advertisex.formats.bounded import decode_pool
from advertisex.util.isolate import Budget

assert app._start_decoders(["process"])
server = forkserver._forkserver._forkserver_pid
pool = decode_pool()
assert pool.run(Budget(seconds=60, memory_bytes=1 << 30), os.getppid) == server
print("forked from the early forkserver")
"""


def test_the_runners_decoder_workers_come_from_the_forkserver_started_early():
    """Started before the pool exists, the forkserver is the one the pool's workers are
    forked from (not a second one), with the decoders' modules preloaded."""
    done = subprocess.run(
        [sys.executable, "-c", _EARLY_THEN_POOL],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert "forked from the early forkserver" in done.stdout
