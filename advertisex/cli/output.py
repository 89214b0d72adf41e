"""The one place the CLI writes results: human tables by default, JSON/CSV for machines.

Core code never prints. Commands build plain data (dicts, lists of rows, Arrow tables)
and hand it here with the format the user asked for.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from advertisex.cli import plain
from advertisex.util import jsonutil
from advertisex.util.text import shown


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def literal(value: object) -> str:
    """``value`` for a message that Rich renders (:func:`print_message`): its markup
    escaped and its control characters shown (:func:`shown`), so that a path or a record
    holding ``[/]`` or ``[bold]`` prints as it is instead of failing or styling the rest."""
    from rich.markup import escape

    return escape(shown(str(value)))


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # No emoji codes: ":thumbs_up:" in a record or a path is text, never a picture.
    out = Console(stderr=stderr, highlight=False, soft_wrap=False, emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured output: don't squeeze tables into 80 columns.
        out = Console(
            stderr=stderr, highlight=False, soft_wrap=False, emoji=False, width=max(out.width, 160)
        )
    return out


def table_rows(table: Any) -> list[dict[str, Any]]:
    """Arrow table → row dicts, maps as JSON objects (not lists of pairs)."""
    return table.to_pylist(maps_as_pydicts="lossy")


def print_json(data: Any) -> None:
    sys.stdout.write(jsonutil.dumps_str(data, indent=True) + "\n")


def stream_rows(
    columns: Sequence[str], parts: Iterable[Sequence[dict[str, Any]]], fmt: Format
) -> None:
    """Rows arriving a part at a time printed as they come, as JSON or CSV — the same text
    :func:`print_rows` prints for them all at once, without holding them all."""
    out = sys.stdout
    if fmt is Format.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for part in parts:
            for r in part:
                writer.writerow([_csv_cell(r.get(c)) for c in columns])
            out.write(buffer.getvalue())
            buffer.seek(0)
            buffer.truncate()
        out.write(buffer.getvalue())
        return
    first = True
    for part in parts:
        for r in part:
            # A row as an item of the array print_json writes: its lines indented once more.
            item = jsonutil.dumps_str({c: r.get(c) for c in columns}, indent=True)
            out.write(("[\n  " if first else ",\n  ") + item.replace("\n", "\n  "))
            first = False
    out.write("[]\n" if first else "\n]\n")


@dataclass(frozen=True)
class Narrowing:
    """What a table too wide for the terminal keeps instead of becoming one block per
    record: its ``keys`` (what names a row), then as many of ``wanted`` as fit beside them,
    most wanted first, in the table's own order. A block of 18 lines per record is a
    scroll through pages for one number; a table of the usual ones is read at a glance."""

    keys: tuple[str, ...]
    wanted: tuple[str, ...]
    see_all: str = "--columns all or --format json|csv"  # what shows the columns left out


@dataclass(frozen=True)
class Folding:
    """A table too wide for the terminal that must keep every column (``config``: a value
    is read with its origin) folds ``columns`` instead, the first given up to
    :data:`FOLD_MIN_WIDTH` cells first: their values continue on the next lines of their
    cells, broken after a space, else a ``.``, ``/``, ``,`` or ``:``, else a ``_`` or ``-``."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class Eliding:
    """A table too wide for the terminal keeps its first and last columns that fit, with a
    ``…`` column for those between, as DuckDB's shell does for a wide result (``query``:
    which columns matter is the user's, not ours); a line on stderr says how many were
    hidden and ``see_all`` what shows them."""

    see_all: str = "--format json|csv shows {them}, or name fewer columns"


FOLD_MIN_WIDTH = 20  # a folded column narrower than this reads as a column of fragments
ELIDED = plain.ELIDED_CELL  # the header and cells of the column standing for the hidden ones


