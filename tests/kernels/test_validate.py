from datetime import datetime

import pyarrow as pa

from advertisex.kernels.validate import Domains, check_domains, fill_missing_raw

TIME = pa.timestamp("us", tz="UTC")


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
            "event_time": pa.array([datetime(2026, 12, 6, 0, 37, 49, 934000)], TIME),
            "extras": ['{"auctionRef":"r-9"}'],
            "payload_hash": ["x00"],
            "raw": pa.array([None], pa.string()),
            "reasons": [["unknown_campaign"]],
            "segment": pa.array([0], pa.int32()),
            "source_position": [1],
        }
    )
    # The record as the JSON bid decoder reads it again (quarantine replay): its time under
    # the contract's name, its fields outside the contract, nothing the pipeline added.
    assert fill_missing_raw(rows, frame).column("raw").to_pylist() == [
        '{"auction_id":"a1","timestamp":"2026-12-06 00:37:49.934+00","auctionRef":"r-9"}'
    ]


def test_late_rejections_keep_earlier_raw_texts_over_chunks_and_out_of_frame_order():
    """Rows rejected by standardize keep their raw text; rows rejected later get theirs from
    the frame's chunks by (segment, position) whatever order the rows are in; a row the frame
    has no text for is rendered from its fields; accepted rows stay without raw text."""
    frame = pa.Table.from_batches(
        [
            pa.record_batch(
                {
                    "raw": ["r0-1", "r0-2", "r0-3"],
                    "segment": pa.array([0, 0, 0], pa.int32()),
                    "source_position": [1, 2, 3],
                }
            ),
            pa.record_batch(
                {
                    "raw": ["r1-1", None],
                    "segment": pa.array([1, 1], pa.int32()),
                    "source_position": [1, 2],
                }
            ),
        ]
    )
    rows = pa.Table.from_batches(
        [
            pa.record_batch(
                {
                    "a": [11, 3, 2],
                    "raw": pa.array([None, "kept", None], pa.string()),
                    "reasons": [["late"], ["early"], []],
                    "segment": pa.array([1, 0, 0], pa.int32()),
                    "source_position": [1, 3, 2],
                }
            ),
            pa.record_batch(
                {
                    "a": [1, 12],
                    "raw": pa.array([None, None], pa.string()),
                    "reasons": [["late"], ["late"]],
                    "segment": pa.array([0, 1], pa.int32()),
                    "source_position": [1, 2],
                }
            ),
        ]
    )
    assert fill_missing_raw(rows, frame).column("raw").to_pylist() == [
        "r1-1",
        "kept",
        None,
        "r0-1",
        '{"a":12}',
    ]


def test_an_id_is_too_long_by_its_characters_not_its_bytes():
    """128 characters are allowed however many bytes they take; the bytes only tell which
    ids need their characters counted."""
    ids = ["é" * 128, "é" * 129, "x" * 128, "x" * 129, None]
    rows = pa.table({"user_id": ids, "reasons": pa.array([[]] * 5, pa.list_(pa.string()))})
    reasons = check_domains(rows).column("reasons").to_pylist()
    assert reasons == [[], ["id_invalid:user_id"], [], ["id_invalid:user_id"], []]
    short = rows.slice(2, 1)  # no id longer in bytes: the characters are not counted
    assert check_domains(short).column("reasons").to_pylist() == [[]]
