"""Read-only SQL over the lake with DuckDB, confined to the lake's own files.

DuckDB's own Iceberg extension downloads at run time, which this project cannot rely
on, so each table's current snapshot is listed (``Lake.data_files_of``: ``lake.listing``
on a local SQLite lake, pyiceberg's plan elsewhere) and DuckDB reads the listed Parquet
files directly — on object storage too, through PyArrow's filesystem
(``storage.duckdb_location``). Tables appear under their usual names (``curated.impressions``,
``ops.batches``): each namespace is a DuckDB schema holding one view per table. Only the
tables a statement names get a view (``select 1`` lists no table, a question about one
mart lists that mart's files however large the lake is), read from DuckDB's parse tree
(``json_serialize_sql``) on the very connection that then gets the views and the sandbox:
one DuckDB database per question, since opening one costs more than a small query. A
statement whose tables the parser cannot tell, or that reads files by name, sees every
table.

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

import functools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from advertisex.errors import (
    QueryTooLargeError,
    ReadOnlyQueryError,
    SeveralStatementsError,
    UserInputError,
)
from advertisex.util.engine import engine_module
from advertisex.util.storage import duckdb_location

if TYPE_CHECKING:  # Arrow and the schemas load only when a statement needs them
    from pathlib import Path

    import pyarrow as pa

    from advertisex.config import ScaleSettings
    from advertisex.lake.tables import Lake

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
# The parts of a table's name in a serialized parse tree, outermost first.
_QUALIFIED = ("catalog_name", "schema_name", "table_name")
# Tokens between EXPLAIN and the statement it explains.
_EXPLAIN_OPTIONS = {"ANALYZE", "ANALYSE", "VERBOSE"}


class QueryEngine:
    """Read-only SQL over ``lake``: views of the tables each statement names (or of
    ``tables`` only, when given) on a sandboxed in-memory DuckDB connection; at most
    ``memory_bytes`` of memory and as much spilled to disk, when given (DuckDB's default:
    80% of the machine's memory, then the spill folder's disk)."""

    def __init__(
        self, lake: Lake, tables: tuple[str, ...] | None = None, memory_bytes: int | None = None
    ) -> None:
        self.lake = lake
        self.tables = tables
        self.memory_bytes = memory_bytes
        self._con: Any = None
        self._opened: frozenset[str] = frozenset()
        self._interrupted = False
        self.cut_at_bytes = False

    def connection(self, names: list[str], fresh: Any = None) -> Any:
        """A sandboxed connection with views of at least ``names`` (``raw`` for the raw.*
        views). Views must exist before the sandbox locks, so a statement naming a table
        the current connection lacks gets a new connection with every view so far
        (``fresh``, a connection nothing was set on yet, when given: opening one costs
        more than a small query)."""
        wanted = frozenset(names) | self._opened
        if self._con is None or wanted != self._opened:
            con = fresh or engine_module().connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET enable_progress_bar = false")  # servers log stdout
            readable: list[str] = []
            tables = sorted(wanted - {"raw"})
            for name, files in self.lake.data_files_of(tables).items():
                readable += register_view(con, name, files, self.lake.settings.scale)
            if "raw" in wanted:  # unprocessed landing files as raw.*
                from advertisex.lake.raw import register_raw_views

                readable += register_raw_views(con, self.lake)
            _bound_spill(con, self.lake.settings.spill_dir, self.memory_bytes)
            sandbox(con, readable)
            self._con, self._opened = con, wanted
        return self._con

    @property
    def con(self) -> Any:
        """The connection as it stands: views of ``tables`` and of every table named so far."""
        return self.connection(list(self.tables or ()))

    def named_tables(self, sql: str, con: Any = None) -> list[str]:
        """The lake tables ``sql`` reads (``raw`` for any raw.* view), by DuckDB's parser
        (on ``con`` if given); every table when the parser cannot tell (a statement
        ``json_serialize_sql`` does not take, such as PIVOT)."""
        if self.tables is not None:
            return list(self.tables)
        names = _written_names(sql, con)
        if names is None:
            return [*_table_names(), "raw"]
        if not names:
            return []
        from advertisex.model.schemas import TABLES

        found = []
        for name in names:
            parts = name.lower().split(".")
            if ".".join(parts[-2:]) in TABLES:
                found.append(".".join(parts[-2:]))
            elif len(parts) >= 2 and parts[-2] == "raw":
                found.append("raw")
        return found

    def interrupt(self) -> None:
        """Stop the statement running on this engine (from another thread); it fails, and
        so does one that had not started yet."""
        self._interrupted = True
        if self._con is not None:
            self._con.interrupt()

    def query(
        self,
        sql: str,
        params: list[Any] | None = None,
        *,
        limit: int | None = None,
        max_bytes: int | None = None,
    ) -> pa.Table:
        """Run one read-only SQL statement; its rows are the answer (at most ``limit`` of
        them, and with ``limit`` as many as fit in ``max_bytes``: the rest is never read;
        :attr:`cut_at_bytes` says whether the bytes cut it). Several statements are refused
        before any runs (:meth:`each_row_parts` answers each).

        >>> engine.query("select 1 as a; select 2 as b")  # doctest: +SKIP
        SeveralStatementsError: the SQL holds 2 statements, and a query answers one; none was run
        """
        import duckdb  # noqa: F401  # con.sql: a relation, read as Arrow batch by batch

        con, statement = self._one(sql)
        result = _answered(lambda: con.sql(statement, params=params), sql)
        if limit is None:
            return _answered(result.to_arrow_table)
        table, self.cut_at_bytes = _answered(lambda: _first_rows(result, limit, max_bytes))
        return table

    def rows(self, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
        """:meth:`query` as (column names, row dicts) straight from DuckDB: the CLI's path,
        where one question should not pay for loading more than it uses (no Arrow, no
        DuckDB relational API: the statement is executed and its rows fetched)."""
        columns, parts = self.row_parts(sql)
        return columns, [row for part in parts for row in part]

    def row_parts(
        self, sql: str, rows_a_part: int = 10_000
    ) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
        """:meth:`rows`, fetched ``rows_a_part`` rows at a time as they are read: what a
        question of millions of rows holds at once is a part, not its answer."""
        con, statement = self._one(sql)
        return _row_parts(con, statement, sql, rows_a_part)

    def each_row_parts(
        self, sql: str, rows_a_part: int = 10_000
    ) -> list[Callable[[], tuple[list[str], Iterator[list[dict[str, Any]]]]]]:
        """:meth:`row_parts` of each statement of ``sql``, as psql and DuckDB's shell
        answer each: one call a statement, which runs it. Nothing runs before the first
        call (so the count can refuse first); they share one connection, so each is called
        after the rows of the one before are read, or left.

        >>> [call()[0] for call in engine.each_row_parts("select 1 a; select 2 b")]  # doctest: +SKIP
        [['a'], ['b']]
        """
        con, statements = self._prepared(sql)
        return [
            functools.partial(_row_parts, con, statement.query, sql, rows_a_part)
            for statement in statements
        ]

    def _one(self, sql: str) -> tuple[Any, str]:
        """(the connection, the statement) of read-only ``sql``, refused unless it is one
        statement: an answer of the last one's rows alone (as it was) let the caller
        believe every statement had been answered."""
        con, statements = self._prepared(sql, one=True)
        return con, statements[0].query

    def _prepared(self, sql: str, one: bool = False) -> tuple[Any, list[Any]]:
        """(the connection, the parsed statements) of read-only ``sql``, none of them run;
        with ``one``, several statements are refused (before any view is made)."""
        # One connection for all of it on a first statement: parsed on it, then given its
        # views, then sandboxed (parsing runs nothing of the statement).
        fresh = None if self._con is not None else engine_module().connect(":memory:")
        parser = self._con or fresh
        statements = read_only_statements(parser, sql)
        if one and len(statements) > 1:
            raise SeveralStatementsError(
                f"the SQL holds {len(statements)} statements, and a query answers one; "
                "none was run",
                hint="send one statement at a time, or make them one with UNION ALL BY NAME "
                "or a join",
            )
        con = self.connection(self.named_tables(sql, parser), fresh)
        if self._interrupted:
            raise UserInputError("query failed: interrupted", hint="the query was stopped")
        return con, statements


def _row_parts(
    con: Any, statement: str, sql: str, rows_a_part: int
) -> tuple[list[str], Iterator[list[dict[str, Any]]]]:
    """``statement`` run on ``con``: its column names and its rows, ``rows_a_part`` at a
    time as they are fetched (``sql``, the whole text, for the errors' words)."""
    _answered(lambda: con.execute(statement), sql)
    columns = [column[0] for column in con.description]

    def parts() -> Iterator[list[dict[str, Any]]]:
        while True:
            fetched = _answered(lambda: con.fetchmany(rows_a_part), sql)
            if not fetched:
                return
            yield [dict(zip(columns, row, strict=True)) for row in fetched]

    return columns, parts()


def _written_names(sql: str, con: Any = None) -> list[str] | None:
    """The names of the tables ``sql`` reads, as written but without quotes or alias
    (``curated.clicks``, ``raw.bids``, a CTE's ``recent``), from DuckDB's parse tree
    (``json_serialize_sql``: the parser alone, nothing of the statement runs, so ``con`` need
    not be sandboxed); None when the parser cannot tell, or the statement reads files by
    name (they may be the lake's own). An EXPLAIN names what it explains (of its readings,
    those that are no statement do not parse; one must)."""
    from advertisex.util import jsonutil

    duckdb = engine_module()
    con = con or duckdb.connect(":memory:")
    try:
        statements = con.extract_statements(sql)
        explains = [s.query for s in statements if _kind_word(s) == "EXPLAIN"]
        texts = [s.query for s in statements if _kind_word(s) != "EXPLAIN"] if explains else [sql]
        readings = [text for explain in explains for text in _explained(explain)]
        trees = [
            jsonutil.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchall()[0][0])
            for text in texts + readings
        ]
    except duckdb.Error:
        return None
    if any(tree.get("error") for tree in trees[: len(texts)]):
        return None
    understood = [tree for tree in trees if not tree.get("error")]
    if explains and len(understood) == len(texts):
        return None
    tables = [n for tree in understood for n in _nodes(tree, "BASE_TABLE")]
    if any(_nodes(understood, "TABLE_FUNCTION")) or any(
        not t["schema_name"] and ("." in t["table_name"] or "/" in t["table_name"]) for t in tables
    ):
        return None  # a file read by name (read_parquet(…), 'x.parquet'): may be a lake file
    return sorted({".".join(t[k] for k in _QUALIFIED if t.get(k)) for t in tables})