def print_rows(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
    empty: str | None = None,
    narrowing: Narrowing | Folding | Eliding | None = None,
) -> None:
    """Print rows as a rich table, a JSON array of row objects, or CSV with a header;
    ``empty`` is what a person is told instead of a table when there is no row;
    ``narrowing`` what a table too wide for the terminal keeps or folds (JSON and CSV
    keep all)."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if fmt is Format.table and not rows and empty is not None:
        print_message(empty)
        return
    if fmt is Format.json:
        print_json([{c: r.get(c) for c in columns} for r in rows])
    elif fmt is Format.csv:
        stream_rows(columns, [rows], fmt)
    else:
        print_table(rows, columns, title, narrowing)


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    title: str | None,
    narrowing: Narrowing | Folding | Eliding | None = None,
) -> None:
    """A table that never cuts a value: as wide as its cells when that fits the terminal,
    else with long headers and free text wrapped, else (given a ``narrowing``) the columns
    it keeps and a line saying how many were left out, or its columns folded, else one
    record per block (as DuckDB's ``.mode line``), so that ids and numbers are always
    printed whole. Drawn as plain text where Rich would draw the same (``cli.plain``), by
    Rich otherwise."""
    screen = output_screen()
    if not rows:  # a frame of headers (or a title over no blocks) reads as a broken answer
        said = (f"{title}: " if title else "") + "no rows"
        console().print(
            said + (f" (columns: {literal(', '.join(columns))})" if columns else ""),
            soft_wrap=True,
        )
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    names = [shown(c) for c in columns]  # a query's column names are its user's text
    by_column = [[row[i] for row in cells] for i in range(len(columns))]
    widths = [_width(values) for values in by_column]
    prose = [_is_prose(values) for values in by_column]
    borders = 3 * len(columns) + 1
    full = [max(w, _cell_len(c)) for w, c in zip(widths, names, strict=True)]
    right = [any(_is_number(r.get(c)) for r in rows[:50]) for c in columns]
    if sum(full) + borders <= screen.width:
        _draw(screen, cells, names, full, right, title, prose)
        return
    headers = [_wrap_header(c, w) for c, w in zip(names, widths, strict=True)]
    narrow = [
        max(PROSE_MIN_WIDTH if p else w, *(_cell_len(line) for line in h.splitlines()))
        if p
        else max(w, *(_cell_len(line) for line in h.splitlines()))
        for w, h, p in zip(widths, headers, prose, strict=True)
    ]
    if sum(narrow) + borders <= screen.width:
        _grid(console(), cells, title, narrow, headers, prose, right)
        return
    if isinstance(narrowing, Folding):
        folded = _folded(narrowing, columns, names, full, screen.width - borders)
        if folded is not None:
            at = {columns.index(c): w for c, w in folded.items()}
            cells = [[_fold(v, at[i]) if i in at else v for i, v in enumerate(r)] for r in cells]
            names = [_fold(n, at[i]) if i in at else n for i, n in enumerate(names)]
            full = [at.get(i, w) for i, w in enumerate(full)]
            _draw(screen, cells, names, full, right, title, [False] * len(columns))
            return
    if isinstance(narrowing, Eliding):
        sides = _elided(full, screen.width)
        if sides is not None:
            left, last = sides
            cut = [*range(left), None, *range(len(columns) - last, len(columns))]
            _draw(
                screen,
                [[ELIDED if i is None else row[i] for i in cut] for row in cells],
                [ELIDED if i is None else names[i] for i in cut],
                [1 if i is None else full[i] for i in cut],
                [i is not None and right[i] for i in cut],
                title,
                [False] * len(cut),
            )
            hidden = len(columns) - left - last
            _print_dim(  # one line that fits 80 columns, as the narrowing's
                f"{hidden} column{'s' if hidden > 1 else ''} hidden at {ELIDED}: "
                f"{narrowing.see_all.format(them='them' if hidden > 1 else 'it')}"
            )
            return
    # Whole headers: a table of the usual columns reads best with one line of them (and
    # is drawn as plain text, without loading Rich).
    if (
        isinstance(narrowing, Narrowing)
        and (kept := _kept(narrowing, columns, full, screen.width)) is not None
    ):
        print_table(rows, kept, title)
        left_out = len(columns) - len(kept)
        # One line that fits 80 columns: how many, why, and how to see them.
        _print_dim(
            f"{left_out} more column{'s' if left_out > 1 else ''}, too wide for "
            f"{screen.width}: {narrowing.see_all} shows {'them' if left_out > 1 else 'it'}"
        )
        return
    drawn = plain.blocks(screen, names, cells, title)
    if drawn is None:
        _blocks(console(), names, cells, title)
    else:
        sys.stdout.write(drawn)


def _draw(
    screen: plain.Screen,
    cells: list[list[str]],
    headers: list[str],
    widths: list[int],
    right: list[bool],
    title: str | None,
    prose: list[bool],
) -> None:
    """A table whose columns are ``widths`` wide, as plain text where Rich would draw the
    same, by Rich otherwise."""
    drawn = plain.grid(screen, cells, headers, widths, right, title)
    if drawn is None:
        _grid(console(), cells, title, widths, headers, prose, right)
    else:
        sys.stdout.write(drawn)


def _folded(
    folding: Folding, columns: Sequence[str], names: Sequence[str], widths: Sequence[int], room: int
) -> dict[str, int] | None:
    """The width of each column of ``folding`` (by name) for a table whose cells take
    ``room`` cells: each gives up width in turn, down to :data:`FOLD_MIN_WIDTH` (or the
    longest piece of its header); None when that is not enough."""
    width_of = dict(zip(columns, widths, strict=True))
    excess = sum(widths) - room
    folded = {}
    for name in folding.columns:
        if excess <= 0:
            break
        if name not in width_of or name in folded:
            continue
        header = names[columns.index(name)]
        least = min(width_of[name], max(FOLD_MIN_WIDTH, *map(_cell_len, _pieces(header, 0))))
        given = min(excess, width_of[name] - least)
        folded[name] = width_of[name] - given
        excess -= given
    return folded if excess <= 0 else None


# Where a folded value may break, the first tried first: after a space, after a separator
# of paths, URLs and lists, after one inside a name.
_BREAKS = (" ", "./,:", "_-")


def _pieces(text: str, level: int) -> list[str]:
    """``text`` cut after each of the ``level``-th breaks (``a.b`` → ``a.``, ``b``)."""
    return re.findall(f"[^{re.escape(_BREAKS[level])}]*[{re.escape(_BREAKS[level])}]*", text)[
        :-1
    ] or [text]


def _fold(text: str, width: int, level: int = 0) -> str:
    """``text`` on lines of at most ``width`` cells, nothing cut: broken where
    :data:`_BREAKS` allows, the first kind first, else between characters.

    >>> print(_fold("maintenance.orphan_metadata_min_age_minutes", 20))
    maintenance.
    orphan_metadata_min_
    age_minutes
    """
    lines: list[str] = []
    for given in text.split("\n"):
        indent = len(given) - len(given.lstrip(" "))
        if 0 < indent <= width // 2 and level == 0:  # indented JSON: each line's folds too
            folded = _fold(given[indent:], width - indent).split("\n")
            lines += [" " * indent + line for line in folded]
            continue
        line = ""
        for piece in _pieces(given, level) if level < len(_BREAKS) else list(given):
            if _cell_len(line + piece.rstrip(" ")) <= width:
                line += piece
                continue
            if line:
                lines.append(line.rstrip(" "))
            line = ""
            body = piece.rstrip(" ")
            if _cell_len(body) <= width or level >= len(_BREAKS):
                line = piece
            else:  # a piece longer than a line: broken where the next kind of break allows
                *whole, line = _fold(body, width, level + 1).split("\n")
                lines += whole
                line += piece[len(body) :]
        lines.append(line.rstrip(" ") if line.strip(" ") else line)
    return "\n".join(lines)


def _elided(widths: Sequence[int], room: int) -> tuple[int, int] | None:
    """How many of the first and of the last columns (as wide as ``widths``, borders
    included) fit ``room`` cells beside a one-cell :data:`ELIDED` column, taken from each
    end in turn as DuckDB's shell does; None when the first column alone does not fit."""
    used = 1 + 4  # the left border, the elided column
    left, last = 0, 0
    ends = [True, True]  # the first and the last columns still being taken
    while any(ends) and left + last < len(widths):
        for side in (0, 1):
            if not ends[side] or left + last >= len(widths):
                continue
            width = widths[left] if side == 0 else widths[len(widths) - 1 - last]
            if used + width + 3 > room:
                ends[side] = False
                continue
            used += width + 3
            if side == 0:
                left += 1
            else:
                last += 1
    return (left, last) if left else None


def _kept(
    narrowing: Narrowing, columns: Sequence[str], widths: Sequence[int], room: int
) -> list[str] | None:
    """The ``columns`` a table ``room`` cells wide keeps under ``narrowing`` (each column
    as narrow as ``widths`` says, borders included), in their order; None when that is
    not every key and at least one more column: then the blocks show the records whole."""
    width_of = dict(zip(columns, widths, strict=True))
    kept: set[str] = set()
    used = 1  # the left border
    for name in (*narrowing.keys, *narrowing.wanted):
        if name not in width_of or name in kept:
            continue
        if used + width_of[name] + 3 <= room:
            kept.add(name)
            used += width_of[name] + 3
        elif name in narrowing.keys:
            return None
    keys = {name for name in narrowing.keys if name in width_of}
    if len(kept) <= len(keys):
        return None
    return [name for name in columns if name in kept]


def output_screen() -> plain.Screen:
    """The width and styling :func:`console` would give standard output, decided without
    loading Rich when the output is no terminal and nothing in the environment overrides
    Rich's detection (``FORCE_COLOR`` …); Rich decides otherwise."""
    if _unstyled(sys.stdout):
        columns = os.environ.get("COLUMNS")
        if columns is not None:
            return plain.Screen(int(columns), styled=False)
        return plain.Screen(max(_terminal_width(), 160), styled=False)
    out = console()
    return plain.Screen(out.width, styled=out.color_system is not None)


def _unstyled(stream: Any) -> bool:
    """Whether Rich would write to ``stream`` text as it is, decided without loading it: no
    terminal, and nothing in the environment overriding Rich's detection."""
    columns = os.environ.get("COLUMNS")
    return (
        not _isatty(stream)
        and not _RICH_DETECTION.intersection(os.environ)
        and (columns is None or columns.isdigit())
        and "IPython" not in sys.modules
        and not getattr(sys.stdin, "__module__", "").startswith("idlelib")
    )


# Variables that change what Rich makes of a non-terminal output.
_RICH_DETECTION = {"FORCE_COLOR", "TTY_COMPATIBLE", "JUPYTER_COLUMNS", "JUPYTER_LINES"}


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _terminal_width() -> int:
    """The width of the first standard stream that is a terminal, as Rich reads it; 80 if none."""
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def _width(values: list[str]) -> int:
    """Cells the widest line of a column's ``values`` takes (at least 1): their longest
    length when every character takes one cell (printable ASCII or ∅, no line break)."""
    joined = "".join(values).replace(plain.NONE_CELL, "")
    if joined.isascii() and joined.isprintable():
        return max(1, max(map(len, values), default=0))
    return max([_cell_len(line) for value in values for line in value.splitlines()] or [1])


def _cell_len(text: str) -> int:
    """Cells ``text`` takes on a terminal (Rich's measure; ASCII without loading it)."""
    if plain.is_plain(text):
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


PROSE_MIN_WIDTH = 24  # free text (summaries, raw records) may wrap down to this width


def _is_prose(values: Sequence[str]) -> bool:
    """Text that may wrap between words: any cell with a space in it and over 24 cells long."""
    return " " in "".join(values) and any(" " in v and len(v) > PROSE_MIN_WIDTH for v in values)


def _wrap_header(name: str, width: int) -> str:
    """``unique_users`` over a 5-wide column → ``unique_`` / ``users``: break after ``_``."""
    if len(name) <= width:
        return name
    pieces = [p + "_" for p in name.split("_")]
    pieces[-1] = pieces[-1][:-1]
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + len(piece) > max(width, max(len(p) for p in pieces)):
            lines.append(line)
            line = ""
        line += piece
    return "\n".join([*lines, line])


def _grid(
    out: Any,
    cells: list[list[str]],
    title: str | None,
    widths: list[int],
    headers: list[str],
    prose: list[bool],
    right: list[bool],
) -> None:
    from rich.table import Table
    from rich.text import Text

    # Rich styles a title given as text itself (italic), not one given as Text.
    shown_title = None if title is None else Text(title, style="table.title")
    table = Table(title=shown_title, show_lines=False)
    for i, header in enumerate(headers):
        table.add_column(
            Text(header),  # as Text: no title, header or cell is read as markup
            justify="right" if right[i] else "left",
            no_wrap=not prose[i],
            overflow="fold",  # never "…": a value too long for its column continues below
            min_width=widths[i] if not prose[i] else PROSE_MIN_WIDTH,
            max_width=None if prose[i] else widths[i],
        )
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    out.print(table)


def _blocks(out: Any, columns: Sequence[str], cells: list[list[str]], title: str | None) -> None:
    from rich.cells import cell_len
    from rich.console import Group
    from rich.text import Text

    # Built first, printed once: a print per line costs more than the line (600 records
    # of 18 fields took a second of printing).
    parts: list[Text] = []
    if title:
        parts.append(Text(plain.blocks_heading(title, out.width), style="bold"))
    label = max(len(c) for c in columns)
    for n, row in enumerate(cells, start=1):
        parts.append(
            Text(f"── {n} " + "─" * max(0, min(out.width, 40) - len(str(n)) - 4), style="dim")
        )
        for name, value in zip(columns, row, strict=True):
            if label + 2 + max(cell_len(v) for v in value.splitlines() or [""]) <= out.width:
                line = Text(f"{name:<{label}}", style="bold", overflow="fold", no_wrap=False)
                line.append("  " + value.replace("\n", "\n" + " " * (label + 2)))
            else:  # the value on lines of its own, so that it is cut only if it is wider than all
                line = Text(name, style="bold", overflow="fold", no_wrap=False)
                line.append("\n  " + value.replace("\n", "\n  "))
            parts.append(line)
    out.print(Group(*parts))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return jsonutil.dumps_str(value)
    return value


# The most characters of one value a table shows (a query's text or blob may be megabytes:
# `select repeat('x', 1e9)` was drawn for 141 s in 11 GiB); JSON and CSV print it whole.
CELL_CHARS = 10_000


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, dict | list):  # a list, struct or map: as JSON, as the other formats
        value = _json_cell(value)  # print it, not Python's repr ([Decimal('1.5')], datetime(…))
    if isinstance(value, str | bytes) and len(value) > CELL_CHARS:
        rest = len(value) - CELL_CHARS
        unit = "characters" if isinstance(value, str) else "bytes"
        return shown(str(value[:CELL_CHARS])) + f"… ({rest:,} more {unit}: --format json shows all)"
    if isinstance(value, float):
        return _number_cell(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, datetime):  # all times are UTC: the offset is noise, the digits are not
        return value.isoformat(sep=" ").removesuffix("+00:00")
    return shown(str(value))


