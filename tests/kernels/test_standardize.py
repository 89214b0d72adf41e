from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.formats.csvfmt import frame_csv
from advertisex.formats.jsonfmt import frame_json
from advertisex.kernels.fingerprint import legacy_hash, payload_hash
from advertisex.kernels.standardize import Rules, standardize_clicks, standardize_impressions

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _frame(framed: pa.Table) -> pa.Table:
    return framed.append_column("segment", pa.array([0] * framed.num_rows, pa.int32()))


def _impressions(*lines: str) -> list[dict]:
    data = "\n".join(lines).encode()
    return standardize_impressions(_frame(frame_json(data)), Rules(NOW)).to_pylist()


GOOD = '{"impression_id":"i1","timestamp":"%s","ad_creative_id":"cr","user_id":"u","website":"w","cost":0.002}'


def test_every_timestamp_form_becomes_the_same_utc_instant():
    forms = [
        "2026-11-20T13:04:05.123Z",
        "2026-11-20T13:04:05.123+00:00",
        "2026-11-20T15:04:05.123+02:00",
        "2026-11-20T13:04:05.123",
    ]
    rows = _impressions(*[GOOD % f for f in forms])
    rows += _impressions(GOOD.replace('"%s"', "1795179845123"))  # epoch ms
    rows += _impressions(GOOD.replace('"%s"', "1795179845.123"))  # epoch s
    rows += _impressions(GOOD.replace('"%s"', "1795179845123000"))  # epoch µs
    expected = datetime(2026, 11, 20, 13, 4, 5, 123000, tzinfo=UTC)
    assert [r["event_time"] for r in rows] == [expected] * 7
    assert all(r["reasons"] == [] for r in rows)


def test_a_record_gets_all_its_reasons():
    [row] = _impressions(
        '{"timestamp":"3000-01-01T00:00:00Z","user_id":{"a":1},"website":"w","cost":-1}'
    )
    assert set(row["reasons"]) == {
        "required_missing:ad_creative_id",
        "type_invalid:user_id",
        "negative_value:cost",
        "timestamp_in_future",
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(alphabet="{[x ]}é", max_size=4)), max_size=30),
    st.integers(0, 30),
)
def test_a_field_given_as_a_container_is_told_from_its_first_byte(texts, cut) -> None:
    """Each text that begins with "{" or "[" opens a container, as Arrow's starts_with says
    (a null opens none), over chunks and slices: by the compiled helpers and by NumPy."""
    import pyarrow.compute as pc

    from advertisex import native
    from advertisex.kernels import standardize

    column = pa.chunked_array([texts[:cut], texts[cut:]], pa.string())
    sliced = column.slice(min(1, len(texts)))
    helpers = native.opens_containers
    for given_column in (column, sliced, column.cast(pa.large_string())):
        arrow = pc.or_kleene(pc.starts_with(given_column, "{"), pc.starts_with(given_column, "["))
        expected = pc.fill_null(arrow, False).to_pylist()
        try:
            for opens in (helpers, lambda _: None):
                native.opens_containers = opens  # (hypothesis runs this without a fixture)
                assert standardize._opens_a_container(given_column).to_pylist() == expected
        finally:
            native.opens_containers = helpers


def test_ids_given_as_containers_are_found_without_arrow_s_prefix_kernel(monkeypatch) -> None:
    """The five id fields' first bytes are read from their buffers: Arrow's starts_with over
    each (twice) cost ≈ 2.5 ms a piece of impressions."""
    import pyarrow.compute as pc

    prefix = pc.starts_with

    def refused(texts, pattern, *args, **kwargs):
        if pattern == "[":  # (the parse's own look at undecided records asks for "{")
            raise AssertionError("starts_with over a whole column")
        return prefix(texts, pattern, *args, **kwargs)

    line = (
        '{"impression_id":["i"],"timestamp":"2026-11-20T13:04:05Z","ad_creative_id":"c",'
        '"user_id":{"a":1},"website":"w","cost":0.5}'
    )
    frame = _frame(frame_json(line.encode()))  # (the framer's own look at the lines)
    monkeypatch.setattr(pc, "starts_with", refused)
    [row] = standardize_impressions(frame, Rules(NOW)).to_pylist()
    assert row["reasons"] == ["type_invalid:impression_id", "type_invalid:user_id"]


def test_malformed_lines_get_reasons_and_keep_their_raw_text():
    rows = _impressions(
        "{not json",
        "[1,2]",
        '{"timestamp":"soon","ad_creative_id":"c","user_id":"u","website":"w"}',
    )
    assert [r["reasons"] for r in rows] == [
        ["json_invalid"],
        ["json_not_object"],
        ["timestamp_invalid"],
    ]
    assert rows[0]["raw"].startswith("{not json")


def test_records_the_framer_found_to_hold_no_object_need_no_engine_parse(monkeypatch) -> None:
    """Lines that are not JSON, or JSON but no object (arrays, numbers, texts), are known
    from the framer's check alone: the engine parses only objects the scanner left."""
    from advertisex.kernels import standardize

    parsed: list[int] = []
    by_engine = standardize._parsed_by_engine

    def spy(frame: pa.Table) -> pa.Table:
        parsed.append(frame.num_rows)
        return by_engine(frame)

    monkeypatch.setattr(standardize, "_parsed_by_engine", spy)
    good = GOOD % "2026-01-01T00:00:00Z"
    lines = (good, "[1,2]", "{not json", "5", ' "text"', "\t[{}]")
    rows = _impressions(*lines)
    assert parsed == []
    assert [r["reasons"] for r in rows] == [
        [],
        ["json_not_object"],
        ["json_invalid"],
        *[["json_not_object"]] * 3,
    ]
    assert [r["raw"].rstrip("\n") for r in rows[1:]] == list(lines[1:])  # kept as they came
    rows = _impressions(good, '{"impression_id":"\\u00e9","timestamp":0}', "[1]")
    assert parsed == [1]  # the escape is the engine's to read, the array is not
    assert rows[1]["impression_id"] == "é" and rows[2]["reasons"] == ["json_not_object"]


