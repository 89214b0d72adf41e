"""The test pyramid is wired as docs/testing.md says: `make unit` selects a fast layer that
starts no JVM, every Spark test is one xdist group (one worker, one JVM), and every module's
doctests are collected."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_spark_tests_are_one_xdist_group_and_other_tests_go_with_their_module() -> None:
    """Under `pytest -n 2 --dist loadgroup` the Spark tests share one worker, so one JVM,
    and a module's tests share one worker, so its fixtures are built once."""
    from tests.conftest import pytest_collection_modifyitems

    class Item:
        def __init__(self, nodeid: str, *fixtures: str, slow: bool = False) -> None:
            self.nodeid, self.path = nodeid, Path(nodeid.split("::")[0])
            self.fixturenames = ("tmp_path", *fixtures)
            self.own_markers = [pytest.mark.slow.mark] if slow else []

        def add_marker(self, marker: pytest.MarkDecorator) -> None:
            self.own_markers.append(marker.mark)

        def get_closest_marker(self, name: str) -> pytest.Mark | None:
            return next((m for m in self.own_markers if m.name == name), None)

    items = [
        Item("tests/a.py::test_on_spark", "spark"),
        Item("tests/a.py::test_plain"),
        Item("tests/b.py::test_quick"),
        Item("tests/b.py::test_slow", slow=True),
    ]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    groups = [item.get_closest_marker("xdist_group").args for item in items]  # type: ignore[union-attr]
    assert groups == [("spark",), ("tests/a.py",), ("slow:tests/b.py",), ("slow:tests/b.py",)]
    assert [bool(item.get_closest_marker("spark")) for item in items] == [True, False, False, False]


def test_this_test_runs_in_its_module_group(request: pytest.FixtureRequest) -> None:
    """Under make unit and make test the groups reach pytest-xdist (an xdist_group it
    cannot see is silently ignored, as on pytest 9.2: pytest-xdist#1386)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("run outside pytest -n --dist loadgroup")
    assert request.node.nodeid.endswith("@tests/test_pyramid.py")


def test_installed_libraries_are_imported_as_they_are_not_rewritten_by_pytest() -> None:
    """Pytest rewrites the asserts of every module of a distribution that declares a pytest
    plugin, schemathesis's included, even with the plugin disabled; that re-parse hit
    CPython 3.11.7's AST recursion-depth bug (gh-106905) mid-test once. With entry-point
    plugins not auto-loaded, only our tests and the plugins we name are rewritten."""
    import schemathesis.transport.requests as library_module

    loader = type(library_module.__spec__.loader).__name__
    assert loader != "AssertionRewritingHook", (
        "schemathesis's modules went through pytest's rewriter"
    )
