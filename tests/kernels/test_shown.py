"""The impressions' hourly counts in NumPy against the engine's query they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_correlate import IMP

from advertisex.kernels import sketch
from advertisex.kernels.rollup import _SHOWN_SQL, shown_hourly
from advertisex.kernels.shown import shown_counts
from advertisex.util import engine

T0 = datetime(2026, 11, 20, tzinfo=UTC)
_KEYS = ["campaign_id", "ad_creative_id", "hour", "country", "device_type"]


def engines(impressions: pa.Table) -> pa.Table:
    """``shown_hourly`` as the engine counted it before the NumPy kernel."""
    hashed = impressions.append_column(
        "user_hash", sketch.user_hashes(impressions.column("user_id"))
    )
    counted = engine.run(_SHOWN_SQL, impressions=hashed)
    users = sketch.from_lists(counted.column("user_hashes"))
    return counted.drop_columns(["user_hashes"]).append_column("users", users)


def comparable(rows: pa.Table) -> pa.Table:
    """Rows in one order and one set of types (the engine's sums are 128-bit)."""
    ordered = rows.sort_by([(k, "ascending") for k in _KEYS])
    return ordered.select([*_KEYS, "impressions", "spend_micros", "users"]).cast(
        pa.schema(
            [
                *(ordered.schema.field(k) for k in _KEYS),
                pa.field("impressions", pa.int64()),
                pa.field("spend_micros", pa.int64()),
                pa.field("users", pa.large_binary()),
            ]
        )
    )


_KEY = st.sampled_from([None, "", "a", "b", "é"])
_COST = st.one_of(
    st.none(),
    st.sampled_from([0.0, 0.0000005, 0.0000015, -0.0000025, 0.0015]),
    st.floats(-5, 5, allow_nan=False),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.tuples(_KEY, _KEY, _KEY, _KEY),
            # hours a day apart and before 1970 (floored, not truncated toward zero)
            st.sampled_from([0, 1, 3599, 3600, 86_400 * 3, -1, -3600 * 24 * 365 * 60]),
            st.sampled_from(["u1", "u2", "u3", "u10", ""]),
            _COST,
        ),
        min_size=1,
        max_size=40,
    )
)
def test_the_numpy_counts_are_the_engines_rows(
    shown: list[tuple[tuple, int, str, float | None]],
) -> None:
    """Keys with nulls (a group of their own), hours of one key apart, a user seen again
    in a key (counted once in its sketch), costs missing or on half micro-units."""
    imps = pa.Table.from_pylist(
        [
            {"impression_id": f"i{n}", "event_time": T0 + timedelta(seconds=s), "user_id": u}
            | {"campaign_id": k[0], "ad_creative_id": k[1], "country": k[2], "device_type": k[3]}
            | {"cost": cost}
            for n, (k, s, u, cost) in enumerate(shown)
        ],
        IMP,
    )
    counted = shown_counts(imps)
    assert counted is not None
    assert comparable(counted).equals(comparable(engines(imps)))


def test_users_past_the_exact_list_become_registers_alike() -> None:
    """A key of more users than a sketch lists exactly: the same HyperLogLog bytes."""
    many = 3 * sketch.EXACT_LIMIT
    imps = pa.Table.from_pylist(
        [
            {"impression_id": f"i{n}", "event_time": T0, "user_id": f"u{n % (many - 7)}"}
            | {"campaign_id": "c", "ad_creative_id": "a", "cost": 0.001}
            for n in range(many)
        ],
        IMP,
    )
    counted = shown_counts(imps)
    assert counted is not None
    assert comparable(counted).equals(comparable(engines(imps)))


# The engine's path casts a missing user's null hash to uint64 (NumPy warns): as before.
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_what_the_kernel_leaves_the_engine_counts() -> None:
    """No rows, or a user missing: the engine's query answers, as it always did."""
    assert shown_counts(IMP.empty_table()) is None
    missing = pa.Table.from_pylist([{"impression_id": "i", "event_time": T0}], IMP)
    assert shown_counts(missing) is None
    assert comparable(shown_hourly(missing)).equals(comparable(engines(missing)))