def _nodes(node: Any, kind: str) -> Iterator[dict[str, Any]]:
    """Every node of type ``kind`` (``BASE_TABLE``, ``TABLE_FUNCTION``) in a serialized parse tree."""
    if isinstance(node, dict):
        if node.get("type") == kind:
            yield node
        for value in node.values():
            yield from _nodes(value, kind)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value, kind)


def _answered(action: Any, sql: str | None = None) -> Any:
    """``action()``, DuckDB's errors turned into ours (a refusal or a bad query)."""
    duckdb = engine_module()
    try:
        return action()
    except duckdb.PermissionException as error:
        raise ReadOnlyQueryError(
            f"refused: {_first_line(error)}",
            hint="queries read the lake's tables only: " + ", ".join(_table_names()),
        ) from error
    except duckdb.OutOfMemoryException as error:
        # DuckDB's own advice (SET memory_limit …) is refused by the locked sandbox.
        raise QueryTooLargeError(
            f"the query needed more memory than it may use ({_first_line(error)})",
            hint="narrow it (a WHERE on event_time, fewer columns, a mart instead of a curated "
            "table) or raise console.query_memory_bytes",
        ) from error
    except duckdb.Error as error:
        raise _failed(error, sql) from error


def _failed(error: Exception, sql: str | None) -> UserInputError:
    """A query's error in words: DuckDB's message with its own suggestion ("Candidate
    bindings", "Did you mean"), without the echo of the statement; a table the lake does
    not have is named with the closest one it has (DuckDB's guess can only pick among the
    views of the tables the statement named)."""
    first = str(error).strip().split("\n\n")[0].splitlines() or [type(error).__name__]
    tables = "tables: " + ", ".join(_table_names())
    missing = re.search(r'Table with name "?([\w.]+?)"? does not exist', first[0])
    if missing:
        # DuckDB names the table without its namespace when the namespace exists.
        name = missing.group(1).lower()
        for written in _written_names(sql or "") or []:
            if written.lower().endswith("." + name):
                name = written
        near = _closest_table(name)
        return UserInputError(
            f"query failed: the lake has no table {name}",
            hint=(f"did you mean {near}? " if near else "") + tables + ", raw.*",
        )
    hint = tables
    if "Referenced column" in first[0]:
        hint = 'describe TABLE lists its columns (advertisex query "describe curated.clicks")'
    return UserInputError("query failed: " + " ".join(line.strip() for line in first), hint=hint)


