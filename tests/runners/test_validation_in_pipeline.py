"""Domain rules run inside the processor: unknown dimensions only once dims are loaded."""

import pytest

from advertisex import dims

pytestmark = pytest.mark.integration

CLICKS = (
    b"event_id,timestamp,user_id,campaign_id,event_type,currency,conversion_value,conversion_type\n"
    b"e1,2026-01-01T00:00:00Z,u1,cmp-known,click,,,\n"
    b"e2,2026-01-01T00:00:00Z,u1,cmp-other,click,,,\n"
    b"e3,2026-01-01T00:00:00Z,u1,cmp-known,conversion,XYZ,5,gift\n"
)


def _processed(ax, path, columns):
    """(the processing report, ``columns`` of the quarantined rows) once ``path`` is ingested."""
    ax.ingest([str(path)])
    report = ax.process()
    query = f"select {columns} from curated.quarantine order by source_position"
    return report, ax.query(query).to_pylist()


def test_unknown_campaign_and_bad_codes_are_quarantined_with_raw_text(ax, tmp_path):
    (tmp_path / "campaigns.csv").write_text(
        "campaign_id,advertiser,campaign_name,budget,currency,start_date,end_date\n"
        "cmp-known,Acme,Spring,1000,USD,2025-01-01,2027-01-01\n"
    )
    dims.load_file(ax.lake, tmp_path / "campaigns.csv")
    (tmp_path / "clicks.csv").write_bytes(CLICKS)
    report, rows = _processed(ax, tmp_path / "clicks.csv", "reasons, raw")
    assert report.accounts["clicks"].accepted == 1
    assert rows == [
        {"reasons": ["unknown_campaign"], "raw": "e2,2026-01-01T00:00:00Z,u1,cmp-other,click,,,"},
        {
            "reasons": ["currency_invalid", "enum_invalid:conversion_type"],
            "raw": "e3,2026-01-01T00:00:00Z,u1,cmp-known,conversion,XYZ,5,gift",
        },
    ]


def test_without_dimensions_any_campaign_is_accepted(ax, tmp_path):
    (tmp_path / "clicks.csv").write_bytes(CLICKS.rsplit(b"\n", 2)[0] + b"\n")
    ax.ingest([str(tmp_path / "clicks.csv")])
    assert ax.process().accounts["clicks"].accepted == 2


def test_added_and_reordered_fields_are_kept_and_reported(ax, tmp_path):
    import io

    import fastavro

    schema = {
        "type": "record",
        "name": "BidRequestV2",
        "fields": [  # reordered, plus a field the contract does not know
            {"name": "user_id", "type": "string"},
            {"name": "deal_id", "type": "string"},
            {"name": "timestamp", "type": "string"},
            {"name": "auction_id", "type": "string"},
        ],
    }
    buffer = io.BytesIO()
    fastavro.writer(
        buffer,
        fastavro.parse_schema(schema),
        [
            {
                "user_id": "u",
                "deal_id": "d-7",
                "timestamp": "2026-01-01T00:00:00Z",
                "auction_id": "a1",
            }
        ],
    )
    (tmp_path / "bids.avro").write_bytes(buffer.getvalue())
    (tmp_path / "imps.ndjson").write_bytes(
        b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w","viewability":0.7}\n'
    )
    ax.ingest([str(tmp_path)])
    report = ax.process()
    assert report.accounts["bids"].new_fields == {"deal_id"}
    assert report.accounts["impressions"].new_fields == {"viewability"}
    assert ax.query("select extras from curated.bid_requests").to_pylist() == [
        {"extras": '{"deal_id":"d-7"}'}
    ]
    rows = ax.query("select source, new_fields from ops.batches order by source").to_pylist()
    assert rows == [
        {"source": "bids", "new_fields": ["deal_id"]},
        {"source": "impressions", "new_fields": ["viewability"]},
    ]


def test_times_before_year_1_or_past_9999_are_quarantined_not_a_stopped_batch(ax, tmp_path):
    # DuckDB reads both; accepted, the first stopped the batch when its day's file was written.
    record = (
        '{"impression_id":"%s","timestamp":%s,"ad_creative_id":"c","user_id":"u",'
        '"website":"w","cost":0.1}'
    )
    lines = [
        record % ("bc", "-62135596800000004097"),
        record % ("far", '"12026-01-01T00:00:00Z"'),
        record % ("ok", '"2026-01-01T00:00:00Z"'),
    ]
    (tmp_path / "impressions.ndjson").write_text("\n".join(lines) + "\n")
    report, rows = _processed(ax, tmp_path / "impressions.ndjson", "reasons, event_time")
    assert report.accounts["impressions"].accepted == 1
    assert rows == [
        {"reasons": ["timestamp_invalid"], "event_time": None},
        {"reasons": ["timestamp_invalid"], "event_time": None},
    ]
