"""A Spark session for the Spark runner's tests: local[2], started once per module."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def spark_unavailable() -> str | None:
    """Why Spark cannot run here, or None. `make install` brings PySpark and Java."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None:
        return "no Java runtime (apt-get install openjdk-17-jre-headless)"
    return None


@pytest.fixture
def spark_available() -> None:
    """Skip unless PySpark and Java are here (for tests that start their own Spark)."""
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
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