def test_odd_time_and_cost_texts_are_read_by_the_engine_once_a_process(monkeypatch) -> None:
    """Texts the compiled helpers leave go to the engine once: the same ones in a later
    piece are read from what it said (the same rows), and what is kept stays bounded."""
    from advertisex.kernels import standardize

    monkeypatch.setattr(standardize, "_ENGINE_TIMES", {})
    monkeypatch.setattr(standardize, "_ENGINE_COSTS", {})
    asked = _engine_frame_sizes(monkeypatch, "texts")
    odd = '{"impression_id":"i%d","timestamp":"%s","ad_creative_id":"c","user_id":"u","website":"w","cost":"%s"}'
    lines = [odd % (1, "not-a-time", "1e-3"), odd % (2, "2026-01-01T00:00:00Z", "2.5E-3")]
    first = _impressions(*lines)
    assert asked == [1, 2]  # the odd time, then the two odd costs
    assert [r["reasons"] for r in first] == [["timestamp_invalid"], []]
    assert [r["cost"] for r in first] == [0.001, 0.0025]
    again = _impressions(*lines)
    assert asked == [1, 2] and again == first
    monkeypatch.setattr(standardize, "_ENGINE_READ", 2)
    _impressions(odd % (3, "2026-01-01", "3e-3"), odd % (4, "x", "4e-3"))
    assert len(standardize._ENGINE_COSTS) <= 2 and len(standardize._ENGINE_TIMES) <= 2


def test_a_field_named_twice_is_quarantined_whichever_reader_reads_it(monkeypatch):
    from advertisex.native import jsonscan

    good = GOOD % "2026-11-20T13:04:05Z"
    twice = good.replace('"user_id":"u"', '"user_id":"u","user_id":"v"')
    escaped = good.replace('"user_id":"u"', '"user_id":"u","user\\u005fid":"v"')
    nested = good.replace('"website":"w"', '"website":"w","more":{"user_id":1,"user_id":2}')
    lines = [good, twice, escaped, nested, good.replace("}", ',"x":1,"x":2}')]
    for scanner in (True, False):
        with monkeypatch.context() as patched:
            if not scanner:
                patched.setattr(jsonscan, "scan_objects", lambda *args, **kwargs: None)
            rows = _impressions(*lines)
        # A known field twice, however it is spelled; unknown ones, or nested, are extras.
        twice_reason = ["json_duplicate_key"]
        assert [r["reasons"] for r in rows] == [[], twice_reason, twice_reason, [], []], scanner
        assert rows[1]["frame_error"] == (
            "json_duplicate_key: the record names user_id more than once"
        )
        assert rows[1]["raw"].rstrip("\n") == twice


def test_json_clicks_and_bids_name_each_field_once():
    from advertisex.formats.jsonrecords import frame_json_bids, frame_json_clicks

    click = '{"timestamp":"t","user_id":"u","campaign_id":"c","event_type":"click"'
    clicks = frame_json_clicks(
        (click + ',"click_id":"k1","event_id":"k2"}\n' + click + ',"click_id":"k1"}\n').encode()
    )
    assert clicks.column("frame_error").to_pylist() == [
        "json_duplicate_key: the record names event_id more than once",
        None,
    ]
    bids = frame_json_bids(b'{"auction_id":"a","auction_id":"b","user_id":"u"}\n')
    assert bids.column("frame_error").to_pylist()[0].startswith("json_duplicate_key:")


def test_unknown_fields_are_kept_as_extras():
    [row] = _impressions(
        '{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w","x":[1]}'
    )
    assert row["extras"] == '{"x":[1]}'


def test_unknown_fields_are_found_however_the_json_is_spaced_or_nested() -> None:
    """Only records whose colons after a quote or a space outnumber their known fields are
    searched for unknown fields: every key counts among those colons, whatever the spacing."""
    base = '"timestamp":0,"ad_creative_id":"c","user_id":"u","website":"w:x"'
    rows = _impressions(
        "{" + base + ',"extra" :1}',
        "{" + base + ',"extra"\t\r :{"n" : [1]}}',
        "{" + base + ',"user_agent":"a\\":b"}',  # a colon after a quote inside a value
        "{" + base + ',"cost":null,"placement" : "p"}',
        "{" + base.replace(":0", " : 0") + "}",
        "{" + base + ',"x":null}',
    )
    assert [r["extras"] for r in rows] == [
        '{"extra":1}',
        '{"extra":{"n":[1]}}',
        None,
        None,
        None,
        '{"x":null}',
    ]
    assert [r["reasons"] for r in rows] == [[]] * 6


def test_only_records_that_may_have_unknown_fields_have_their_keys_listed(monkeypatch) -> None:
    """The engine lists the keys of the objects whose text may hold more keys than they
    have known fields, and of no other: with none such, it is not asked at all."""
    from advertisex.util import engine

    listed: list[int] = []
    run = engine.run

    def spy(query: str, params: dict | None = None, **tables: pa.Table) -> pa.Table:
        if "json_keys" in query:
            listed.append(sum(t.num_rows for t in tables.values()))
        return run(query, params, **tables)

    monkeypatch.setattr(engine, "run", spy)
    good = GOOD % "2026-01-01T00:00:00Z"
    rows = _impressions(good, good[:-1] + ',"x":1}', good, "[1]", "not json")
    assert [r["extras"] for r in rows] == [None, '{"x":1}', None, None, None]
    assert listed == [1]
    assert [r["extras"] for r in _impressions(good, good)] == [None, None]
    assert listed == [1]


