"""A console or API query's answer, worker and budget: its rows encoded as JSON once, in the
worker that measured them against the byte cap; every error the worker raises answered with
a stable ``code`` and a readable message; and one memory budget for all queries at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advertisex.util import jsonutil

pytestmark = pytest.mark.integration


def test_an_answers_rows_are_encoded_once_in_the_worker_the_cap_exact(
    lake_template: Path, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker encoded every row as JSON to measure the answer against
    ``query_max_bytes``, threw that away, and the server encoded the rows again (~40-50 ms
    of the server's CPU for 5,000 rows or 32 MiB). The server now writes the worker's bytes."""
    from advertisex.console.query import QueryResult

    def encoded_again(self: QueryResult) -> list[dict[str, Any]]:
        raise AssertionError("the server made the rows again")

    monkeypatch.setattr(QueryResult, "rows", encoded_again)  # in this process, the server's
    client = make_client(lake_template, console={"query_max_bytes": 1 << 20})
    sql = "select range id, repeat(chr(1), 1000) || range txt, {'k': range} m from range(2000)"
    answer = client.post("/api/v1/query", json={"sql": sql})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert answer.content == jsonutil.dumps(body)  # the JSON the server wrote before, exactly
    rows = body["rows"]
    assert body["truncated"] is True and body["row_count"] == len(rows) > 100
    assert rows[7] == {"id": 7, "txt": "\x01" * 1000 + "7", "m": {"k": 7}}
    after = len(rows)  # the cap is exact: these rows fit, one more would not
    following = {"id": after, "txt": "\x01" * 1000 + str(after), "m": {"k": after}}
    assert len(jsonutil.dumps(rows)) - 1 <= 1 << 20 < len(jsonutil.dumps([*rows, following])) - 1
    whole = client.post("/api/v1/query", json={"sql": "select 1 as a, [2, 3] as b"})
    assert whole.content.startswith(b'{"columns":["a","b"],"rows":[{"a":1,"b":[2,3]}],')
