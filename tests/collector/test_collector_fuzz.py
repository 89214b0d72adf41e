"""Schemathesis against a started collector, on its own OpenAPI document (Firehose included):
every answer is documented (status, content type, body schema) and none is a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_helpers import ServerProcess
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.collector.fuzzing import fuzz

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    server = ServerProcess(data_dir, ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="0.2").start()
    yield server
    server.stop()


def test_every_answer_is_documented_and_none_is_a_server_error(collector: ServerProcess) -> None:
    """Each operation: six generated requests (valid and not), every check must hold.

    (Driven here rather than with schemathesis's pytest plugin, whose lazy schemas do not
    run on this pytest.)"""
    report = fuzz(f"{collector.url}/openapi.json", max_examples=6, checks=CHECKS)
    assert report.failures == [], "\n\n".join(report.failures[:5])
    assert report.server_errors == 0
    assert len(report.requests) >= 10, report.requests  # every operation was exercised


def test_the_document_is_valid_openapi(collector: ServerProcess, tmp_path: Path) -> None:
    import httpx
    from openapi_spec_validator import validate

    document = httpx.get(f"{collector.url}/openapi.json", timeout=30).json()
    validate(document)
    impressions = document["paths"]["/v1/impressions"]["post"]["requestBody"]["content"]
    assert impressions["application/x-ndjson"]["schema"]["items"] == {
        "$ref": "#/components/schemas/Impression"
    }
    required = document["components"]["schemas"]["Impression"]["required"]
    assert required == ["timestamp", "ad_creative_id", "user_id", "website"]