def test_missing_id_gets_a_fingerprint_that_ignores_timestamp_spelling():
    a = _impressions(
        '{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}'
    )
    b = _impressions(
        '{"timestamp":"2026-01-01T01:00:00+01:00","ad_creative_id":"c","user_id":"u","website":"w"}'
    )
    assert a[0]["impression_id"].startswith("fp-")
    assert a[0]["impression_id"] == b[0]["impression_id"]
    assert a[0]["payload_hash"] == b[0]["payload_hash"]


def test_max_age_rule_is_off_by_default_and_on_when_configured():
    old = GOOD % "2020-01-01T00:00:00Z"
    assert _impressions(old)[0]["reasons"] == []
    frame = _frame(frame_json(old.encode()))
    rows = standardize_impressions(frame, Rules(NOW, max_age=timedelta(days=30))).to_pylist()
    assert rows[0]["reasons"] == ["timestamp_too_old"]


def test_no_event_time_before_1970_is_accepted_whatever_the_maximum_age():
    """Accepted, an impression of 0001-01-01 made every later incremental marts update fail
    (the hour before its own is before the calendar's first). Epoch 0, a producer's "no
    time" as often as not, is still accepted; so is a backfill of 1970 with the age check off."""
    got = {
        when: _impressions(GOOD % when)[0]["reasons"]
        for when in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z")
    }
    assert got == {
        "0001-01-01T00:00:00Z": ["timestamp_too_old"],
        "1969-12-31T23:59:59.999Z": ["timestamp_too_old"],
        "1970-01-01T00:00:00Z": [],
    }
    frame = _frame(frame_json((GOOD % "1960-01-01T00:00:00Z").encode()))
    rows = standardize_impressions(frame, Rules(NOW, max_age=timedelta(days=10**6))).to_pylist()
    assert rows[0]["reasons"] == ["timestamp_too_old"]  # a maximum age past 1970 bounds nothing


def test_clicks_event_type_and_values():
    data = (
        b"timestamp,user_id,campaign_id,event_type,conversion_value\n"
        b"2026-01-01T00:00:00Z,u,c,CLICK,\n2026-01-01T00:00:00Z,u,c,bogus,\n"
        b"2026-01-01T00:00:00Z,u,c,conversion,abc\n,u,c,click,\n"
    )
    rows = standardize_clicks(_frame(frame_csv(data)), Rules(NOW)).to_pylist()
    assert [r["reasons"] for r in rows] == [
        [],
        ["event_type_invalid"],
        ["number_invalid:conversion_value"],
        ["required_missing:timestamp"],
    ]
    assert rows[0]["event_type"] == "click"


def test_click_ref_is_kept_and_rows_without_it_keep_their_ids_and_hashes():
    """``click_ref`` joined the contract later: a row without one must keep the fingerprint
    id and payload hash it had before (so a re-sent old file dedupes as a retry), while a
    conversion that names its click is a different payload."""
    header = b"timestamp,user_id,campaign_id,event_type,conversion_value,note\n"
    row = b"2026-01-01T00:00:00Z,u1,c1,conversion,3.5,x"
    plain, named = standardize_clicks(
        _frame(
            frame_csv(header.replace(b",note", b",note,click_ref") + row + b",\n" + row + b",k-1\n")
        ),
        Rules(NOW),
        payload=True,
    ).to_pylist()
    # Pinned from the code before click_ref existed (payload hashes were version 1, MD5,
    # then: the payload text is unchanged, so its version-1 hash still matches).
    assert (plain["event_id"], legacy_hash(pa.array([plain["payload"]]))[0].as_py()) == (
        "fp-5d074b767d3e20ec21934fe307dc52a7",
        "edbd32f96e3a8a1e",
    )
    assert plain["payload_hash"] == payload_hash(pa.array([plain["payload"]]))[0].as_py()
    assert (plain["click_ref"], named["click_ref"]) == (None, "k-1")
    assert named["event_id"] != plain["event_id"]


def test_ids_and_hashes_stay_those_of_the_sql_normalization():
    """Pinned from the kernel that trimmed and case-folded inside its SQL: Arrow's text
    kernels must give the same ids and payload hashes (no-break and ideographic spaces
    trimmed, tabs kept, enumerations and countries case-folded, numbers as the engine
    prints them, unknown fields with their nulls kept)."""
    rows = _impressions(
        '{"timestamp":"2026-11-20T13:04:05Z","ad_creative_id":"\\u00a0cr-1\\u3000",'
        '"user_id":" u\\t","website":"https://Ex.com/ ","placement":" In_Feed ",'
        '"device_type":"\\u00c9cran","country":"de","cost":1e-05,"note":{"k":[1,null]}}',
        '{"timestamp":1795179845123,"ad_creative_id":"cr-2","user_id":"u2","website":"w",'
        '"cost":"0.50","ip":"","x":null}',
    )
    assert [(r["impression_id"], r["payload_hash"]) for r in rows] == [
        ("fp-5a2f701a1a8df82194c6989928b984ab", "xe467fe9465b7b1be"),
        ("fp-034459e9b201c94e36304ff57afd4cf4", "xde7bb7afe43519d2"),
    ]
    assert [(r["placement"], r["device_type"], r["country"]) for r in rows] == [
        ("in_feed", "écran", "DE"),
        (None, None, None),
    ]
    assert [r["extras"] for r in rows] == ['{"note":{"k":[1,null]}}', '{"x":null}']


