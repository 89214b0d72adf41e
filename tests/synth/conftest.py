"""Generator runs shared by the synth tests (session-scoped: each takes a second or two)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from synth_recount import FAULTS, START, Recount, recount

from advertisex.synth import generate


@pytest.fixture(scope="session")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two days, every fault switched on at a visible rate."""
    out = tmp_path_factory.mktemp("faulty")
    truth = generate(out, events=40_000, seed=7, start=START, days=2, faults=FAULTS)
    return out, truth


@pytest.fixture(scope="session")
def faulty_recount(faulty_run: tuple[Path, dict[str, Any]]) -> Recount:
    return recount(faulty_run[0])


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One day, no faults: the shape of the traffic itself."""
    out = tmp_path_factory.mktemp("clean")
    truth = generate(out, events=50_000, seed=11, start=START)
    return out, truth
