"""SCD type 2 merge: new keys, unchanged keys, changed keys, partial files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from advertisex.dims.scd import BEGINNING, as_of, merge
from advertisex.errors import UserInputError
from advertisex.model.dims import CAMPAIGNS

T1 = datetime(2026, 11, 1, tzinfo=UTC)
T2 = datetime(2026, 11, 10, tzinfo=UTC)


def _merge(versions, rows, effective=T1):
    return merge(
        CAMPAIGNS, versions, rows, effective_from=effective, loaded_at=effective, source_file="f"
    )


def _first():
    return _merge(
        CAMPAIGNS.schema.empty_table(),
        [
            {"campaign_id": "a", "advertiser": "Acme", "budget": 10.0},
            {"campaign_id": "b", "advertiser": "Bolt", "budget": 20.0},
        ],
    )


def test_first_versions_hold_from_the_beginning_of_time():
    result = _first()
    assert (result.added, result.changed, result.unchanged) == (2, 0, 0)
    rows = result.versions.to_pylist()
    assert {r["valid_from"] for r in rows} == {BEGINNING}
    assert {r["valid_to"] for r in rows} == {None}


def test_the_same_rows_again_are_a_noop():
    first = _first()
    again = _merge(
        first.versions,
        [
            {"campaign_id": "a", "advertiser": "Acme", "budget": 10.0},
            {"campaign_id": "b", "advertiser": "Bolt", "budget": 20.0},
        ],
        T2,
    )
    assert again.is_noop and again.unchanged == 2
    assert again.versions.equals(first.versions)


def test_a_changed_row_closes_the_old_version_and_opens_a_new_one():
    first = _first()
    result = _merge(
        first.versions, [{"campaign_id": "a", "advertiser": "Acme", "budget": 15.0}], T2
    )
    assert (result.added, result.changed) == (0, 1)
    history = [r for r in result.versions.to_pylist() if r["campaign_id"] == "a"]
    assert [(r["budget"], r["valid_from"], r["valid_to"]) for r in history] == [
        (10.0, BEGINNING, T2),
        (15.0, T2, None),
    ]
    before = as_of(CAMPAIGNS, result.versions, T2 - timedelta(seconds=1)).to_pylist()
    after = as_of(CAMPAIGNS, result.versions, T2).to_pylist()
    assert [r["budget"] for r in before] == [10.0, 20.0]
    assert [r["budget"] for r in after] == [15.0, 20.0]
    assert as_of(CAMPAIGNS, result.versions, None).to_pylist() == after


def test_a_file_without_a_column_keeps_its_current_value():
    first = _first()
    result = _merge(first.versions, [{"campaign_id": "a", "click_window_seconds": 1800}], T2)
    current = as_of(CAMPAIGNS, result.versions, None).to_pylist()[0]
    assert (current["advertiser"], current["budget"], current["click_window_seconds"]) == (
        "Acme",
        10.0,
        1800,
    )


def test_keys_missing_from_a_file_are_left_alone():
    first = _first()
    result = _merge(first.versions, [{"campaign_id": "c", "advertiser": "Cee"}], T2)
    assert result.added == 1 and result.versions.num_rows == 3


def test_a_change_cannot_take_effect_before_the_version_it_replaces():
    first = _first()
    changed = _merge(first.versions, [{"campaign_id": "a", "budget": 11.0}], T2)
    with pytest.raises(UserInputError, match="not after the current version of a"):
        _merge(changed.versions, [{"campaign_id": "a", "budget": 12.0}], T1)