record = st.fixed_dictionaries(
    {
        "timestamp": st.one_of(
            st.integers(0, 2_000_000_000_000).map(int),
            st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)).map(
                lambda d: d.isoformat()
            ),
            st.text(max_size=5),
        ),
        "ad_creative_id": st.one_of(st.none(), st.text(max_size=4)),
        "user_id": st.one_of(st.none(), st.text(max_size=4), st.integers(-(2**62), 2**62)),
        "website": st.text(max_size=6),
        "cost": st.one_of(
            st.none(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3)
        ),
    }
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(st.lists(record, min_size=1, max_size=30))
def test_standardize_is_idempotent_and_loses_no_row(records):
    import orjson

    data = b"\n".join(orjson.dumps(r) for r in records)
    first = standardize_impressions(_frame(frame_json(data)), Rules(NOW))
    assert first.num_rows == len(records)
    good = first.filter(pa.compute.equal(pa.compute.list_value_length(first.column("reasons")), 0))
    # Re-serialize the standardized good rows and standardize again: nothing changes.
    again_lines = [
        orjson.dumps(
            {
                "impression_id": r["impression_id"],
                "timestamp": r["event_time"].isoformat(),
                "ad_creative_id": r["ad_creative_id"],
                "user_id": r["user_id"],
                "website": r["website"],
                **({"cost": r["cost"]} if r["cost"] is not None else {}),
            }
        )
        for r in good.to_pylist()
    ]
    if not again_lines:
        return
    second = standardize_impressions(_frame(frame_json(b"\n".join(again_lines))), Rules(NOW))
    cols = ["impression_id", "event_time", "ad_creative_id", "user_id", "website", "cost"]
    assert second.select(cols).to_pylist() == good.select(cols).to_pylist()


@pytest.mark.parametrize("text", ["INF", "-Infinity", "NaN", "1e999"])
def test_a_price_that_is_not_a_finite_number_is_invalid(text: str) -> None:
    # Hypothesis found "INF": it became cost=inf on the first pass and None on the second.
    record = {"timestamp": 0, "ad_creative_id": "c", "user_id": "u", "website": "w", "cost": text}
    rows = standardize_impressions(_frame(frame_json(orjson.dumps(record))), Rules(NOW))
    assert rows.column("cost").to_pylist() == [None]
    assert "number_invalid:cost" in rows.column("reasons").to_pylist()[0]


def test_a_bid_price_that_is_not_finite_is_invalid() -> None:
    from advertisex.kernels.standardize import standardize_bids

    frame = _bid_frame(
        0,
        [{"name": "floor_price", "type": ["null", "double"]}],
        [
            {
                "auction_id": "a1",
                "timestamp": "2026-11-10T00:00:00Z",
                "user_id": "u",
                "floor_price": float("nan"),
            },
            {
                "auction_id": "a2",
                "timestamp": "2026-11-10T00:00:00Z",
                "user_id": "u",
                "floor_price": 0.5,
            },
        ],
    )
    rows = standardize_bids(frame, Rules(NOW)).to_pylist()
    assert "number_invalid:floor_price" in rows[0]["reasons"]
    assert rows[1]["reasons"] == []


def test_amounts_past_any_real_one_are_quarantined_at_their_bound() -> None:
    """A cost or price above MAX_PRICE, a conversion value above MAX_CONVERSION_VALUE (a
    price sent in micro-units, or a hostile one) is ``amount_too_large``: accepted, one
    impression of cost 9.3e12 stopped every later marts update (their sums are 64-bit
    micro-units). The bound itself is an amount; not-a-number stays ``number_invalid``
    alone."""
    from advertisex.kernels.standardize import standardize_bids
    from advertisex.model.contracts import MAX_CONVERSION_VALUE, MAX_PRICE

    costs = [MAX_PRICE, MAX_PRICE * 1.000001, 9.3e12, 1e300]
    lines = [GOOD.replace("0.002", repr(c)) % "2026-11-20T13:04:05Z" for c in costs]
    reasons = [r["reasons"] for r in _impressions(*lines)]
    assert reasons == [[], *[["amount_too_large:cost"]] * 3]

    values = [MAX_CONVERSION_VALUE, MAX_CONVERSION_VALUE + 1, 1e300]
    header = b"timestamp,user_id,campaign_id,event_type,conversion_type,conversion_value\n"
    body = b"".join(
        b"2026-11-20T10:00:00Z,u,c,conversion,purchase,%s\n" % repr(v).encode() for v in values
    )
    rows = standardize_clicks(_frame(frame_csv(header + body)), Rules(NOW)).to_pylist()
    assert [r["reasons"] for r in rows] == [[], *[["amount_too_large:conversion_value"]] * 2]

    fields = [
        {"name": "floor_price", "type": ["null", "double"]},
        {"name": "bid_price", "type": ["null", "double"]},
    ]
    prices = [(MAX_PRICE, 1.0), (1.0, 2.5e6), (9.3e12, None), (None, float("inf"))]
    records = [
        {"auction_id": f"a{n}", "timestamp": "2026-11-10T00:00:00Z", "user_id": "u"}
        | {"floor_price": floor, "bid_price": bid}
        for n, (floor, bid) in enumerate(prices)
    ]
    rows = standardize_bids(_bid_frame(0, fields, records), Rules(NOW)).to_pylist()
    assert [r["reasons"] for r in rows] == [
        [],
        ["amount_too_large:bid_price"],
        ["amount_too_large:floor_price"],
        ["number_invalid:bid_price"],
    ]


