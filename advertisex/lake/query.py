"""Read-only SQL over the lake with DuckDB.

DuckDB's own Iceberg extension downloads at run time, which this project cannot rely
on, so pyiceberg plans each table's current snapshot and DuckDB reads the listed
Parquet files directly — on object storage too, through PyArrow's filesystem
(``storage.duckdb_location``). Tables appear under their usual names (``curated.impressions``,
``ops.batches``): each namespace is a DuckDB schema holding one view per table.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from advertisex.errors import ReadOnlyQueryError, UserInputError
from advertisex.lake.storage import duckdb_location
from advertisex.lake.tables import Lake
from advertisex.model.schemas import TABLES

# Statement types a query may contain; anything else could change state.
_READ_ONLY = {"SELECT", "EXPLAIN"}


class QueryEngine:
    def __init__(self, lake: Lake, tables: tuple[str, ...] | None = None) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        for name in tables or tuple(TABLES):
            self._register(lake, name)
        if tables is None:  # a general query also sees unprocessed landing files as raw.*
            from advertisex.lake.raw import register_raw_views

            register_raw_views(self.con, lake)

    def _register(self, lake: Lake, name: str) -> None:
        namespace, table = name.split(".")
        self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
        # Local paths, or object-store URLs DuckDB reads through PyArrow's filesystem.
        files = [duckdb_location(self.con, f, lake.settings.scale) for f in lake.data_files(name)]
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            self.con.execute(
                f'CREATE VIEW "{namespace}"."{table}" AS '
                f"SELECT * FROM read_parquet([{listing}], union_by_name = true, hive_partitioning = false)"
            )
        else:
            empty = TABLES[name].schema.empty_table()
            self.con.register(f"__empty_{namespace}_{table}", empty)
            self.con.execute(
                f'CREATE VIEW "{namespace}"."{table}" AS SELECT * FROM "__empty_{namespace}_{table}"'
            )

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run read-only SQL; refuse statements that would write, with a clear message."""
        import duckdb

        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as error:
            raise UserInputError(
                f"SQL does not parse: {_first_line(error)}", hint="check the SQL syntax"
            ) from error
        if not statements:
            raise UserInputError("no SQL statement given", hint='try: advertisex query "select 1"')
        for statement in statements:
            kind = str(statement.type).rsplit(".", 1)[-1].upper()
            kind = (
                "EXPLAIN ANALYZE"
                if kind == "EXPLAIN" and "ANALYZE" in statement.query.upper().split()[:3]
                else kind
            )
            if kind not in _READ_ONLY:
                raise ReadOnlyQueryError(
                    f"refused: a {kind} statement would change data; queries are read-only",
                    hint="use SELECT (tables: " + ", ".join(TABLES) + ")",
                )
        try:
            result = None
            for statement in statements[:-1]:
                self.con.execute(statement)
            result = self.con.sql(statements[-1].query, params=params)
            if result is None:
                return pa.table({})
            return result.to_arrow_table()
        except duckdb.Error as error:
            raise UserInputError(
                f"query failed: {_first_line(error)}", hint="tables: " + ", ".join(TABLES)
            ) from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
