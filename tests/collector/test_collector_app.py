"""The ASGI app in process: garbage never yields a 5xx; refusals are JSON with stable codes."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from collector_helpers import InProcess
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("app") / "data", segment_max_age_seconds=0.2)
    yield running
    running.close()


PATHS = ["/v1/impressions", "/v1/clicks", "/v1/bids", "/", "/v2/nothing"]
TYPES = [
    "application/x-ndjson",
    "application/json",
    "text/csv",
    "application/avro",
    "application/x-amz-json-1.1",
    "text/plain",
    "",
    "multipart/form-data; boundary=x",
]
TARGETS = [
    "Firehose_20150804.PutRecord",
    "Firehose_20150804.PutRecordBatch",
    "Firehose_20150804.Nope",
    "",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.lists(json_values, max_size=6).map(lambda xs: b"\n".join(orjson.dumps(x) for x in xs)),
    st.text(max_size=512).map(str.encode),
    st.binary(max_size=512).map(lambda b: b"Obj\x01" + b),
    st.binary(max_size=512).map(lambda b: gzip.compress(b)[: max(1, len(b) // 2)]),
    json_values.map(
        lambda v: orjson.dumps({"DeliveryStreamName": "AdvertiseX-dev-impressions", "Records": v})
    ),
    st.lists(st.binary(max_size=64), max_size=4).map(
        lambda datas: orjson.dumps(
            {
                "DeliveryStreamName": "AdvertiseX-dev-clicks",
                "Records": [{"Data": base64.b64encode(d).decode()} for d in datas],
                "Record": {"Data": base64.b64encode(b"".join(datas)).decode()},
            }
        )
    ),
)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(PATHS),
    body=bodies,
    content_type=st.sampled_from(TYPES),
    target=st.sampled_from(TARGETS),
    gzipped=st.booleans(),
)
def test_garbage_never_yields_a_server_error(
    app: InProcess, path: str, body: bytes, content_type: str, target: str, gzipped: bool
) -> None:
    headers = {"content-type": content_type, "x-amz-target": target}
    if gzipped:
        headers["content-encoding"] = "gzip"
    response = app.post(path, body, headers)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        if path == "/" and response.status_code != 404:
            assert set(error) == {"__type", "message"}  # AWS's error shape
        else:
            assert error["code"] and error["message"]


def test_disk_nearly_full_answers_503_with_retry_after(tmp_path: Path) -> None:
    full = InProcess(tmp_path / "data", min_free_bytes=1 << 62)
    try:
        response = full.post(
            "/v1/impressions", b'{"a":1}\n', {"content-type": "application/x-ndjson"}
        )
        assert response.status_code == 503
        assert response.json()["code"] == "disk_full"
        assert int(response.headers["retry-after"]) > 0
        firehose = full.post(
            "/",
            orjson.dumps(
                {"DeliveryStreamName": "AdvertiseX-dev-impressions", "Record": {"Data": "e30="}}
            ),
            {
                "x-amz-target": "Firehose_20150804.PutRecord",
                "content-type": "application/x-amz-json-1.1",
            },
        )
        assert (
            firehose.status_code == 503
            and firehose.json()["__type"] == "ServiceUnavailableException"
        )
    finally:
        full.close()
    assert not list((tmp_path / "data" / "landing").glob("impressions/**/*.ndjson"))


def test_docs_and_openapi_are_served(app: InProcess) -> None:
    spec = app.loop.run_until_complete(app.client.get("/openapi.json")).json()
    assert {"/v1/impressions", "/v1/clicks", "/v1/bids", "/"} <= set(spec["paths"])
    page = app.loop.run_until_complete(app.client.get("/docs"))
    assert page.status_code == 200 and "/v1/impressions" in page.text and "<script" not in page.text
