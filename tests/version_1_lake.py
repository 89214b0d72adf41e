"""A lake as the version before XXH3 payload hashes wrote it (version 1: MD5), then the
repeats that must keep deduping against it: what the embedded and the Spark dedupe are
both checked with (tests/runners/test_fingerprint_versions.py,
tests/spark/test_spark_equal_edges.py)."""

from __future__ import annotations

from typing import Any

import pytest

IMPRESSION = (
    '{{"impression_id": "{id}", "timestamp": "2026-11-20T10:00:0{s}Z", "ad_creative_id": "cr-1", '
    '"user_id": "u-{id}", "website": "example.com", "cost": {cost}}}\n'
)
CLICKS_HEADER = "timestamp,user_id,campaign_id,event_type\n"


def _impressions(*rows: tuple[str, int, float]) -> bytes:
    return "".join(IMPRESSION.format(id=i, s=s, cost=c) for i, s, c in rows).encode()


def _clicks(*users: str) -> bytes:
    return (
        CLICKS_HEADER + "".join(f"2026-11-20T10:05:00Z,{u},cmp-1,click\n" for u in users)
    ).encode()


def write_version_1_lake(ax: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Impressions a and b, two id-less clicks, processed in this process with every
    payload hash the MD5 one."""
    from advertisex.kernels import fingerprint, standardize

    def legacy_hashes(columns: Any) -> Any:
        return fingerprint.legacy_hash(fingerprint.payload_text(list(columns)))

    with monkeypatch.context() as old:
        old.setattr(standardize, "payload_hash", fingerprint.legacy_hash)
        old.setattr(standardize, "payload_hashes", legacy_hashes)
        ax.landing.write_segment(
            "impressions", _impressions(("a", 1, 1.0), ("b", 2, 1.0)), fsync=False
        )
        ax.landing.write_segment("clicks", _clicks("u-1", "u-2"), fsync=False)
        ax.process()


def land_repeats(ax: Any) -> None:
    """A retry of a, a changed b, a new c; the first id-less click again, and a new one:
    processed, 1 impression accepted, 2 duplicates of which 1 conflict; 1 click accepted,
    1 duplicate, no conflict."""
    ax.landing.write_segment(
        "impressions", _impressions(("a", 1, 1.0), ("b", 2, 9.0), ("c", 3, 1.0)), fsync=False
    )
    ax.landing.write_segment("clicks", _clicks("u-1", "u-3"), fsync=False)
