"""The bench scripts refuse a bad argument with argparse's one-line error, not a traceback
from deep inside a run (a zero duration once reached wrk, a negative count the generator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize(
    ("script", "argument", "says"),
    [
        ("soak.py", ["--commits", "0"], "at least 1"),
        ("process.py", ["--events", "-3"], "at least 1"),
        ("spark.py", ["--runs", "embedded,bogus"], "embedded or local[N]"),
        ("wire_stalls.py", ["--seconds", "0"], "above 0"),
        ("wire_stalls.py", ["--rate", "x"], "at least 1"),
        ("generate.py", ["--repeat", "0"], "at least 1"),
    ],
)
def test_a_bad_argument_is_refused_in_one_line(script: str, argument: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *argument],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