@pytest.mark.parametrize("helpers", [True, False], ids=["native", "arrow"])
def test_bid_targeting_maps_are_rendered_once_each_as_the_engine_renders_them(
    helpers, monkeypatch
) -> None:
    """The targeting texts are rendered per distinct map and taken for every row: each row
    gets the engine's own text and JSON of its map (payload, rejected record's raw text),
    whatever the chunks, slices, nulls, empty maps, null values and entry order — the maps
    told apart by the compiled helpers or by Arrow."""
    from advertisex import native
    from advertisex.kernels.standardize import _targeting_texts, standardize_bids
    from advertisex.util import engine

    if not helpers:
        monkeypatch.setattr(native, "map_codes", lambda maps: None)

    kinds = [
        {"age": "18-24", "interests": "a,b"},
        {"interests": "a,b", "age": "18-24"},  # same entries, another order: another text
        {"q": "{\"=}'", "none": None},
        {},
        None,
    ]
    fields = [
        {"name": "bid_price", "type": ["null", "double"]},
        {"name": "ad_targeting", "type": ["null", {"type": "map", "values": ["null", "string"]}]},
    ]
    frames = []
    for part in range(2):
        records = [
            {
                "auction_id": f"a{part}-{i}",
                "timestamp": "2026-11-10T00:00:00Z",
                "user_id": "u",
                "bid_price": -1.0 if i % 4 == 0 else 0.5,  # every fourth bid rejected
                "ad_targeting": kinds[(i * 3 + part) % len(kinds)],
            }
            for i in range(12)
        ]
        frames.append(_bid_frame(part, fields, records))
    frame = pa.concat_tables(frames)  # two chunks (concat_frames joins frames this small)
    targeting = pa.chunked_array([c.slice(1) for c in frame.column("ad_targeting").chunks])
    expected = engine.run(
        "SELECT CAST(m AS VARCHAR) AS t, CAST(to_json(m) AS VARCHAR) AS j FROM maps",
        maps=pa.table({"m": targeting.combine_chunks()}),
    )
    text, json, codes = _targeting_texts(targeting)
    assert text.to_pylist() == expected.column("t").to_pylist()
    assert json.take(codes).to_pylist() == expected.column("j").to_pylist()
    assert len(json) == len(kinds) - 1  # each distinct map rendered once (nulls: none)
    rows = standardize_bids(frame, Rules(NOW), payload=True).to_pylist()
    assert [r["ad_targeting"] for r in rows] == frame.column("ad_targeting").to_pylist()
    whole = engine.run(
        "SELECT coalesce(CAST(ad_targeting AS VARCHAR), chr(0)) AS t FROM frame", frame=frame
    )
    assert [r["payload"].split("\x1f")[8] for r in rows] == whole.column("t").to_pylist()
    for row, record in zip(rows, [r for _ in range(2) for r in range(12)], strict=True):
        rejected = record % 4 == 0
        assert bool(row["reasons"]) == rejected
        if rejected:
            targeting_json = orjson.loads(row["raw"])["ad_targeting"]
            given = row["ad_targeting"]
            assert targeting_json == (None if given is None else dict(given))


def test_small_frames_are_joined_into_one_chunk_and_big_ones_left_apart() -> None:
    """A piece of many small segments (a collector's at low traffic, a backlog of them) had
    a chunk per segment in every column, and every kernel's loop over chunks ran once a
    segment: 38,025 segments of a backfill spent ≈ 30 s there. Frames of fewer than
    ``SMALL_FRAME_ROWS`` rows on average are joined; big ones are not copied."""
    from advertisex.formats.decode import SMALL_FRAME_ROWS, concat_frames

    def frames(rows: int) -> list[pa.Table]:
        return [pa.table({"segment": [k] * rows, "raw": [f"{k}"] * rows}) for k in range(5)]

    small = concat_frames(frames(3))
    assert [small.column(c).num_chunks for c in small.column_names] == [1, 1]
    assert small.column("segment").to_pylist() == [k for k in range(5) for _ in range(3)]
    big = concat_frames(frames(SMALL_FRAME_ROWS))
    assert big.column("raw").num_chunks == 5


def _bid_frame(index: int, fields: list[dict], records: list[dict]) -> pa.Table:
    """Bid requests with the required fields and ``fields`` as an Avro segment, framed."""
    import io

    import fastavro

    from advertisex.formats.decode import frame_segment
    from advertisex.landing.zone import Segment

    required = [{"name": n, "type": "string"} for n in ("auction_id", "timestamp", "user_id")]
    schema = {"type": "record", "name": "BidRequest", "fields": [*required, *fields]}
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return frame_segment(index, Segment(source="bids", name="bids/x.avro", size=0), out.getvalue())


def test_bid_texts_and_hashes_stay_those_of_the_sql_normalization() -> None:
    """Pinned from the kernel that trimmed and case-folded the bid's text fields inside its
    SQL: Arrow's text kernels give the same fields, payload hashes and rejected records
    (no-break and ideographic spaces trimmed, tabs kept, Unicode case-folded, blanks null)."""
    from advertisex.kernels.standardize import standardize_bids

    texts = ("exchange", "site_domain", "device_type", "country", "campaign_id")
    fields = [{"name": n, "type": ["null", "string"]} for n in texts]
    stamp = "2026-11-10T00:00:00Z"
    records = [
        {"auction_id": "\u00a0a1\u3000", "timestamp": stamp, "user_id": " u\t",
         "exchange": " AdX ", "site_domain": "News.Example\u00a0", "device_type": "\u00c9cran",
         "country": "de", "campaign_id": "  "},
        {"auction_id": "a2", "timestamp": stamp, "user_id": "u2", "exchange": None,
         "site_domain": "", "device_type": "MOBILE", "country": None, "campaign_id": "c-1"},
        {"auction_id": " a3", "timestamp": stamp, "user_id": "\u3000", "exchange": "X",
         "site_domain": None, "device_type": None, "country": "fr ", "campaign_id": None},
    ]  # fmt: skip
    rows = standardize_bids(_bid_frame(0, fields, records), Rules(NOW)).to_pylist()
    got = [tuple(r[n] for n in ("auction_id", "user_id", *texts, "payload_hash")) for r in rows]
    assert got == [
        ("a1", "u\t", "adx", "news.example", "écran", "DE", None, "x5ec7e77e57d771ae"),
        ("a2", "u2", None, None, "mobile", None, "c-1", "xbb0a0b6cbcaf3929"),
        ("a3", None, "x", None, None, "FR", None, "x598689e75886a66d"),
    ]
    assert rows[2]["reasons"] == ["required_missing:user_id"]
    assert rows[2]["raw"] == (
        '{"auction_id":"a3","timestamp":"2026-11-10T00:00:00Z","user_id":null,"exchange":"x",'
        '"site_domain":null,"device_type":null,"country":"FR","floor_price":null,'
        '"ad_targeting":null,"bid_price":null,"campaign_id":null,"ad_creative_id":null}'
    )


