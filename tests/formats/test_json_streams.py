"""One stream of JSON objects, framed any accepted way, is the same records over HTTP and
from a file: the collector and batch ingest share formats.jsonfmt's splitter."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advertisex.collector.app import create_app
from advertisex.collector.service import Collector
from advertisex.config import load_settings
from advertisex.formats.decode import decoder_for
from advertisex.landing.zone import Segment

FIREHOSE = "Firehose_20150804.PutRecordBatch"


class Intake:
    """The collector's ASGI app in process; what it would append to landing segments is kept."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = load_settings(data_dir=data_dir)
        self.collector = Collector(self.settings)
        self.stored: list[bytes] = []

        async def store(source: str, fmt: str, data: bytes) -> None:
            assert (source, fmt) == ("impressions", "ndjson")
            self.stored.append(data)

        self.collector.store = store  # type: ignore[method-assign]
        self.collector.start()
        self.loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=create_app(self.settings, self.collector))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://collector")

    def send(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """POST ``body``; the bytes it landed (refusals fail the test)."""
        self.stored.clear()
        response = self.loop.run_until_complete(
            self.client.post(path, content=body, headers=headers)
        )
        assert response.status_code == 200, response.text
        return b"".join(self.stored)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.collector.stop()
        self.loop.close()


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    running = Intake(tmp_path_factory.mktemp("intake") / "data")
    yield running
    running.close()


def records(data: bytes, name: str) -> list[Any]:
    """What the processor frames out of ``data`` landed as ``name`` (a segment or a file)."""
    frame = decoder_for(Segment("impressions", name, len(data)))(data)
    assert frame.column("frame_error").null_count == frame.num_rows
    return [orjson.loads(raw) for raw in frame.column("raw").to_pylist()]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
objects = st.lists(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4), min_size=1, max_size=6
)
# Between objects written back to back: nothing, JSON whitespace, newlines.
separators = st.sampled_from(["", " ", "\t", "\n", "\r\n", " \n  ", "\n\n"])


@st.composite
def framings(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], bytes, list[bytes]]:
    """(way, objects, the file's bytes, the HTTP bodies sending the same stream)."""
    items = draw(objects)
    way = draw(st.sampled_from(["ndjson", "array", "concatenated"]))
    encoded = [orjson.dumps(item) for item in items]
    if way == "ndjson":
        newline = draw(st.sampled_from([b"\n", b"\r\n"]))
        lines = [line + newline + draw(st.sampled_from([b"", newline])) for line in encoded]
        stream = b"".join(lines)
        return way, items, stream, [stream]
    if way == "array":
        stream = b"[" + draw(separators).encode().join(e + b"," for e in encoded)[:-1] + b"]"
        return way, items, stream, [stream]
    pretty = [
        orjson.dumps(item, option=orjson.OPT_INDENT_2) if draw(st.booleans()) else e
        for item, e in zip(items, encoded, strict=True)
    ]
    pieces = [p + draw(separators).encode() for p in pretty]
    cuts = sorted(draw(st.sets(st.integers(1, len(pieces) - 1))) if len(pieces) > 1 else [])
    bounds = [0, *cuts, len(pieces)]
    records = [b"".join(pieces[a:b]) for a, b in itertools.pairwise(bounds)]
    return way, items, b"".join(pieces), records


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(framing=framings())
def test_a_stream_of_objects_is_the_same_records_over_http_and_from_a_file(
    intake: Intake, framing: tuple[str, list[dict[str, Any]], bytes, list[bytes]]
) -> None:
    way, items, stream, bodies = framing
    assert records(stream, "impressions/2026-01-01/00/drop.json") == items
    if way == "concatenated":  # Firehose records: objects back to back in each record's Data
        batch = {
            "DeliveryStreamName": "AdvertiseX-dev-impressions",
            "Records": [{"Data": base64.b64encode(body).decode()} for body in bodies],
        }
        landed = intake.send(
            "/",
            orjson.dumps(batch),
            {"content-type": "application/x-amz-json-1.1", "x-amz-target": FIREHOSE},
        )
    else:
        content_type = "application/x-ndjson" if way == "ndjson" else "application/json"
        landed = intake.send("/v1/impressions", bodies[0], {"content-type": content_type})
    assert records(landed, "impressions/2026-01-01/00/segment.ndjson") == items


IMPRESSION = (
    '{{"timestamp":"2026-01-01T00:0{n}:00Z","ad_creative_id":"c","user_id":"u{n}","website":"w"}}'
)


def test_objects_separated_by_a_space_in_a_file_are_two_records(ax, tmp_path: Path) -> None:
    # Was one unsplit record quarantined as json_invalid: only "}{" triggered the split.
    drop = tmp_path / "drop.ndjson"
    drop.write_text(IMPRESSION.format(n=1) + " " + IMPRESSION.format(n=2) + "\n")
    ax.ingest([str(drop)])
    account = ax.process().accounts["impressions"]
    assert (account.records_in, account.accepted, account.quarantined) == (2, 2, 0)


def test_objects_with_text_beyond_ascii_split_where_they_end() -> None:
    from advertisex.formats.jsonfmt import split_objects

    # orjson counts characters, not bytes: the split must not cut inside a character.
    assert split_objects('{"a":"ééé"} {"b":"😀"}{"c":1}'.encode()) == [
        '{"a":"ééé"}'.encode(),
        '{"b":"😀"}'.encode(),
        b'{"c":1}',
    ]


@pytest.mark.parametrize("end", [b"", b"\n"], ids=["no-line-break", "one-line"])
def test_many_objects_back_to_back_split_in_one_pass(end: bytes) -> None:
    from advertisex.formats.jsonfmt import split_objects

    # Each object was parsed against all the rest of its line (or of the data, with no
    # line break): 200,000 of them took hours (1.4 million fit in a Firehose request).
    data = b'{"a":1}' * 200_000 + end
    started = time.perf_counter()
    assert len(split_objects(data)) == 200_000
    assert time.perf_counter() - started < 30  # ≈ 2 s; quadratic, it was hours


def test_a_split_stops_past_its_limit() -> None:
    from advertisex.errors import FramingError
    from advertisex.formats.jsonfmt import split_objects

    assert len(split_objects(b"{}" * 10, limit=10)) == 10
    with pytest.raises(FramingError) as refused:
        split_objects(b"{}" * 11, limit=10)
    assert (refused.value.code, refused.value.status) == ("too_many_records", 413)
