"""Queries are confined to the lake: the escape corpus is refused on every path, reads work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from advertisex.errors import AdvertiseXError
from tests.cli_fixtures import cli  # noqa: F401 (fixture)
from tests.hostile import (
    ESCAPE_QUERIES,
    EscapePlaces,
    assert_confined,
    escape_places,
    escape_queries,
)

IMPRESSION = (
    '{"timestamp": "2026-11-20T10:00:00Z", "ad_creative_id": "cr-1", '
    '"user_id": "u%d", "website": "w", "impression_id": "i%d"}'
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, EscapePlaces]:
    """A lake with one committed batch and one pending (raw) segment; a secret outside it."""
    import advertisex

    base = tmp_path_factory.mktemp("sandbox")
    ax = advertisex.open(data_dir=base / "data", correlation={"update_marts": False})
    lines = "\n".join(IMPRESSION % (i, i) for i in range(3)) + "\n"
    ax.landing.write_segment("impressions", lines.encode(), fsync=False)
    ax.process()
    ax.landing.write_segment("impressions", (IMPRESSION % (9, 9)).encode(), fsync=False)
    ax.query("select 1")  # every table exists before the catalog is fingerprinted
    return ax, escape_places(base / "outside", base / "data")


def test_every_escape_is_refused_by_one_engine(lake: tuple[Any, EscapePlaces]) -> None:
    """One engine takes the whole corpus: no refused statement may loosen it for the next."""
    from advertisex.lake.query import QueryEngine

    ax, places = lake
    engine = QueryEngine(ax.lake)
    for sql in escape_queries(places):
        with pytest.raises(AdvertiseXError) as refused:
            engine.query(sql)
        assert refused.value.code in ("read_only", "bad_input"), sql
        assert_confined(str(refused.value), places)
    assert engine.query("select current_setting('enable_external_access') e").to_pylist() == [
        {"e": False}
    ]


# One escape of each kind through `advertisex query` itself (the corpus runs above on
# the engine the CLI calls): a one-line refusal, no traceback, nothing leaked or written.
CLI_SAMPLE = (
    "explain /* c */ analyze copy (select 42) to '{target}'",
    "copy (select 42) to '{catalog}' (format csv, use_tmp_file false)",
    "select * from read_text('{secret}')",
    "select * from '{secret}'",
    "select 1; copy (select 42) to '{target}'",
    "set enable_external_access = true; select * from read_text('{secret}')",
    "attach '{target}' as x",
    "install httpfs",
)


def test_escapes_are_refused_through_the_cli(
    lake: tuple[Any, EscapePlaces],
    cli: Any,  # noqa: F811
) -> None:
    ax, places = lake
    assert set(CLI_SAMPLE) <= set(ESCAPE_QUERIES)
    for template in CLI_SAMPLE:
        sql = template.format(**places.fields())
        code, out, err = cli(ax.settings.data_dir, "query", sql, "--format", "json")
        assert code != 0, f"{sql!r} was answered: {out}"
        assert "Traceback" not in err and err.strip(), sql
        assert_confined(out + err, places)


def test_reads_inside_the_lake_still_work(lake: tuple[Any, EscapePlaces]) -> None:
    ax, places = lake
    assert ax.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 3}]
    assert ax.query("select count(*) n from raw.impressions").to_pylist() == [{"n": 1}]
    assert ax.query("explain analyze select count(*) from curated.impressions").num_rows
    assert ax.query("explain (select 1)").num_rows
    assert ax.query("summarize curated.impressions").num_rows
    assert ax.query("show tables").num_rows >= 0
    # The lake's own files are readable by name: they are what the views read.
    file = f"select count(*) n from read_parquet('{places.lake_file}')"
    assert ax.query(file).to_pylist()[0]["n"] >= 1


def test_several_statements_are_refused_before_any_runs(lake: tuple[Any, EscapePlaces]) -> None:
    """``ax.query("select 1 as a; select 2 as b")`` ran both and answered ``[{'b': 2}]``
    alone: the caller could not tell the first had been asked. One answer, one statement
    (``query_each_row_parts`` answers each); a trailing ``;`` or comment is no statement."""
    from advertisex.errors import SeveralStatementsError, UserInputError

    ax, _ = lake
    for ask in (ax.query, ax.query_rows, ax.query_row_parts):
        for sql in ("select 1 as a; select 2 as b", "select error('the first ran'); select 2"):
            with pytest.raises(SeveralStatementsError) as refused:
                ask(sql)
            assert isinstance(refused.value, UserInputError), sql
            assert refused.value.code == "several_statements"
            assert refused.value.message.startswith("the SQL holds 2 statements")
            assert "send one statement" in (refused.value.hint or "")
    for sql in ("select 2 as b;", "select 2 as b; -- and a comment", "/* c */ select 2 as b;;"):
        assert ax.query(sql).to_pylist() == [{"b": 2}], sql
    assert [call()[0] for call in ax.query_each_row_parts("select 1 a; select 2 b")] == [
        ["a"],
        ["b"],
    ]


def test_a_refusal_names_the_statement_the_explain_hid(lake: tuple[Any, EscapePlaces]) -> None:
    ax, places = lake
    with pytest.raises(AdvertiseXError, match="COPY statement"):
        ax.query(f"explain /* c */ analyze copy (select 42) to '{places.target}'")
    with pytest.raises(AdvertiseXError, match="ATTACH statement"):
        ax.query("select 1; attach ':memory:' as m")


def test_a_file_outside_the_lake_is_refused_by_the_sandbox_alone(
    lake: tuple[Any, EscapePlaces],
) -> None:
    """The statement check passes a SELECT; DuckDB's own permission check stops the read."""
    from advertisex.lake.query import QueryEngine

    ax, places = lake
    engine = QueryEngine(ax.lake)
    with pytest.raises(AdvertiseXError, match="refused: Permission Error"):
        engine.query(f"select * from read_text('{places.secret}')")
    assert Path(places.secret).read_text().strip()  # it exists and is readable by us


