"""Rich's tables and record blocks drawn as plain strings, for the CLI's common case.

Drawing the 600 records of ``report campaigns`` (18 fields each, one block per record)
through Rich's ``Text`` took 4.2 G instructions, over a second of CPU; the same
characters joined as strings take a few million, and a small table drawn here spares
importing Rich at all. The look is Rich's, byte for byte, styles included: ``output``
draws here whatever Rich would draw without wrapping a line or measuring a wide
character (Rich is handed text, never markup), and hands everything else to Rich (each function returns
None then). ``tests/cli/test_plain.py`` holds the two to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BOLD, DIM, ITALIC = "1", "2", "3"  # the SGR codes of Rich's styles used here
NONE_CELL = "∅"  # one cell wide, like every ASCII character
ELIDED_CELL = "…"  # the same: a query's columns hidden in a table too wide for the terminal


@dataclass(frozen=True)
class Screen:
    """Where a table goes: its width in cells, and whether Rich would style it."""

    width: int
    styled: bool

    def style(self, text: str, code: str) -> str:
        """``text`` in a style, as Rich writes it (nothing around an empty text)."""
        return f"\x1b[{code}m{text}\x1b[0m" if self.styled and text else text


def is_plain(text: str) -> bool:
    """Text Rich prints as it is, one cell per character: printable (no tab, no control
    character, no line break) and ASCII, or the null or the elided cell."""
    return (text.isascii() and text.isprintable()) or text in (NONE_CELL, ELIDED_CELL)


def _as_is(text: str) -> bool:
    """No space at either end (Rich's justification moves those). Cells, headers and
    titles go to Rich as ``Text``, which reads no markup or emoji code in them."""
    return text == text.strip(" ")


def grid(
    screen: Screen,
    cells: Sequence[Sequence[str]],
    headers: Sequence[str],
    widths: Sequence[int],
    right: Sequence[bool],
    title: str | None,
) -> str | None:
    """Rich's default table (heavy head, title centred in italics, bold headers) with each
    column exactly ``widths`` cells wide, as text; None when Rich could draw it otherwise."""
    texts = [*headers, *(c for row in cells for c in row), *([title] if title else [])]
    if not all(is_plain(t) and _as_is(t) for t in texts):
        return None
    if any(len(c) > w for row in (headers, *cells) for c, w in zip(row, widths, strict=True)):
        return None
    total = sum(widths) + 3 * len(widths) + 1
    if total > screen.width or (title and len(title) > total):
        return None

    def rule(left: str, line: str, cross: str, end: str) -> str:
        return left + cross.join(line * (w + 2) for w in widths) + end

    def justified(text: str, width: int, to_right: bool) -> str:
        return text.rjust(width) if to_right else text.ljust(width)

    lines = []
    if title:
        space = total - len(title)
        lines.append(screen.style(" " * (space // 2) + title + " " * (space - space // 2), ITALIC))
    lines.append(rule("┏", "━", "┳", "┓"))
    lines.append(
        "┃"
        + "┃".join(
            screen.style(" ", BOLD)
            + screen.style(justified(h, w, r), BOLD)
            + screen.style(" ", BOLD)
            for h, w, r in zip(headers, widths, right, strict=True)
        )
        + "┃"
    )
    lines.append(rule("┡", "━", "╇", "┩"))
    for row in cells:
        lines.append(
            "│ "
            + " │ ".join(justified(c, w, r) for c, w, r in zip(row, widths, right, strict=True))
            + " │"
        )
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join(lines) + "\n"


def blocks_heading(title: str, width: int) -> str:
    """``title`` and why its records come as blocks, in one pair of brackets.

    >>> blocks_heading("campaigns by day (first 15 rows)", 80)
    'campaigns by day (first 15 rows; one record per block: too wide for 80 columns)'
    """
    why = f"one record per block: too wide for {width} columns"
    return f"{title[:-1]}; {why})" if title.endswith(")") else f"{title} ({why})"


def blocks(
    screen: Screen, columns: Sequence[str], cells: Iterable[Sequence[str]], title: str | None
) -> str | None:
    """One record per block (``output._blocks``'s look) as text; None when a line would not
    fit the screen (Rich wraps it) or a value is not plain text."""
    width = screen.width
    if not all(is_plain(c) for c in columns):
        return None
    label = max(len(c) for c in columns)
    named = [f"{c:<{label}}  " for c in columns]
    bold, dim = ("\x1b[1m", "\x1b[2m") if screen.styled else ("", "")
    end = "\x1b[0m" if screen.styled else ""
    lines = []
    if title:
        head = blocks_heading(title, width)
        if not is_plain(head) or len(head) > width:
            return None
        lines.append(screen.style(head, BOLD))
    for n, row in enumerate(cells, start=1):
        rule = f"── {n} " + "─" * max(0, min(width, 40) - len(str(n)) - 4)
        if len(rule) > width:
            return None
        lines.append(f"{dim}{rule}{end}")
        for name, head, value in zip(columns, named, row, strict=True):
            if (
                "\n" not in value
                and (value.isascii() or value == NONE_CELL)
                and value.isprintable()
                and len(head) + len(value) <= width
            ):
                lines.append(f"{bold}{head}{value}{end}")  # most fields: on one line
            elif not _lone(screen, lines, name, value.split("\n"), label):
                return None
    return "\n".join(lines) + "\n"


def _lone(screen: Screen, lines: list[str], name: str, parts: list[str], label: int) -> bool:
    """Add a field whose value has several lines or is too wide for beside its name to
    ``lines``, as ``output._blocks`` lays it out; False when that is not plain text that fits."""
    if not all(is_plain(p) for p in parts if p):
        return False
    longest = max(len(p) for p in parts)
    if label + 2 + longest <= screen.width:
        pad = " " * (label + 2)
        texts = [f"{name:<{label}}  {parts[0]}", *(pad + p for p in parts[1:])]
    elif 2 + longest <= screen.width and len(name) <= screen.width:
        texts = [name, *("  " + p for p in parts)]
    else:
        return False
    lines += [screen.style(t, BOLD) for t in texts]
    return True
