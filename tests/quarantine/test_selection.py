"""A quarantine selection refuses a reason no record can have, naming the code meant."""

from __future__ import annotations

import pytest

from advertisex.errors import UserInputError
from advertisex.quarantine.selection import Selection


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("unknown-campaign", "unknown_campaign"),
        ("requird_missing:user_id", "required_missing"),
        ("UNKNOWN_CAMPAIGN", "unknown_campaign"),  # had no suggestion
    ],
)
def test_a_misspelt_reason_is_an_error_naming_the_closest_code(typed, meant):
    with pytest.raises(UserInputError, match=f"unknown reason '{typed}'; did you mean {meant}?"):
        Selection(reason=typed)


def test_a_code_with_a_colon_and_no_field_is_an_error_not_an_empty_answer():
    """``--reason unknown_campaign:`` matched no record: "nothing to replay", as if fixed."""
    with pytest.raises(UserInputError, match="names no field after its colon"):
        Selection(reason="unknown_campaign:")


def test_catalogued_codes_with_or_without_a_field_are_accepted():
    for reason in ("unknown_campaign", "required_missing:user_id", "segment_unreadable:crash"):
        assert Selection(reason=reason).reason == reason


def test_a_few_records_read_the_raw_text_of_their_files_only(tmp_path, monkeypatch):
    """The console's page of samples read every quarantined record's raw text, then kept
    twenty: a lake's whole quarantine, on every view. Now the places are read for all, the
    raw text only from the chosen records' files — and the answer is the same."""
    import advertisex
    from advertisex.quarantine.selection import records

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    for batch in range(4):  # four landing files of five junk lines, one good impression each
        lines = [f'{{"user_id": "u{batch}-{i}", "junk": ' for i in range(5)]
        good = '{"timestamp": "2026-11-20T10:00:00Z", "ad_creative_id": "c", "user_id": "u", "website": "w"}'
        ax.landing.write_segment("impressions", "\n".join([good, *lines]).encode(), fsync=False)
        ax.process()
    whole = records(ax.lake, Selection(reason="json_invalid"))
    assert whole.num_rows == 20
    reads: list[tuple[tuple[str, ...], str]] = []
    real = type(ax.lake).read

    def spy(lake, name, row_filter=None, fields=("*",)):  # type: ignore[no-untyped-def]
        reads.append((fields, str(row_filter)))
        return real(lake, name, row_filter, fields)

    monkeypatch.setattr(type(ax.lake), "read", spy)
    for limit in (1, 7, 20, 50):
        assert records(ax.lake, Selection(reason="json_invalid"), limit) == whole.slice(0, limit)
    first_file = whole.column("source_file")[0].as_py()
    assert records(ax.lake, Selection(), 3).column("source_file").to_pylist() == [first_file] * 3
    raw_reads = [row_filter for fields, row_filter in reads if fields == ("*",)]
    assert raw_reads and all("source_file" in row_filter for row_filter in raw_reads)
    assert (
        first_file in raw_reads[-1] and whole.column("source_file")[-1].as_py() not in raw_reads[-1]
    )


def test_a_few_records_of_a_selection_that_matches_none_are_none(tmp_path):
    """``quarantine show`` (and the console's samples) of a source or time with nothing in
    quarantine was a bug report: the empty table read for no landing file had its file
    names typed otherwise than the chosen ones, and matching them by place failed."""
    from datetime import UTC, datetime

    import advertisex
    from advertisex.quarantine.selection import records

    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    ax.landing.write_segment("impressions", b'{"user_id": "u", "junk": \n', fsync=False)
    ax.process()
    assert records(ax.lake, Selection(), 5).num_rows == 1
    assert records(ax.lake, Selection(source="clicks"), 5).num_rows == 0
    later = Selection(since=datetime(2099, 1, 1, tzinfo=UTC))
    assert records(ax.lake, later, 5).column_names == records(ax.lake, Selection(), 5).column_names
