"""``advertisex query`` of several statements: each one's answer, or a clear refusal."""

from __future__ import annotations

import pytest


def test_each_statement_of_a_query_is_answered_in_turn(cli, open_lake, tmp_path):
    """``select 1; select 2`` showed the last statement's rows alone, as if the first had
    not been asked: a table for each, as psql and DuckDB's shell print them."""
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    sql = "select 1 as first; select 'two' as second, 2 as n; select 3 as third where false"
    code, out, err = cli(data, "query", sql, COLUMNS="80")
    assert (code, err) == (0, "")
    first, second, third = out.split("\n\n")
    assert "┃ first ┃" in first and "│     1 │" in first
    assert "┃ second ┃ n ┃" in second and "│ two    │ 2 │" in second
    assert third == "no rows (columns: third)\n"
    code, out, err = cli(data, "query", "select * from range(5); select 7 as n", "--max-rows", "2")
    assert code == 0 and "│ 7 │" in out and "the first 2 rows are shown" in err


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_several_statements_for_one_json_or_csv_answer_are_refused_before_any_runs(
    cli, open_lake, tmp_path, fmt
):
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    code, out, err = cli(data, "query", "select 1 as a; select error('ran')", "--format", fmt)
    assert code == 2 and out == "" and "ran" not in err and "Traceback" not in err
    assert err.startswith(
        f"error: --format {fmt} prints the rows of one statement, and the SQL holds 2\n"
    )
    assert "run each as its own advertisex query" in err
    code, out, err = cli(data, "query", "select 1 as a; -- and a comment", "--format", fmt)
    assert code == 0 and err == "" and "a" in out


def test_a_failing_statement_after_an_answered_one_is_an_error_line(cli, open_lake, tmp_path):
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    code, out, err = cli(data, "query", "select 1 as a; select nope")
    assert code == 2 and "┃ a ┃" in out
    assert err.startswith("error: query failed: Binder Error") and "Traceback" not in err


WIDE_SQL = "select " + ", ".join(f"range * {i} + 1000 as column_{i:02d}" for i in range(30))


@pytest.mark.parametrize("width", [80, 100])
def test_a_result_too_wide_keeps_its_first_and_last_columns_and_says_how_many_are_hidden(
    cli, open_lake, tmp_path, width
):
    """``select * from curated.impressions limit 20`` (≈ 30 columns) printed 20 blocks of
    30 lines below ≈ 300 columns. As DuckDB's shell: the first and last columns that fit,
    a ``…`` column for those between, and one line on stderr saying how many it hides."""
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    code, out, err = cli(data, "query", WIDE_SQL + " from range(3)", COLUMNS=str(width))
    lines = out.splitlines()
    assert code == 0 and "one record per block" not in out and len(lines) == 7
    assert max(len(line) for line in lines) <= width
    headers = [cell.strip() for cell in lines[1].strip("┃").split("┃")]
    marker = headers.index("…")
    shown = headers[:marker] + headers[marker + 1 :]
    assert headers[0] == "column_00" and headers[-1] == "column_29"
    assert shown == [f"column_{i:02d}" for i in range(30) if f"column_{i:02d}" in shown]
    assert abs(2 * marker - len(shown)) <= 1  # as many of the first as of the last
    last_row = [cell.strip() for cell in lines[5].strip("│").split("│")]
    assert last_row[marker] == "…" and last_row[-1] == f"{1000 + 2 * 29:,}"  # whole
    hidden = 30 - len(shown)
    assert err == (
        f"{hidden} columns hidden at …: --format json|csv shows them, or name fewer columns\n"
    )
    code, out, err = cli(data, "query", WIDE_SQL + " from range(3)", "--format", "csv")
    assert (code, err) == (0, "") and out.splitlines()[0].count(",") == 29


def test_a_result_whose_first_column_alone_is_too_wide_is_one_record_per_block(
    cli, open_lake, tmp_path
):
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    sql = "select repeat('x', 36) as first, 1 as second, 2 as third"
    code, out, err = cli(data, "query", sql, COLUMNS="40")
    assert (code, err) == (0, "") and "x" * 36 in out and "┃" not in out
    code, out, err = cli(data, "query", "select 1 as a, repeat('x', 60) as b", COLUMNS="40")
    assert code == 0 and "┃ a ┃ … ┃" in out
    assert err == "1 column hidden at …: --format json|csv shows it, or name fewer columns\n"