def test_a_typed_bid_time_is_checked_as_it_is_and_printed_only_in_a_rejected_record() -> None:
    """An Avro timestamp-millis time: present or missing as the value is (no text of every
    bid's time is made for the checks), printed as the engine prints it in a rejected
    record's JSON — pinned from the kernel that printed every time."""
    import datetime as dt
    import io

    import fastavro

    from advertisex.formats.decode import frame_segment
    from advertisex.kernels.standardize import standardize_bids
    from advertisex.landing.zone import Segment

    millis = {"type": "long", "logicalType": "timestamp-millis"}
    schema = {
        "type": "record",
        "name": "BidRequest",
        "fields": [
            {"name": "auction_id", "type": "string"},
            {"name": "timestamp", "type": ["null", millis]},
            {"name": "user_id", "type": ["null", "string"]},
        ],
    }
    at = dt.datetime(2026, 11, 10, 0, 0, 1, 500000, tzinfo=dt.UTC)
    records = [
        {"auction_id": "a1", "timestamp": at, "user_id": "u1"},
        {"auction_id": "a2", "timestamp": at, "user_id": None},
        {"auction_id": "a3", "timestamp": None, "user_id": "u3"},
    ]
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    frame = frame_segment(0, Segment(source="bids", name="bids/x.avro", size=0), out.getvalue())
    rows = standardize_bids(frame, Rules(NOW)).to_pylist()
    rest = (
        '"exchange":null,"site_domain":null,"device_type":null,"country":null,'
        '"floor_price":null,"ad_targeting":null,"bid_price":null,"campaign_id":null,'
        '"ad_creative_id":null}'
    )
    assert [r["reasons"] for r in rows] == [
        [],
        ["required_missing:user_id"],
        ["required_missing:timestamp"],
    ]
    assert rows[0]["raw"] is None and rows[0]["event_time"] == at
    assert rows[1]["raw"] == (
        '{"auction_id":"a2","timestamp":"2026-11-10 00:00:01.5+00","user_id":null,' + rest
    )
    assert rows[2]["raw"] == '{"auction_id":"a3","timestamp":null,"user_id":"u3",' + rest
    assert [r["payload_hash"] for r in rows] == [
        "x09a87a2fc41fe328",
        "x00bef8f6c9fdd287",
        "x6928266ab92a5daf",
    ]


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(
        st.one_of(st.none(), st.text(alphabet='ab": \t{}\n', max_size=40)), min_size=1, max_size=30
    ),
    block=st.sampled_from([1, 2, 3, 7, 64]),
)
def test_the_key_bound_counts_colons_after_a_quote_or_space_across_scan_blocks(texts, block):
    """``_keys_at_most`` scans a chunk's bytes in blocks: whatever the block size, each text
    gets the colons in it that follow a quote or JSON whitespace — the byte before a text's
    first may be the end of the text before it (an upper bound may count more), and a colon
    at a chunk's very first byte has none — as one pass over the chunk's bytes counts them."""
    from unittest import mock

    from advertisex.kernels import standardize

    def by_hand(chunk):
        data = "".join(t or "" for t in chunk).encode()
        counts, at = [], 0
        for text in chunk:
            end = at + len((text or "").encode())
            keyish = [
                i for i in range(max(at, 1), end) if data[i] == 58 and data[i - 1] in b'" \t\n\r'
            ]
            counts.append(len(keyish))
            at = end
        return counts

    half = len(texts) // 2
    raws = pa.chunked_array([texts[:half], texts[half:]], pa.string())
    with mock.patch.object(standardize, "_SCAN_BLOCK", block):
        counted = standardize._keys_at_most(raws).to_pylist()
    assert counted == by_hand(texts[:half]) + by_hand(texts[half:])


def test_bid_prices_print_the_same_with_and_without_the_compiled_helpers() -> None:
    """The prices' payload texts (the engine's text of each DOUBLE) come from the compiled
    helpers where they can print them, the engine's for the rest: prices of a few decimals,
    of seventeen digits, tiny, huge, zero, negative, infinite, not a number, null, and as
    texts — the same rows and payload hashes either way."""
    from advertisex.kernels.standardize import standardize_bids
    from tests.native_helpers import helpers_missing

    prices = [0.8933, 2.5, 3.0, 0.1 + 0.2, 1e-7, 1e-4, 1e15, 123456789.125, 0.0, -0.0, -1.25]
    prices += [float("inf"), float("nan"), None, 4.35, 1 / 3]
    fields = [
        {"name": "floor_price", "type": ["null", "double"]},
        {"name": "bid_price", "type": ["null", "string"]},
    ]
    records = [
        {
            "auction_id": f"a{i}",
            "timestamp": "2026-11-10T00:00:00Z",
            "user_id": "u",
            "floor_price": price,
            "bid_price": None if price is None else repr(price),
        }
        for i, price in enumerate(prices)
    ]
    frame = _bid_frame(0, fields, records)
    helped = standardize_bids(frame, Rules(NOW), payload=True)
    with helpers_missing():
        alone = standardize_bids(frame, Rules(NOW), payload=True)
    assert helped.schema == alone.schema
    for name in alone.column_names:  # by repr: a NaN price equals itself
        assert repr(helped.column(name).to_pylist()) == repr(alone.column(name).to_pylist()), name
    assert "\x1f0.8933\x1f" in helped.column("payload")[0].as_py()  # the separator


