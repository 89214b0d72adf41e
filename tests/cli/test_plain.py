"""The plain-text tables and blocks are Rich's, byte for byte, styles included; what they
cannot draw the same way goes to Rich."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from advertisex.cli import output, plain

PLAIN = [
    0,
    7,
    -3,
    1_234_567,
    0.5,
    0.012345,
    123_456.78,
    None,
    True,
    "",
    "x",
    "cmp-001",
    "spend is off pace: 1,234.56 spent today by 15:00 against 4,000.00 expected",
    "12:05:00",
    "line one\nline two",
    "…",  # the column standing for those a query's table hides
    datetime(2026, 11, 20, 10, 5, tzinfo=UTC),
]
ODD = [
    "two  spaces ",
    " lead",
    "a:100:b",
    "a:smile:b",
    "[bold]markup[/]",
    "tab\there",
    "café",
    "日本語",
    "x" * 70,
]


def rich_drawing(styled: bool, width: int, draw: Any, *args: Any) -> str:
    """What ``draw(console, *args)`` prints on a Rich console of ``width``, styled or not."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width,
        force_terminal=styled,
        color_system="standard" if styled else None,
        highlight=False,
        soft_wrap=False,
    )
    draw(console, *args)
    return buffer.getvalue()


def tables(seed: int) -> list[tuple[list[str], list[dict[str, Any]], str | None]]:
    rng = random.Random(seed)
    cases = []
    for _ in range(60):
        columns = [
            rng.choice(["a", "campaign_id", "day", "count(*)", "x_y_z", "n"]) + str(i)
            for i in range(rng.randint(1, 6))
        ]
        rows = [
            {c: rng.choice(ODD if rng.random() < 0.1 else PLAIN) for c in columns}
            for _ in range(rng.randint(1, 4))
        ]
        cases.append((columns, rows, rng.choice([None, "campaigns by day", "t"])))
    return cases


@pytest.mark.parametrize("styled", [False, True])
@pytest.mark.parametrize("width", [30, 60, 160])
def test_grids_and_blocks_drawn_plainly_are_richs(styled, width):
    drawn_plainly = 0
    screen = plain.Screen(width, styled)
    for columns, rows, title in tables(width):
        cells = [[output._cell(r.get(c)) for c in columns] for r in rows]
        full = [
            max([len(v) for row in cells for v in row[i].splitlines()] + [1, len(c)])
            for i, c in enumerate(columns)
        ]
        right = [any(output._is_number(r.get(c)) for r in rows) for c in columns]
        prose = [output._is_prose([row[i] for row in cells]) for i in range(len(columns))]
        if sum(full) + 3 * len(full) + 1 <= width:
            mine = plain.grid(screen, cells, columns, full, right, title)
            theirs = rich_drawing(
                styled, width, output._grid, cells, title, full, columns, prose, right
            )
        else:
            mine = plain.blocks(screen, columns, cells, title)
            theirs = rich_drawing(styled, width, output._blocks, columns, cells, title)
        if mine is not None:
            drawn_plainly += 1
            assert mine == theirs, (columns, rows, title)
    assert drawn_plainly >= 10, drawn_plainly  # the cases Rich is needed for are not all


def test_wide_characters_and_tabs_go_to_rich_and_markup_is_text():
    """A cell, a header and a title are Rich's ``Text``, which reads no markup or emoji
    code: drawn plainly as they are (as Rich draws them)."""
    screen = plain.Screen(80, styled=False)
    for value in ("日本語", "tab\there"):
        assert plain.grid(screen, [[value]], ["v"], [10], [False], None) is None
    for value in ("[bold]x[/]", "a:smile:b", "12:05:00"):
        drawn = plain.grid(screen, [[value]], ["v"], [10], [False], None)
        assert drawn is not None and f"│ {value:<10} │" in drawn
    drawn = plain.grid(screen, [["x"]], ["v"], [10], [False], "[bold]t[/]")
    assert drawn is not None and "[bold]t[/]" in drawn  # a title too (a path in it, say)
    assert plain.blocks(screen, ["v"], [["tab\there"]], None) is None


def test_a_report_prints_without_loading_rich(monkeypatch, capsys):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    rows = [{"campaign_id": f"cmp-{i}", "impressions": i * 1000, "ctr": 0.01} for i in range(3)]
    loaded = []
    monkeypatch.setattr(output, "console", lambda stderr=False: loaded.append(1))
    output.print_rows(rows, output.Format.table, title="campaigns")
    out = capsys.readouterr().out
    assert not loaded
    assert out.splitlines()[4] == "│ cmp-0       │           0 │ 0.01 │"


def test_a_columns_width_is_richs_measure_of_its_widest_line():
    from rich.cells import cell_len

    rng = random.Random(5)
    values = [output._cell(v) for v in PLAIN + ODD] + ["∅x", "a∅", "\n", "x\n\ny"]
    for _ in range(300):
        column = rng.sample(values, rng.randint(1, 6))
        lines = [line for v in column for line in v.splitlines()]
        assert output._width(column) == max([cell_len(line) for line in lines] or [1]), column
        assert output._is_prose(column) == any(" " in v and len(v) > 24 for v in column)
