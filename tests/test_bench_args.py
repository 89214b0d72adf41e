"""The bench scripts refuse a bad argument with argparse's one-line error, not a traceback
from deep inside a run (a zero duration once reached wrk, a negative count the generator)."""

from __future__ import annotations

import ast
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
        ("ingest.py", ["--repeat", "0"], "at least 1"),
        ("cli.py", ["--repeat", "0"], "at least 1"),
        ("soak.py", ["--marts-every", "-1"], "at least 0"),
        ("monitor.py", ["--step-minutes", "nan"], "above 0"),
        ("fsync_floor.py", ["--busy", "-2"], "at least 0"),
        ("correlate.py", ["--impressions", "ten"], "at least 1"),
        ("threads.py", ["--top", "0"], "at least 1"),
        ("pandas_baseline.py", [], "the following arguments are required"),
        ("sweep.py", ["--hang-seconds", "nan"], "above 0"),
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


def test_no_bench_argument_is_a_bare_int_or_float() -> None:
    """``type=int`` takes 0 and -5 and ``type=float`` takes nan: each bench number goes
    through one of bench/_args.py's types, which say what they want."""
    bare = []
    for script in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "type"
                and isinstance(node.value, ast.Name)
                and node.value.id in {"int", "float"}
            ):
                bare.append(f"{script.name}:{node.value.lineno}")
    assert not bare, f"use bench/_args.py's types: {bare}"
