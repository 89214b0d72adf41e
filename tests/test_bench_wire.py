"""bench/wire.py says what limited a run: the generator (wrk busy on its CPUs) or the bare
responder itself missing the target, when the ratio to it is the figure to read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
wire = pytest.importorskip("wire")

RUN = {"p99": 3000, "rate": 9990, "offered": 10_000, "cpu_us": 40.0, "gen_share": 0.5}


def test_the_target_is_met_when_the_collector_keeps_it() -> None:
    said = wire.verdict(RUN, {**RUN, "p99": 4000}, [], 10_000)
    assert said.startswith("at 10,000/s: target MET")


def test_a_bare_responder_over_the_target_makes_the_ratio_the_figure() -> None:
    bare = {**RUN, "p99": 9000}
    ours = {**RUN, "p99": 12_000, "cpu_us": 60.0}
    said = wire.verdict(bare, ours, [], 10_000)
    assert "the bare responder itself misses the target" in said
    assert "p99 1.33×" in said and "CPU per request 1.50×" in said
    assert "wrk-bound" not in said


def test_a_bare_responder_under_its_rate_misses_the_target_too() -> None:
    bare = {**RUN, "rate": 9000}  # p99 in time, but 90 % of the offered rate answered
    said = wire.verdict(bare, {**RUN, "rate": 8000}, [], 10_000)
    assert "the bare responder itself misses the target" in said


def test_a_busy_generator_is_named() -> None:
    assert wire.generator_busy({**RUN, "gen_share": 0.95}, cores=1)
    assert not wire.generator_busy({**RUN, "gen_share": 0.95}, cores=2)
    said = wire.verdict(RUN, RUN, [8000, 10_000], 10_000)
    assert said.endswith("wrk-bound at 8,000/s, 10,000/s: the generator may be the limit")


def test_paced_runs_default_to_a_hundred_connections() -> None:
    parser_default = wire.DEFAULT_CONNECTIONS
    assert 100 <= parser_default <= 200
