"""AdvertiseX: an ad-event data platform.

Takes ad impressions (JSON), clicks and conversions (CSV) and real-time-bidding bid
requests (Avro), lands them durably, turns them into clean, deduplicated Iceberg
tables, and answers questions over them with DuckDB.

The Python API is the facade the CLI is built on::

    import advertisex
    ax = advertisex.open()            # reads advertisex.toml / ADVERTISEX_* variables
    ax.ingest(["partner-drop/"])      # copy files into the landing zone
    ax.process()                      # landing -> curated tables
    ax.query("select count(*) from curated.impressions")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from advertisex.api import AdvertiseX
    from advertisex.config import Settings


def open(*, deferred: bool = False, **overrides: Any) -> AdvertiseX:
    """Open the platform with the configuration in force (toml, environment, overrides).

    ``deferred=True``: when the configuration sets no more than where the data lives, the
    settings are validated on first use of anything else (``advertisex.lazy_settings``), so
    a read-only question need not load pydantic.
    """
    from advertisex.api import AdvertiseX

    def load() -> Settings:
        from advertisex.config import load_settings

        return load_settings(**overrides)

    if deferred and not overrides:
        from advertisex.lazy_settings import deferred as read_deferred

        settings = read_deferred(load)
        if settings is not None:
            return AdvertiseX(settings)
    return AdvertiseX(load())