@pytest.mark.parametrize(
    ("sql", "said", "meant"),
    [
        ("select * from curated.impresions", "no table curated.impresions", "curated.impressions?"),
        ("select * from Impressions", "no table impressions", "did you mean curated.impressions?"),
        ("select * from raw.bids", "no table raw.bids", "did you mean raw.bid_requests?"),
        ("select devce_type from curated.impressions", 'bindings: "device_type"', "describe"),
    ],
)
def test_a_mistaken_name_is_answered_with_the_one_meant(
    lake: tuple[Any, EscapePlaces], sql: str, said: str, meant: str
) -> None:
    """DuckDB's own suggestion is kept; a table the statement misnamed has no view, so the
    lake names its closest table itself."""
    from advertisex.errors import UserInputError

    ax, _ = lake
    with pytest.raises(UserInputError) as failed:
        ax.query(sql)
    assert said in failed.value.message and meant in (failed.value.hint or "")
    assert "LINE 1" not in str(failed.value)  # the statement is not echoed back


def test_a_query_spills_into_the_lake_and_stops_at_its_memory(
    lake: tuple[Any, EscapePlaces], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB spilled what outgrew memory to ``.tmp`` in the working directory (outside the
    data dir, up to 90% of that disk), after taking 80% of the machine's memory: a sort from
    the console could exhaust both. Its spill is the lake's now, and with a memory budget
    the query stops at it, saying so."""
    from advertisex.errors import QueryTooLargeError
    from advertisex.lake.query import QueryEngine

    ax, _ = lake
    monkeypatch.chdir(tmp_path)
    engine = QueryEngine(ax.lake)
    spill = engine.query("select current_setting('temp_directory') t").to_pylist()[0]["t"]
    assert Path(spill) == (ax.settings.data_dir / "spill").absolute()
    bounded = QueryEngine(ax.lake, memory_bytes=64 << 20)
    with pytest.raises(QueryTooLargeError) as stopped:
        bounded.query(
            "select count(*) from (select range, random() r from range(20000000) order by r)"
        )
    assert "more memory than it may use" in stopped.value.message
    assert "console.query_memory_bytes" in str(stopped.value.hint)
    assert list(tmp_path.iterdir()) == []  # nothing in the working directory
