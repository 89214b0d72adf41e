"""Shared fixtures: a platform on a temporary data directory, the AWS reference samples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

SEED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "seed-samples"


@pytest.fixture
def ax(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An AdvertiseX platform whose data lives in a fresh temporary folder."""
    import advertisex

    return advertisex.open(data_dir=tmp_path / "data")


@pytest.fixture
def seed_samples() -> Path:
    if not SEED_SAMPLES.is_dir():
        pytest.skip(f"seed samples not found at {SEED_SAMPLES}")
    return SEED_SAMPLES


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