def _closest_table(name: str) -> str | None:
    """The lake table (or raw.* view) ``name`` most likely meant: the nearest spelling in
    its namespace (any namespace when it names none or an unknown one; curated first); a
    source's name stands for its table (``raw.bids`` → ``raw.bid_requests``)."""
    import difflib

    from advertisex.lake.raw import RAW_VIEWS

    known = [*_table_names(), *(f"raw.{view}" for view in RAW_VIEWS.values())]
    namespace, _, table = name.lower().rpartition(".")
    table = RAW_VIEWS.get(table, table)
    by_table: dict[str, str] = {}
    for known_name in [t for t in known if t.startswith(namespace + ".")] or known:
        by_table.setdefault(known_name.split(".", 1)[1], known_name)
    near = difflib.get_close_matches(table, list(by_table), n=1, cutoff=0.6)
    return by_table[near[0]] if near else None


def register_view(
    con: Any, name: str, files: list[str], scale: ScaleSettings | None, schema: str | None = None
) -> list[str]:
    """View over a table's data ``files`` (local paths or object-store URLs), or an empty
    view of the shape of table ``name`` (``namespace.table``); returns the files read. The
    view is ``name`` itself, or ``schema.<table>`` (a monitor's ``recent.impressions``)."""
    namespace, table = name.split(".")
    schema = schema or namespace
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    # Local paths, or object-store URLs DuckDB reads through PyArrow's filesystem.
    located = [duckdb_location(con, f, scale) for f in files]
    if located:
        listing = ", ".join("'" + f.replace("'", "''") + "'" for f in located)
        source = f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false)"
    else:
        import duckdb  # noqa: F401  # Arrow scans: registered by DuckDB's Python layer

        from advertisex.model.schemas import TABLES

        source = f'"__empty_{schema}_{table}"'
        con.register(source.strip('"'), TABLES[name].schema.empty_table())
    con.execute(f'CREATE OR REPLACE VIEW "{schema}"."{table}" AS SELECT * FROM {source}')
    return located