def test_a_quarantined_bid_keeps_the_fields_outside_the_contract_in_its_raw_text() -> None:
    """An Avro bid is quarantined with its record as JSON: it held only the contract's
    fields, so a container naming its fields otherwise (``auctionId``) left a record of
    nulls in the quarantine and the values nowhere."""
    from advertisex.kernels.standardize import standardize_bids

    fields = [
        {"name": "auctionId", "type": "string"},
        {"name": "note", "type": ["null", "string"]},
    ]
    records = [
        {"auction_id": "", "timestamp": "nope", "user_id": "u", "auctionId": "a}1", "note": None},
        {"auction_id": "a2", "timestamp": "2026-11-10T00:00:00Z", "user_id": "u", "auctionId": "x"},
    ]
    rows = standardize_bids(_bid_frame(0, fields, records), Rules(NOW)).to_pylist()
    raw = orjson.loads(rows[0]["raw"])
    assert raw["auctionId"] == "a}1" and "note" in raw and raw["timestamp"] == "nope"
    assert rows[1]["reasons"] == [] and rows[1]["raw"] is None


def _engine_calls(monkeypatch) -> list[str]:
    """The statements kernels send to the engine from now on (they still run)."""
    from advertisex.util import engine

    sent: list[str] = []
    run = engine.run

    def spy(query: str, params: dict | None = None, **tables: pa.Table) -> pa.Table:
        sent.append(query)
        return run(query, params, **tables)

    monkeypatch.setattr(engine, "run", spy)
    return sent


def _engine_frame_sizes(monkeypatch, name: str = "frame") -> list[int]:
    """The rows of each table ``name`` kernels hand the engine from now on (they still run)."""
    from advertisex.util import engine

    sizes: list[int] = []
    run = engine.run

    def spy(query: str, params: dict | None = None, **tables: pa.Table) -> pa.Table:
        if name in tables:
            sizes.append(tables[name].num_rows)
        return run(query, params, **tables)

    monkeypatch.setattr(engine, "run", spy)
    return sizes


_TYPED_BID_FIELDS = [
    {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    *({"name": p, "type": ["null", "double"]} for p in ("floor_price", "bid_price")),
    {"name": "exchange", "type": ["null", "string"]},
    {"name": "ad_targeting", "type": ["null", {"type": "map", "values": ["null", "string"]}]},
]


def _typed_bids(records: list[dict]) -> pa.Table:
    """Bids as the Avro schema types them (time and prices typed), framed."""
    import io

    import fastavro

    from advertisex.formats.decode import frame_segment
    from advertisex.landing.zone import Segment

    fields = [
        {"name": "auction_id", "type": ["null", "string"]},
        {"name": "user_id", "type": ["null", "string"]},
        *_TYPED_BID_FIELDS,
    ]
    schema = {"type": "record", "name": "BidRequest", "fields": fields}
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(schema), records)
    return frame_segment(0, Segment(source="bids", name="bids/x.avro", size=0), out.getvalue())


def test_typed_bids_without_a_reason_need_no_engine_and_give_the_engines_rows(monkeypatch):
    """A micro-batch of good bids typed as Avro types them (and plain targeting maps) is
    standardized by Arrow alone — the engine's query cost ≈ 6 ms to plan, and the maps'
    ≈ 2-5 ms — to exactly the rows the engine's query gives; a bid with a reason goes
    through the engine's query, alone: the good bids beside it do not."""
    from advertisex.kernels import standardize as std

    at = datetime(2026, 11, 27, 11, 59, 30, 123456, tzinfo=UTC)
    good = [
        {
            "auction_id": f" a{i} ",
            "user_id": "u" if i % 3 else "\u00a0u2",
            "timestamp": at - timedelta(seconds=i),
            "floor_price": None if i % 4 == 0 else 0.25 * i,
            "bid_price": [None, 1.5, 0.0, 1e6][i % 4],
            "exchange": ["X", None, " ", "Adx"][i % 4],
            "ad_targeting": [None, {}, {"age": "18-24", "interests": "a,b"}, {"k": "null"}][i % 4],
        }
        for i in range(9)
    ]
    bad = {  # each a reason of the query's own
        "auction_id": {"auction_id": "  "},
        "user_id": {"user_id": None},
        "future": {"timestamp": NOW + timedelta(minutes=6)},
        "old": {"timestamp": datetime(1969, 12, 31, tzinfo=UTC)},
        "year 31690": {"timestamp": 2**61},  # µs: no datetime, the engine's timestamp_invalid
        "nan": {"bid_price": float("nan")},
        "infinite": {"floor_price": float("inf")},
        "negative": {"floor_price": -0.01},
        "too large": {"bid_price": 1e6 + 0.5},
    }
    sent = _engine_calls(monkeypatch)
    sizes = _engine_frame_sizes(monkeypatch)
    every = [r for i, b in enumerate(bad.values()) for r in (good[i], {**good[1], **b})]
    for payload in (False, True):
        frames = {"good": _typed_bids(good), "every": _typed_bids(every)}
        frames.update({name: _typed_bids([*good, {**good[1], **b}]) for name, b in bad.items()})
        for name, frame in frames.items():
            sent.clear()
            sizes.clear()
            rows = std.standardize_bids(frame, Rules(NOW), payload)
            assert bool(sent) == (name != "good"), name
            # Only the bids with a reason went through the engine's query, not their frame.
            assert sizes == ([] if name == "good" else [len(bad) if name == "every" else 1])
            with monkeypatch.context() as engine_only:
                engine_only.setattr(std, "_bids_by_arrow", lambda *args: None)
                spec = std.standardize_bids(frame, Rules(NOW), payload)
            assert rows.schema == spec.schema, name
            assert repr(rows.to_pylist()) == repr(spec.to_pylist()), name  # (NaN is not NaN)
            assert bool(rows.column("reasons").to_pylist()[-1]) == (name != "good"), name


