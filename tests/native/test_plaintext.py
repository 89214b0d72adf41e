"""The plain-spelling readers decide only what DuckDB reads the same way.

Each text they decide must give the instant the impressions' check reads in the engine
(``kernels.timestamps.parse_text_sql``: an ISO time in UTC, the engine's zone, or an epoch
count), or the DOUBLE ``TRY_CAST(… AS DOUBLE)`` gives and the text
that DOUBLE is cast back to; on texts built to sit on every edge the readers draw, and on
random ones.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex import native
from advertisex.kernels.timestamps import parse_text_sql
from advertisex.util import engine

pytestmark = pytest.mark.skipif(not native.available(), reason="the helpers were not built")

INSTANTS = [
    "2026-11-20T10:00:00.277Z",
    "2026-11-20T10:00:00.277+00:00",
    "2026-11-20T10:00:00.277",  # no zone: UTC
    "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.1Z",
    "2026-11-20T10:00:00.123456Z",
    "2026-11-20T10:00:00.1234567Z",  # past microseconds: the engine's
    "2026-11-20 10:00:00Z",  # a space: the engine's
    "2026-11-20T10:00:00+02:00",
    "2026-11-20T10:00:00.5-05:30",
    "2026-11-20T10:00:00+23:59",
    "2026-11-20T10:00:00+24:00",  # the engine's
    "2026-11-20T10:00:00+05:60",
    "2026-11-20T10:00:00+0530",  # the engine's
    "9999-12-31T23:00:00-05:00",  # past 9999 in UTC: the engine's (no such instant)
    "9999-12-31T23:00:00+05:00",
    "2026-11-20T10:00:00.Z",
    "2024-02-29T23:59:59.999999Z",  # leap day
    "2023-02-29T00:00:00Z",  # no such day
    "2100-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "1000-01-01T00:00:00Z",
    "0999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "1969-12-31T23:59:59.5Z",  # before 1970
    "1970-01-01T00:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T23:60:00Z",
    "2026-11-20T23:59:60Z",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-1-20T10:00:00Z",
    "+2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00Zjunk",
    "2026-11-20T10:00:00.277z",
    "1732097000",  # epoch seconds
    "1732097000123",  # milliseconds
    "1732097000123456",  # microseconds
    "-1732097000",
    "94551006595851",  # milliseconds the engine's arithmetic reads a microsecond off
    "99999999999999999",  # a DOUBLE of 1e17: nanoseconds, the engine's
    "1732097000123456789",
    "253402300800",  # past 9999: the engine's (none)
    "01732097000",
    "1.5e9",
    "not-a-time",
    "",
]

NUMBERS = [
    "0", "-0", "0.0", "-0.000", "3", "3.0", "30", "0.0025", "2.50", "1.5", "-2.5",
    "0.0001", "0.00012", "0.00001", "0.000999", "123456789012345", "123456789012345.5",
    "12345678901234.5", "1000000000000000", "9999999999999990", "9999999999999999",
    "10000000000000000", "0.30000000000000004", "0.1", "0.2", "0.3", "100", "1e3", "1E-5",
    "01", "00.5", ".5", "5.", "+5", "-", "--1", "1.2.3", " 1", "1 ", "inf", "NaN", "0x10",
    "999999999999999", "0.999999999999999", "0.0999999999999999", "4.35", "2.675", "1.005",
    "0.000123456789012345",
]  # fmt: skip


def _engine_instants(texts: list[str]) -> list[int | None]:
    rows = engine.run(
        f"SELECT epoch_us({parse_text_sql('t')}) AS us FROM texts",
        texts=pa.table({"t": pa.array(texts, pa.string())}),
    )
    return rows.column("us").to_pylist()


def _engine_numbers(texts: list[str]) -> tuple[list[float | None], list[str | None]]:
    rows = engine.run(
        "SELECT try_cast(t AS DOUBLE) AS v, CAST(try_cast(t AS DOUBLE) AS VARCHAR) AS s FROM texts",
        texts=pa.table({"t": pa.array(texts, pa.string())}),
    )
    return rows.column("v").to_pylist(), rows.column("s").to_pylist()


def _same_instants(texts: list[str]) -> int:
    found = native.plain_instants(pa.array(texts, pa.string()))
    assert found is not None
    micros, decided = found
    expected = _engine_instants(texts)
    for text, us, sure, want in zip(
        texts, micros.tolist(), decided.tolist(), expected, strict=True
    ):
        if sure:
            assert us == want, text
    return int(decided.sum())


def _same_numbers(texts: list[str]) -> int:
    found = native.plain_numbers(pa.array(texts, pa.string()))
    assert found is not None
    values, decided, rendered = found
    want_values, want_texts = _engine_numbers(texts)
    for i, text in enumerate(texts):
        if decided[i]:
            assert want_values[i] is not None and math.isfinite(want_values[i]), text
            assert values[i] == want_values[i], text
            assert math.copysign(1, values[i]) == math.copysign(1, want_values[i]), text
            assert rendered[i].as_py() == want_texts[i], text
        else:
            assert rendered[i].as_py() == "", text
    return int(decided.sum())


def test_instants_on_the_edges():
    decided = _same_instants(INSTANTS)
    found = native.plain_instants(pa.array(INSTANTS))
    assert found is not None
    sure = dict(zip(INSTANTS, found[1].tolist(), strict=True))
    assert sure["2026-11-20T10:00:00.277Z"] and sure["2026-11-20T10:00:00.277+00:00"]
    assert sure["2024-02-29T23:59:59.999999Z"] and sure["1969-12-31T23:59:59.5Z"]
    assert sure["2026-11-20T10:00:00.5-05:30"] and not sure["9999-12-31T23:00:00-05:00"]
    assert sure["1732097000123"] and sure["94551006595851"] and not sure["99999999999999999"]
    for other in ("2026-11-20 10:00:00Z", "2023-02-29T00:00:00Z", "2026-11-20T24:00:00Z", ""):
        assert not sure[other], other
    assert decided >= 12


def test_numbers_on_the_edges():
    decided = _same_numbers(NUMBERS)
    found = native.plain_numbers(pa.array(NUMBERS))
    assert found is not None
    sure = dict(zip(NUMBERS, found[1].tolist(), strict=True))
    for plain in ("0", "-0", "3", "0.0025", "2.50", "0.0001", "1000000000000000"):
        assert sure[plain], plain
    for other in ("0.00001", "9999999999999999", "123456789012345.5", "1e3", "01", " 1"):
        assert not sure[other], other
    assert decided >= 25


def test_nulls_chunks_and_slices_are_read_in_place():
    texts = pa.chunked_array(
        [pa.array(["1.5", None, "x"]), pa.array(["2026-11-20T10:00:00Z", "2.0"]).slice(1)]
    )
    values, decided, rendered = native.plain_numbers(texts)  # type: ignore[misc]
    assert decided.tolist() == [True, False, False, True]
    assert values[[0, 3]].tolist() == [1.5, 2.0]
    assert rendered.to_pylist() == ["1.5", "", "", "2.0"]
    micros, sure = native.plain_instants(
        pa.chunked_array([pa.array([None, "1970-01-01T00:00:01Z"])])
    )  # type: ignore[misc]
    assert sure.tolist() == [False, True] and micros[1] == 1_000_000
    doubles = pa.chunked_array([pa.array([9.5, None, 0.25]).slice(1), pa.array([1.5, 2.0])])
    printed, sure = native.double_texts(doubles)  # type: ignore[misc]
    assert printed.to_pylist() == ["", "0.25", "1.5", "2.0"]
    assert sure.tolist() == [False, True, True, True]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda y, mo, d, h, mi, s, frac, zone: (
                f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
            ),
            st.integers(990, 9999),
            st.integers(0, 13),
            st.integers(0, 32),
            st.integers(0, 24),
            st.integers(0, 60),
            st.integers(0, 60),
            st.sampled_from(["", ".", ".5", ".05", ".123", ".123456", ".1234567"]),
            st.sampled_from(["", "Z", "+00:00", "+01:00", "-09:30", "+23:59", "+24:00", "z", " "]),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_random_instants_read_as_the_engine_reads_them(texts):
    _same_instants(texts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(10**18), 10**18).map(str), min_size=1, max_size=50))
def test_random_epoch_counts_read_as_the_engine_reads_them(texts):
    _same_instants(texts)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(0, 20)
            .flatmap(
                lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)
            )
            .map(str),
            st.from_regex(r"-?[0-9]{1,17}(\.[0-9]{1,20})?", fullmatch=True),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_random_numbers_read_and_printed_as_the_engine_does(texts):
    _same_numbers(texts)


def test_without_the_library_nothing_is_read():
    from tests.native_helpers import helpers_missing

    with helpers_missing():
        assert native.plain_instants(pa.array(["2026-11-20T10:00:00Z"])) is None
        assert native.plain_numbers(pa.array(["1.5"])) is None
    assert np.all(native.plain_numbers(pa.array(["1.5"]))[1])  # type: ignore[index]


def test_the_impressions_read_the_same_with_and_without_the_helpers():
    """Records with every edge time and cost (as text, as a JSON number, missing, null), a
    batch starting between them and allowing them a year: the same rows, reasons (too
    old, in the future, invalid) and payload hashes either way."""
    import json
    from datetime import UTC, datetime, timedelta

    from advertisex.formats.jsonfmt import frame_json
    from advertisex.kernels.standardize import Rules, standardize_impressions
    from tests.native_helpers import helpers_missing

    base = {
        "impression_id": "imp-1", "ad_creative_id": "cr-1", "campaign_id": "cmp-1",
        "user_id": "u-1", "website": "https://a.example/x", "user_agent": "curl/8",
    }  # fmt: skip
    lines = []
    for i, when in enumerate([*INSTANTS, "2026-12-25T00:00:00Z", "2025-01-01T00:00:00Z"]):
        cost = NUMBERS[i % len(NUMBERS)]
        for cost_value in (cost, "@number", None, "@missing"):
            record = {**base, "impression_id": f"imp-{len(lines)}", "timestamp": when}
            if cost_value == "@number":
                record["cost"] = float(cost) if _is_float(cost) else cost
            elif cost_value != "@missing":
                record["cost"] = cost_value
            lines.append(json.dumps(record))
    lines.append(json.dumps({**base, "timestamp": 1732097000, "cost": 0.5}))
    lines.append(json.dumps({**base, "cost": 0.5}))
    frame = frame_json("\n".join(lines).encode())
    frame = frame.append_column("segment", pa.array([0] * frame.num_rows, pa.int32()))
    rules = Rules(datetime(2026, 11, 21, tzinfo=UTC), max_age=timedelta(days=365))
    helped = standardize_impressions(frame, rules)
    with helpers_missing():
        alone = standardize_impressions(frame, rules)
    assert helped.schema == alone.schema
    for name in alone.column_names:
        assert helped.column(name).to_pylist() == alone.column(name).to_pylist(), name
    raws, lists = frame.column("raw").to_pylist(), helped.column("reasons").to_pylist()
    reasons = dict(zip(raws, lists, strict=True))
    said = {
        when: next(r for raw, r in reasons.items() if f'"timestamp": "{when}"' in raw)
        for when in ("not-a-time", "2026-12-25T00:00:00Z", "2025-01-01T00:00:00Z")
    }
    assert said["not-a-time"][-1:] == ["timestamp_invalid"]
    assert said["2026-12-25T00:00:00Z"][-1:] == ["timestamp_in_future"]
    assert said["2025-01-01T00:00:00Z"][-1:] == ["timestamp_too_old"]
    assert any("number_invalid:cost" in r for r in reasons.values())


def _is_float(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _same_double_texts(values: list[float | None]) -> int:
    found = native.double_texts(pa.array(values, pa.float64()))
    assert found is not None
    texts, decided = found
    want = engine.run(
        "SELECT CAST(v AS VARCHAR) AS t FROM doubles",
        doubles=pa.table({"v": pa.array(values, pa.float64())}),
    ).column("t")
    for i, value in enumerate(values):
        if decided[i]:
            assert texts[i].as_py() == want[i].as_py(), repr(value)
        else:
            assert texts[i].as_py() == "", repr(value)
    return int(decided.sum())


def test_doubles_printed_as_the_engine_prints_them_on_the_edges():
    edges = [
        0.0, -0.0, 1.0, -1.5, 0.8933, 2.675, 4.35, 1e-4, 9.99e-5, 0.00012, 1e14, 1e15,
        999999999999999.0, 123456789012345.0, 12345678901234.5, 0.1 + 0.2, 1 / 3,
        math.inf, -math.inf, math.nan, None, 5e-324, 1.7976931348623157e308,
    ]  # fmt: skip
    found = native.double_texts(pa.array(edges, pa.float64()))
    assert found is not None
    sure = dict(zip(map(repr, edges), found[1].tolist(), strict=True))
    for printed in ("0.0", "-0.0", "0.8933", "2.675", "0.0001", "0.00012", "999999999999999.0"):
        assert sure[printed], printed
    for engine_s in ("9.99e-05", "1000000000000000.0", "0.30000000000000004", "inf", "nan"):
        assert not sure[engine_s], engine_s
    assert _same_double_texts(edges) == 13


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.tuples(st.floats(-1e6, 1e6), st.integers(0, 10)).map(lambda p: round(*p)),
            st.tuples(st.integers(-(10**15), 10**15), st.integers(0, 19)).map(
                lambda p: p[0] / 10 ** p[1]
            ),
            st.none(),
        ),
        min_size=1,
        max_size=50,
    )
)
def test_random_doubles_printed_as_the_engine_prints_them(values):
    _same_double_texts(values)


URLS = [
    "https://www.a.com:8080/x/y", "http://user@Host:1/", "//cdn.example/x", "https://a.com",
    "website_6", "a.com/path", "/rooted", "", "/", "//", "///x", "x://", "x:/y", "mailto:a@b",
    "https:/one-slash", "ftp://h/a/b/c/d", ":/", "a:b//c", "https://[::1]:80/x",
]  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="ab:/@.", max_size=12),
            st.sampled_from(URLS),
            st.none(),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_url_authorities_as_arrows_split_finds_them(urls):
    from advertisex.kernels.enrich import _authorities, site_host

    array = pa.array(urls + URLS, pa.string())
    found = native.url_authorities(array)
    assert found is not None
    expected = _authorities(array).to_pylist()
    for url, got, want in zip(array.to_pylist(), found.to_pylist(), expected, strict=True):
        if url is not None:
            assert got == want, url
    helped = site_host(array).to_pylist()
    from tests.native_helpers import helpers_missing

    with helpers_missing():
        assert site_host(array).to_pylist() == helped
