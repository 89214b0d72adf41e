"""A quarantine selection refuses a reason no record can have, naming the code meant."""

from __future__ import annotations

import pytest

from advertisex.errors import UserInputError
from advertisex.quarantine.selection import Selection


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("unknown-campaign", "unknown_campaign"), ("requird_missing:user_id", "required_missing")],
)
def test_a_misspelt_reason_is_an_error_naming_the_closest_code(typed, meant):
    with pytest.raises(UserInputError, match=f"unknown reason '{typed}'; did you mean {meant}?"):
        Selection(reason=typed)


def test_catalogued_codes_with_or_without_a_field_are_accepted():
    for reason in ("unknown_campaign", "required_missing:user_id", "segment_unreadable:crash"):
        assert Selection(reason=reason).reason == reason
