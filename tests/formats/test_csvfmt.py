import io

import pandas as pd

from advertisex.formats.csvfmt import frame_csv


def test_bom_crlf_semicolon_and_aliases():
    data = b"\xef\xbb\xbfevent_timestamp;user_id;ad_campaign_id;event_type\r\n2026-01-01T00:00:00Z;u1;c1;click\r\n"
    frame = frame_csv(data)
    row = frame.to_pylist()[0]
    assert row["timestamp"] == "2026-01-01T00:00:00Z"
    assert row["campaign_id"] == "c1"
    assert row["raw"] == "2026-01-01T00:00:00Z;u1;c1;click"
    assert row["source_position"] == 2


def test_short_row_is_flagged_and_its_neighbours_survive():
    data = b"timestamp,user_id,campaign_id,event_type\n2026-01-01,u1,c1,click\n2026-01-01,u2\n2026-01-01,u3,c3,conversion\n"
    frame = frame_csv(data)
    errors = frame.column("frame_error").to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1].startswith("csv_column_count")
    assert frame.column("source_position").to_pylist() == [2, 3, 4]


def test_tab_delimiter_and_unknown_columns_kept_as_extras():
    frame = frame_csv(
        b"timestamp\tuser_id\tcampaign_id\tevent_type\tpartner\n1700000000\tu\tc\tclick\tacme\n"
    )
    assert frame.column("extras").to_pylist() == ['{"partner":"acme"}']


def test_file_without_header_flags_every_row():
    frame = frame_csv(b"2026-01-01,u1,c1,click\n2026-01-02,u2,c2,click\n")
    assert frame.column("frame_error").to_pylist() == ["csv_header_missing"]


def test_a_header_naming_a_field_twice_flags_every_row():
    """``user_id`` twice, or ``timestamp`` beside its alias: the last value was taken, silently."""
    for header in (
        b"timestamp,user_id,campaign_id,event_type,user_id",
        b"timestamp,user_id,campaign_id,event_type,event_timestamp",
    ):
        frame = frame_csv(header + b"\n2026-01-01,u1,c1,click,u2\n2026-01-02,u3,c3,click,u4\n")
        errors = frame.column("frame_error").to_pylist()
        assert len(errors) == 2 and all(
            e.startswith("csv_header_duplicate: the header names ") for e in errors
        )
    assert "timestamp twice" in errors[0]


def test_pandas_written_csv_with_quoted_fields():
    df = pd.DataFrame(
        {
            "timestamp": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"],
            "user_id": ['u,"1"', "u2"],
            "campaign_id": ["c1", "c2"],
            "event_type": ["click", "conversion"],
            "conversion_value": [None, 12.5],
        }
    )
    buffer = io.StringIO()
    df.to_csv(buffer, index=False)
    frame = frame_csv(buffer.getvalue().encode())
    assert frame.column("user_id").to_pylist() == ['u,"1"', "u2"]
    assert frame.column("conversion_value").to_pylist() == [None, "12.5"]
    assert frame.column("frame_error").null_count == 2
