"""Shared fixtures: a platform on a temporary data directory, the AWS reference samples."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest


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