def _table_names() -> list[str]:
    from advertisex.model.schemas import TABLES

    return list(TABLES)


def _first_rows(result: Any, limit: int, max_bytes: int | None = None) -> tuple[pa.Table, bool]:
    """At most ``limit`` rows of a DuckDB relation, fetched batch by batch, and as many of
    them as fit in ``max_bytes`` (whether that cut them); refused when not even one does.
    Rows were capped, their size was not: ``select repeat('x', 1000000000)`` answered a
    gigabyte, made into Python values and JSON on top."""
    import pyarrow as pa

    # Small batches, so that a few huge rows are seen before many more are fetched.
    reader = result.to_arrow_reader(min(max(limit, 1), 100_000 if max_bytes is None else 256))
    batches, rows, size, cut = [], 0, 0, False
    try:
        for batch in reader:
            batch = batch.slice(0, limit - rows)
            if max_bytes is not None and size + batch.nbytes > max_bytes:
                batch = batch.slice(0, _rows_within(batch, max_bytes - size))
                cut = True
                if rows + batch.num_rows == 0:
                    raise QueryTooLargeError(
                        f"the answer's first row alone holds more than {max_bytes:,} bytes",
                        hint="select less of it (left(text, 1000), fewer columns) or raise "
                        "console.query_max_bytes",
                    )
            batches.append(batch)
            rows += batch.num_rows
            size += batch.nbytes
            if rows >= limit or cut:
                break
    finally:
        reader.close()
    return pa.Table.from_batches(batches, schema=reader.schema), cut


def _rows_within(batch: pa.RecordBatch, max_bytes: int) -> int:
    """How many of ``batch``'s first rows fit in ``max_bytes``."""
    low, high = 0, batch.num_rows  # the first ``low`` rows fit; more than ``high`` do not
    while low < high:
        middle = (low + high + 1) // 2
        if batch.slice(0, middle).nbytes <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def _bound_spill(con: Any, spill_dir: Path, memory_bytes: int | None) -> None:
    """What outgrows memory goes to the lake's spill folder — DuckDB's default is ``.tmp`` in
    the working directory, outside the data dir, up to 90% of that disk — and, with
    ``memory_bytes``, memory and spill are that much each. DuckDB makes the folder when it
    first spills, names its files by process, and removes those of processes gone."""
    location = str(spill_dir.absolute()).replace("'", "''")
    con.execute(f"SET temp_directory = '{location}'")
    if memory_bytes is not None:
        con.execute(f"SET memory_limit = '{int(memory_bytes)}B'")
        con.execute(f"SET max_temp_directory_size = '{int(memory_bytes)}B'")


def sandbox(con: Any, readable: list[str]) -> None:
    """Confine ``con`` to reading the files ``readable``, for good (see the module doc)."""
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in readable)
    con.execute(f"SET allowed_paths = [{listing}]")
    for setting in _SANDBOX:
        con.execute(setting)


def read_only_statements(con: Any, sql: str) -> list[Any]:
    """The statements of ``sql`` as DuckDB parses them; refused unless every one only reads."""
    try:
        statements = con.extract_statements(sql)
    except engine_module().Error as error:
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
                hint="use SELECT (tables: " + ", ".join(_table_names()) + ")",
            )
    return statements


def _kind_word(statement: Any) -> str:
    """A parsed statement's type as one word: ``SELECT``, ``EXPLAIN``, ``COPY`` …"""
    return str(statement.type).rsplit(".", 1)[-1].upper()


def _kind(con: Any, statement: Any) -> str:
    """``SELECT``, or what else the statement is; an EXPLAIN is what it explains."""
    kind = _kind_word(statement)
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
    duckdb = engine_module()
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