_MAP_TEXTS = st.one_of(
    st.text(alphabet="aZ09_.|/@+- ,:=()[]{}'\"\\\té", max_size=6),
    st.sampled_from(["null", "NULL", "Null", "", " ", " a", "a ", "a b", "a  b", "nullx"]),
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(), st.dictionaries(_MAP_TEXTS, st.one_of(st.none(), _MAP_TEXTS), max_size=4)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_targeting_maps_rendered_outside_the_engine_are_the_engines_texts(maps) -> None:
    """The maps whose keys and values are plain are rendered without the engine: each to
    the very text and JSON the engine gives (bare, or quoted where the engine quotes)."""
    from advertisex.kernels.standardize import _engine_rendered, _rendered

    column = pa.array(
        [None if m is None else list(m.items()) for m in maps], pa.map_(pa.string(), pa.string())
    )
    for maps_given in (column, column.slice(1)):  # (a slice: its offsets not from zero)
        text, json = _rendered(maps_given)
        expected = _engine_rendered(maps_given)
        assert text.to_pylist() == expected[0].to_pylist()
        assert json.to_pylist() == expected[1].to_pylist()


def test_a_piece_s_many_targeting_maps_are_rendered_without_the_engine(monkeypatch) -> None:
    """Past a micro-batch's few hundred maps the compiled helpers still render the plain
    ones (a batch piece's ≈ 4,400 distinct maps cost an engine query, ≈ 15 ms): the texts
    and JSON _plain_rendering gives, the others (a null value) the engine's."""
    from advertisex import native
    from advertisex.kernels import standardize as std

    if not native.available():
        pytest.skip("without the compiled helpers many maps are the engine's to render")
    entries = [
        [("age", f"{i}-{i + 9}"), ("interests", f"news,t{i}"), ("x", "null")] for i in range(600)
    ]
    column = pa.array([*entries, [("k", None)], None, []], pa.map_(pa.string(), pa.string()))
    asked = []
    rendered_by_engine = std._engine_rendered

    def by_engine(maps):
        asked.append(maps.to_pylist())
        return rendered_by_engine(maps)

    monkeypatch.setattr(std, "_engine_rendered", by_engine)
    text, json = std._rendered(column)
    assert asked == [[[("k", None)]]]
    plain = [std._plain_rendering(m) for m in entries]
    assert text.to_pylist() == [t for t, _ in plain] + [
        *rendered_by_engine(column.slice(600, 1))[0].to_pylist(),
        None,
        "{}",
    ]
    assert json.to_pylist()[:600] == [j for _, j in plain]
    assert json.to_pylist()[601:] == [None, "{}"]
    assert text.to_pylist()[0] == "{age=0-9, interests='news,t0', x='null'}"


_CLICK_CELLS = {
    "event_id": ["e1", "", " e2 ", "e1"],
    "timestamp": [
        "2026-11-27T11:00:00Z",
        "2026-11-27T13:59:00.5+02:00",
        "1795179845123",
        "not-a-time",
        "",
        " 2026-11-01 00:00:00 ",
        "1960-01-01T00:00:00Z",
        "2026-11-27T12:06:00Z",
    ],
    "user_id": ["u", "", " u2\t", "\u00a0x\u3000", "Ü"],
    "campaign_id": ["c", "", "cmp-1"],
    "event_type": ["click", "CLICK", " Conversion ", "bogus", "", "ÇLICK"],
    "impression_id": ["", "i1"],
    "ad_creative_id": ["", "cr"],
    "conversion_type": ["", "Purchase", "ötHer"],
    "conversion_value": ["", "3.5", "abc", "-1", "1e12", "inf", " 5 ", "0.10", "12345678901234567"],
    "currency": ["", "usd", "ß"],
    "click_ref": ["", "k-1", " k "],
    "note": ["", "x", '"{""a"":1}"'],
}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.tuples(*(st.sampled_from(cells) for cells in _CLICK_CELLS.values())),
            st.integers(0, 12),  # cells kept: a short row is a framing error
        ),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_clicks_by_arrow_are_the_rows_of_the_engines_query(rows, payload) -> None:
    """Clicks are standardized by Arrow (the engine's query cost ≈ 8 ms to plan, for a
    second's one or two clicks) to exactly the rows of that query, the spec: every reason,
    fingerprint, payload hash and raw text."""
    from advertisex.kernels.standardize import _clicks_by_engine

    lines = [",".join(_CLICK_CELLS)] + [",".join(cells[:kept]) for cells, kept in rows]
    frame = _frame(frame_csv(("\n".join(lines) + "\n").encode()))
    for rules in (Rules(NOW), Rules(NOW, max_age=timedelta(days=30))):
        assert standardize_clicks(frame, rules, payload).equals(
            _clicks_by_engine(frame, rules, payload)
        )


def test_good_clicks_need_no_engine(monkeypatch) -> None:
    data = b"event_id,timestamp,user_id,campaign_id,event_type\ne1,2026-11-27T11:00:00Z,u,c,click\n"
    sent = _engine_calls(monkeypatch)
    [row] = standardize_clicks(_frame(frame_csv(data)), Rules(NOW)).to_pylist()
    assert (row["event_id"], row["reasons"], sent) == ("e1", [], [])
