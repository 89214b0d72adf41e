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