def _number_cell(value: float) -> str:
    """A float for a glance: two decimals from 1 on, up to four below (trailing zeros cut),
    and below 0.0001 its first two significant digits — a rate of 0.00001 is not 0.

    >>> [_number_cell(v) for v in (1234.5678, 0.25, 0.00001234, -0.00005, 0.0, 1e-30)]
    ['1,234.57', '0.25', '0.000012', '-0.00005', '0', '1.0e-30']
    """
    size = abs(value)
    if size >= 1 or not math.isfinite(value):
        return f"{value:,.2f}"
    if size == 0 or size >= 0.0001:
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    digits = 1 - math.floor(math.log10(size))  # the first two significant digits
    return f"{value:.{digits}f}".rstrip("0") if digits <= 12 else f"{value:.1e}"


def _json_cell(value: dict[Any, Any] | list[Any]) -> str:
    try:
        return jsonutil.dumps_str(value)
    except TypeError:  # a value JSON has no form for: Python's text for it beats no answer
        return str(value)


def short_time(value: datetime | str | None, now: datetime) -> str | None:
    """An instant for a glance: ``17:11:59`` on ``now``'s day (UTC), else ``2026-11-20 17:11``."""
    if value is None:
        return None
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if instant.date() == now.date():
        return f"{instant:%H:%M:%S}"
    return f"{instant:%Y-%m-%d %H:%M}"


def human_bytes(size: int) -> str:
    """``1536`` → ``1.5 KiB``: a size as people read it.

    >>> human_bytes(0), human_bytes(1536), human_bytes(3 << 30)
    ('0 B', '1.5 KiB', '3.0 GiB')
    """
    if abs(size) < 1024:
        return f"{size:,} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


def _print_dim(line: str) -> None:
    """A line of ours (no markup, no record's text) to stderr, dim where Rich would style
    it: written as it is where Rich would write it so, without loading Rich."""
    sys.stdout.flush()  # after the table it speaks of, when both go to one file or pipe
    if _unstyled(sys.stderr):
        sys.stderr.write(line + "\n")
    else:
        print_message(f"[dim]{line}[/]")


def print_message(text: str) -> None:
    """Human-only chatter (hints, next steps) goes to stderr so stdout stays parseable."""
    console(stderr=True).print(text, soft_wrap=True)  # whole lines: the terminal wraps them


def rows_from_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    return [{"line": line} for line in lines]
