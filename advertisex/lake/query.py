"""Read-only SQL over the lake with DuckDB, confined to the lake's own files.

DuckDB's own Iceberg extension downloads at run time, which this project cannot rely
on, so pyiceberg plans each table's current snapshot and DuckDB reads the listed
Parquet files directly — on object storage too, through PyArrow's filesystem
(``storage.duckdb_location``). Tables appear under their usual names (``curated.impressions``,
``ops.batches``): each namespace is a DuckDB schema holding one view per table.

A query is text from whoever can reach the CLI or an HTTP query path, so two locks
hold it inside the lake, each enough on its own for most tricks:

- DuckDB's own parser decides what a statement is (``extract_statements``): only
  ``SELECT`` runs (and ``EXPLAIN`` of one — its inner statement is parsed again, so
  ``explain /* … */ analyze copy …`` is a ``COPY``). Comments, case and multi-statement
  text cannot fool a parser the way they fool a look at the first words.
- The connection is sandboxed before any user text reaches it: external access off,
  the only readable files those the views read (``allowed_paths``), no extension
  installed or loaded, no Python-variable scans, and the configuration locked so no
  statement can undo it. ``read_text('/etc/passwd')``, ``COPY … TO``, ``ATTACH``,
  ``INSTALL`` and ``CREATE SECRET`` fail with DuckDB's permission error.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from advertisex.errors import ReadOnlyQueryError, UserInputError
from advertisex.lake.tables import Lake
from advertisex.model.schemas import TABLES
from advertisex.util.storage import duckdb_location

# What makes the connection a sandbox, applied in this order; lock_configuration last,
# so that no later statement can set any of them back.
_SANDBOX = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET python_enable_replacements = false",  # no scans of Python variables by name
    "SET enable_external_access = false",  # files, ATTACH, COPY, INSTALL/LOAD, secrets
    "SET lock_configuration = true",
)
# Tokens between EXPLAIN and the statement it explains.
_EXPLAIN_OPTIONS = {"ANALYZE", "ANALYSE", "VERBOSE"}


class QueryEngine:
    def __init__(self, lake: Lake, tables: tuple[str, ...] | None = None) -> None:
        import duckdb

        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")  # servers log stdout
        readable: list[str] = []
        for name in tables or tuple(TABLES):
            readable += self._register(lake, name)
        if tables is None:  # a general query also sees unprocessed landing files as raw.*
            from advertisex.lake.raw import register_raw_views

            readable += register_raw_views(self.con, lake)
        sandbox(self.con, readable)

    def _register(self, lake: Lake, name: str) -> list[str]:
        """One view over table ``name``'s current data files; returns those files."""
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
        return files

    def interrupt(self) -> None:
        """Stop the statement running on this engine (from another thread); it fails."""
        self.con.interrupt()

    def query(
        self, sql: str, params: list[Any] | None = None, *, limit: int | None = None
    ) -> pa.Table:
        """Run read-only SQL; the last statement's rows are the answer (at most ``limit``
        of them: the rest is never read).

        >>> engine.query("select 1 as a; select 2 as b").to_pylist()  # doctest: +SKIP
        [{'b': 2}]
        """
        import duckdb

        statements = read_only_statements(self.con, sql)
        try:
            for statement in statements[:-1]:  # run for their errors; their rows are not kept
                self.con.execute(statement.query)
                self.con.complete()
            result = self.con.sql(statements[-1].query, params=params)
            if result is None:
                return pa.table({})
            return result.to_arrow_table() if limit is None else _first_rows(result, limit)
        except duckdb.PermissionException as error:
            raise ReadOnlyQueryError(
                f"refused: {_first_line(error)}",
                hint="queries read the lake's tables only: " + ", ".join(TABLES),
            ) from error
        except duckdb.Error as error:
            raise UserInputError(
                f"query failed: {_first_line(error)}", hint="tables: " + ", ".join(TABLES)
            ) from error


def _first_rows(result: Any, limit: int) -> pa.Table:
    """At most ``limit`` rows of a DuckDB relation, fetched batch by batch."""
    reader = result.to_arrow_reader(min(max(limit, 1), 100_000))
    batches, rows = [], 0
    try:
        for batch in reader:
            batches.append(batch.slice(0, limit - rows))
            rows += batches[-1].num_rows
            if rows >= limit:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(batches, schema=reader.schema)


def sandbox(con: Any, readable: list[str]) -> None:
    """Confine ``con`` to reading the files ``readable``, for good (see the module doc)."""
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in readable)
    con.execute(f"SET allowed_paths = [{listing}]")
    for setting in _SANDBOX:
        con.execute(setting)


def read_only_statements(con: Any, sql: str) -> list[Any]:
    """The statements of ``sql`` as DuckDB parses them; refused unless every one only reads."""
    import duckdb

    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise UserInputError(
            f"SQL does not parse: {_first_line(error)}", hint="check the SQL syntax"
        ) from error
    if not statements:
        raise UserInputError("no SQL statement given", hint='try: advertisex query "select 1"')
    for statement in statements:
        kind = _kind(con, statement)
        if kind != "SELECT":
            raise ReadOnlyQueryError(
                f"refused: {_article(kind)} {kind} statement; queries are read-only",
                hint="use SELECT (tables: " + ", ".join(TABLES) + ")",
            )
    return statements


def _kind(con: Any, statement: Any) -> str:
    """``SELECT``, or what else the statement is; an EXPLAIN is what it explains."""
    kind = str(statement.type).rsplit(".", 1)[-1].upper()
    if kind != "EXPLAIN":
        return kind
    # Every reading of what follows EXPLAIN that parses as one statement must be a SELECT;
    # none at all and the EXPLAIN is refused as it is.
    kinds = set()
    for inner in _explained(statement.query):
        try:
            parsed = con.extract_statements(inner)
        except Exception:
            continue
        if len(parsed) == 1:
            kinds.add(_kind(con, parsed[0]))
    return "SELECT" if kinds == {"SELECT"} else min(kinds - {"SELECT"}, default="EXPLAIN")


def _explained(text: str) -> list[str]:
    """What an ``EXPLAIN [ANALYZE] [(options)] …`` may explain, by DuckDB's tokenizer: the text
    after the options, or from a parenthesised group on (``explain (select 1) union …``)."""
    import duckdb

    comment, operator, keyword = (
        duckdb.token_type.comment,
        duckdb.token_type.operator,
        duckdb.token_type.keyword,
    )
    tokens = duckdb.tokenize(text)
    ends = [position for position, _ in tokens[1:]] + [len(text)]
    words = [
        (position, kind, text[position:end].strip())
        for (position, kind), end in zip(tokens, ends, strict=True)
        if kind != comment
    ]
    depth, candidates = 0, []
    for position, kind, word in words[1:]:  # words[0] is EXPLAIN itself
        if kind == operator and ("(" in word or ")" in word):
            if depth == 0:
                candidates.append(text[position:])
            depth += word.count("(") - word.count(")")
        elif depth == 0 and not (kind == keyword and word.upper() in _EXPLAIN_OPTIONS):
            candidates.append(text[position:])
            break
    return candidates


def _article(kind: str) -> str:
    return "an" if kind[:1] in "AEIOU" else "a"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
