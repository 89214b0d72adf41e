"""Fault-injection settings for the synthetic generator.

A frozen dataclass rather than a pydantic model: it is a handful of floats checked once,
and the generator must import quickly from the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from advertisex.errors import UserInputError


@dataclass(frozen=True)
class FaultConfig:
    """Fraction of each source's records that get each fault.

    Example::

        FaultConfig(duplicate_rate=0.01, malformed_rate=0.001)
        FaultConfig.demo()  # the realistic sprinkle `make demo` uses
    """

    duplicate_rate: float = 0.0
    """Byte-identical re-sends of an earlier valid record (retries)."""
    malformed_rate: float = 0.0
    """Records any validator must reject (broken JSON, missing fields, bad times)."""
    late_rate: float = 0.0
    """Valid records landing 1–6 hours after their event hour."""
    bot_rate: float = 0.0
    """Impressions from well-known crawlers (valid, removed later by the IVT filter)."""
    conflict_rate: float = 0.0
    """Records re-using an earlier record's id with a different payload."""
    new_campaign: bool = False
    """One campaign launched after the dimensions were exported: its events carry an id
    (``cmp-021``) that dims/campaigns.csv lacks, and dims/campaigns-new.csv adds it. Once
    campaigns.csv is loaded its events are quarantined as ``unknown_campaign``, until
    campaigns-new.csv is loaded and the quarantine replayed."""

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool):
                continue
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise UserInputError(
                    f"{name} must be a fraction between 0 and 1, got {value!r}",
                    hint=f"pass e.g. {flag} 0.01 for 1 %",
                )

    @classmethod
    def demo(cls, new_campaign: bool = False) -> FaultConfig:
        """A realistic sprinkle: 0.5 % duplicates, 0.1 % malformed, 2 % late, 1 % bots
        (and, asked for, a campaign launched after the dimensions export)."""
        return cls(
            duplicate_rate=0.005,
            malformed_rate=0.001,
            late_rate=0.02,
            bot_rate=0.01,
            new_campaign=new_campaign,
        )

    def to_dict(self) -> dict[str, float | bool]:
        return {
            name: value if isinstance(value, bool) else float(value)
            for name, value in asdict(self).items()
        }
