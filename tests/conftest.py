"""Shared fixtures: a platform on a temporary data directory, the AWS reference samples,
and one Spark session for every test that needs one.

Tests that use the ``spark`` fixture are marked ``spark`` at
collection, so the fast layer (``-m "not slow and not spark"``) never starts a JVM.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

# The CLI's fixtures (cli, open_lake, lock_holder, run_subprocess) for every folder: imported
# into the conftests of some folders instead, they were not found when pytest was given
# test files of several folders at once (`fixture 'cli' not found`).
pytest_plugins = ["tests.cli_fixtures"]

# A follower (`process --follow`, `up`) commits what is pending at once in the suite's runs
# of it: they wait for batches, and a gathering of pending segments (2 s by default) would
# only make each wait longer. The gathering has tests of its own
# (tests/runners/test_resilience.py; tests/runners/test_follow_cli.py runs the default).
os.environ.setdefault("ADVERTISEX_PROCESSOR__FOLLOW_GATHER_SECONDS", "0")


def _seed_samples() -> Path:
    """``shared/seed-samples`` beside the checkout (or above a worktree), or $ADVERTISEX_SEED_SAMPLES."""
    if os.environ.get("ADVERTISEX_SEED_SAMPLES"):
        return Path(os.environ["ADVERTISEX_SEED_SAMPLES"])
    here = Path(__file__).resolve()
    for parent in here.parents[1:]:
        if (parent / "shared" / "seed-samples").is_dir():
            return parent / "shared" / "seed-samples"
    return here.parents[2] / "shared" / "seed-samples"


SEED_SAMPLES = _seed_samples()


@pytest.fixture(scope="session", autouse=True)
def children_keep_their_temporary_files_here(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """The processes tests start get a temporary folder under pytest's own, which pytest
    prunes (it keeps the last three runs'). A child the test SIGKILLs skips its cleanup:
    multiprocessing's ``/tmp/pymp-*`` folder (its decoders' forkserver socket) stayed in
    /tmp for good, forty to sixty a suite run. This process's own temporary files stay
    where they were (``tempfile`` chose its folder when pytest made its own)."""
    folder = tmp_path_factory.getbasetemp() / "children-tmp"
    folder.mkdir(exist_ok=True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before


@pytest.fixture
def ax(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An AdvertiseX platform whose data lives in a fresh temporary folder."""
    import advertisex

    return advertisex.open(data_dir=tmp_path / "data")


@pytest.fixture
def no_stray_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test starts in an empty folder with no ADVERTISEX_* variable set (settings tests:
    ``pytestmark = pytest.mark.usefixtures("no_stray_config")``)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("ADVERTISEX_"):
            monkeypatch.delenv(name)


@pytest.fixture
def seed_samples() -> Path:
    if not SEED_SAMPLES.is_dir():
        pytest.skip(f"seed samples not found at {SEED_SAMPLES}")
    return SEED_SAMPLES


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def spark_unavailable() -> str | None:
    """Why Spark cannot run here, or None. `make install` brings PySpark and Java."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "no Java runtime (apt-get install openjdk-17-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local[2] Spark session for the whole run: a JVM takes seconds to start, and
    every Spark test can share it (runners are handed it, so they never stop it)."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    from advertisex.config import load_settings
    from advertisex.runners.spark import spark_session

    # Spark's own output goes to <data_dir>/logs/spark.log: a temporary one, not ./
    settings = load_settings(data_dir=tmp_path_factory.mktemp("spark"))
    session = spark_session(settings, "local[2]")
    yield session
    session.stop()


SPARK_GROUP = "spark"
SLOW_GROUP = "slow:"  # prefix of a module's group when one of its tests is slow


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the Spark tests, and group the tests for ``pytest -n 2 --dist loadgroup``:
    every Spark test in one group (one worker, one JVM), every other test with its
    module (one worker builds the module's fixtures, a generated lake or a server, once)."""
    slow_modules = set()
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
        if item.get_closest_marker("slow"):
            slow_modules.add(item.path)
    for item in items:
        if item.get_closest_marker("spark"):
            item.add_marker(pytest.mark.xdist_group(SPARK_GROUP))
        elif not item.get_closest_marker("xdist_group"):  # a group of its own is kept
            module = item.nodeid.split("::", 1)[0]
            slow = SLOW_GROUP if item.path in slow_modules else ""
            item.add_marker(pytest.mark.xdist_group(f"{slow}{module}"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Longest first: the Spark group (a JVM and the heaviest tests), then the modules
    with slow tests, then the rest by size, so neither worker is left with a long tail."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class LongestFirst(LoadGroupScheduling):  # type: ignore[misc]
        def _assign_work_unit(self, node: Any) -> None:
            if not getattr(self, "_ordered", False):
                self._ordered = True
                order = sorted(
                    self.workqueue,
                    key=lambda g: (g != SPARK_GROUP, not g.startswith(SLOW_GROUP)),
                )
                for group in reversed(order):  # a stable sort: sizes order each rank
                    self.workqueue.move_to_end(group, last=False)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)
