"""The query sandbox's escape corpus (tests/hostile.py) through ``POST /api/v1/query``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import assert_confined, escape_places, escape_queries

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~70 queries, an engine each
CSV_SAMPLE = (
    "select * from read_text('{secret}')",
    "explain /* c */ analyze copy (select 42) to '{target}'",
)


def test_every_escape_is_refused_over_http(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any], tmp_path: Path
) -> None:
    data_dir = lake_copy()
    client = make_client(data_dir)
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [
        {"a": 1}
    ]  # every table exists before the catalog is fingerprinted
    places = escape_places(tmp_path / "outside", data_dir)
    for sql in escape_queries(places):
        answer = client.post("/api/v1/query", json={"sql": sql})
        assert answer.status_code == 400, f"{sql!r} was answered: {answer.text}"
        assert answer.json()["code"] in ("read_only", "bad_input"), sql
        assert_confined(answer.text, places)
    for template in CSV_SAMPLE:  # the CSV answer runs the same call; one of each kind
        csv = client.post(
            "/api/v1/query?format=csv", json={"sql": template.format(**places.fields())}
        )
        assert csv.status_code == 400
        assert_confined(csv.text, places)
