import pyarrow as pa

from advertisex.kernels.validate import Domains, check_domains, fill_missing_raw


def test_domain_rules_add_their_reasons_to_existing_ones():
    rows = pa.table(
        {
            "country": ["US", "us", "ZZ", None],
            "currency": ["EUR", "XXQ", None, "USD"],
            "conversion_type": ["purchase", "gift", None, "other"],
            "user_id": ["u1", "u 2", "u3", "x" * 129],
            "campaign_id": ["c1", "c2", "c9", None],
            "reasons": [[], ["timestamp_invalid"], [], []],
        }
    )
    checked = (
        check_domains(rows, Domains(campaigns=pa.array(["c1", "c2"]))).column("reasons").to_pylist()
    )
    assert checked == [
        [],
        [
            "timestamp_invalid",
            "country_invalid",
            "currency_invalid",
            "enum_invalid:conversion_type",
            "id_invalid:user_id",
        ],
        ["country_invalid", "unknown_campaign"],
        ["id_invalid:user_id"],
    ]


def test_unknown_dimensions_are_only_checked_once_loaded():
    rows = pa.table({"campaign_id": ["anything"], "reasons": pa.array([[]], pa.list_(pa.string()))})
    assert check_domains(rows).column("reasons").to_pylist() == [[]]
    assert check_domains(rows, Domains()).column("reasons").to_pylist() == [[]]


def test_rows_rejected_late_get_their_raw_text_from_the_frame():
    frame = pa.table(
        {
            "raw": ['{"a":1}\n', '{"a":2}\n'],
            "segment": pa.array([0, 0], pa.int32()),
            "source_position": [1, 2],
        }
    )
    rows = pa.table(
        {
            "a": [1, 2],
            "raw": pa.array([None, None], pa.string()),
            "reasons": [[], ["country_invalid"]],
            "segment": pa.array([0, 0], pa.int32()),
            "source_position": [1, 2],
        }
    )
    assert fill_missing_raw(rows, frame).column("raw").to_pylist() == [None, '{"a":2}\n']


def test_binary_records_are_rendered_as_json_when_rejected_late():
    frame = pa.table(
        {
            "raw": pa.array([None], pa.string()),
            "segment": pa.array([0], pa.int32()),
            "source_position": [1],
        }
    )
    rows = pa.table(
        {
            "auction_id": ["a1"],
            "raw": pa.array([None], pa.string()),
            "reasons": [["country_invalid"]],
            "segment": pa.array([0], pa.int32()),
            "source_position": [1],
        }
    )
    assert fill_missing_raw(rows, frame).column("raw").to_pylist() == [
        '{"auction_id":"a1","source_position":1}'
    ]
