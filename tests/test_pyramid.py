"""The test pyramid is wired as docs/testing.md says: `make unit` selects a fast layer that
starts no JVM, every Spark test is one xdist group (one worker, one JVM), and every module's
doctests are collected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _unit_selection() -> str:
    """The marker expression `make unit` runs."""
    rule = (ROOT / "Makefile").read_text().split("\nunit:", 1)[1].split("\n\n", 1)[0]
    found = re.search(r'-m "([^"]+)"', rule)
    assert found, "make unit selects its layer with -m"
    return found.group(1)


def _collected(*args: str) -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return {line for line in listed.stdout.splitlines() if "::" in line}


def test_the_fast_layer_starts_no_spark_and_collects_doctests() -> None:
    module = "tests/spark/test_spark_follow.py"  # one test on the shared session, one without
    doctest = "advertisex/util/retry.py"
    source = (ROOT / module).read_text()
    assert "def test_follow_on_spark_commits_segments_landed_while_it_runs(spark" in source
    fast = _collected("-m", _unit_selection(), module, doctest)
    # The test on the shared Spark session is left out of the fast layer …
    assert not any("::test_follow_on_spark" in t for t in fast)
    # … the JVM-free one stays, and the module's doctests are collected.
    assert any("::test_engine_spark_picks_a_spark_runner" in t for t in fast)
    assert any(t.startswith(f"{doctest}::") for t in fast)


def test_every_spark_test_is_marked_and_in_one_xdist_group() -> None:
    """Under `pytest -n 2 --dist loadgroup` the Spark tests share one worker, so one JVM."""
    from tests.conftest import pytest_collection_modifyitems

    class Item:
        def __init__(self, *fixtures: str) -> None:
            self.fixturenames = fixtures
            self.markers: list[object] = []

        def add_marker(self, marker: object) -> None:
            self.markers.append(marker)

    on_spark, plain = Item("tmp_path", "spark"), Item("tmp_path")
    pytest_collection_modifyitems([on_spark, plain])  # type: ignore[list-item]
    names = {(m.name, m.args) for m in on_spark.markers}  # type: ignore[attr-defined]
    assert names == {("spark", ()), ("xdist_group", ("spark",))}
    assert plain.markers == []
