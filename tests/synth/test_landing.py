"""Hourly text files: each holds its hour's lines in arrival order, one per line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from advertisex.synth.clock import Window
from advertisex.synth.landing import relative_path, write_text_source

WINDOW = Window(date(2026, 11, 20), 1)


def _lines(rows: list[tuple[int, int, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_hour": [r[0] for r in rows],
            "_arrival": [r[1] for r in rows],
            "_seq": list(range(len(rows))),
            "line": [r[2] for r in rows],
        },
        schema={"_hour": pl.Int64, "_arrival": pl.Int64, "_seq": pl.Int64, "line": pl.String},
    )


@pytest.mark.parametrize("header", [None, "a,b"])
def test_each_hour_file_is_its_lines_in_arrival_order(tmp_path: Path, header: str | None) -> None:
    # Out of order, non-ASCII, an empty line, and the frame in two chunks (a concat,
    # as the generator's valid and malformed lines are): every hour's bytes must be its own.
    # Quotes, separators and a carriage return are written as they are: no CSV quoting.
    first = _lines([(3, 30, '{"a":"é"}'), (0, 5, 'x,"y";\tz\r'), (3, 10, "")])
    second = _lines([(23, 1, "last ✓"), (0, 1, "first")]).with_columns(_seq=pl.col("_seq") + 3)
    landed = pl.concat([first, second], rechunk=False)
    assert landed["line"].n_chunks() == 2
    (tmp_path / "clicks").mkdir()
    told: list[Path] = []

    files = write_text_source(tmp_path, "clicks", WINDOW, landed, header, told.append)

    head = "" if header is None else header + "\n"
    expected = {0: 'first\nx,"y";\tz\r\n', 3: '\n{"a":"é"}\n', 23: "last ✓\n"}
    assert files == [relative_path("clicks", WINDOW, hour) for hour in range(24)]
    assert told == [tmp_path / name for name in files]
    for hour, name in enumerate(files):
        body = expected.get(hour, "")
        assert (tmp_path / name).read_bytes() == (head + body).encode("utf-8"), hour


def test_no_lines_at_all_still_writes_every_hour(tmp_path: Path) -> None:
    (tmp_path / "clicks").mkdir()
    files = write_text_source(tmp_path, "clicks", WINDOW, _lines([]), "h", lambda _: None)
    assert [(tmp_path / name).read_bytes() for name in files] == [b"h\n"] * 24
