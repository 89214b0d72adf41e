"""FaultConfig: validated fractions and the demo sprinkle."""

from __future__ import annotations

import dataclasses

import pytest

from advertisex.errors import UserInputError
from advertisex.synth import FaultConfig


def test_defaults_are_fault_free() -> None:
    assert set(FaultConfig().to_dict().values()) == {0.0}


def test_demo_sprinkle() -> None:
    assert FaultConfig.demo().to_dict() == {
        "duplicate_rate": 0.005,
        "malformed_rate": 0.001,
        "late_rate": 0.02,
        "bot_rate": 0.01,
        "conflict_rate": 0.0,
        "new_campaign": False,
    }


def test_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FaultConfig().late_rate = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_rates_outside_zero_one_are_rejected(value: float) -> None:
    with pytest.raises(UserInputError, match="malformed_rate") as caught:
        FaultConfig(malformed_rate=value)
    assert "--malformed-rate" in str(caught.value)
