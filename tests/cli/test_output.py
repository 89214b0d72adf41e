"""Human tables never cut an id or a number, whatever the terminal's width."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from advertisex.cli.output import (
    Eliding,
    Folding,
    Format,
    Narrowing,
    _fold,
    print_rows,
    short_time,
)

ROWS = [
    {
        "campaign_id": f"cmp-{i:03d}-holiday-promo-northern-europe",
        "day": "2026-11-20",
        "impressions": 1_234_567 * i,
        "unique_users": 98_765 * i,
        "conversion_rate": 0.012345,
        "attributed_conversion_value": 123_456.78 * i,
        "summary": "spend is off pace: 1,234.56 spent today by 15:00 against 4,000.00 expected",
    }
    for i in range(1, 4)
]


def render(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], width: int) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    print_rows(ROWS, Format.table, title="campaigns")
    return capsys.readouterr().out


@pytest.mark.parametrize("width", [400, 200, 120, 80, 40])
def test_no_id_or_number_is_cut_at_any_width(monkeypatch, capsys, width):
    out = render(monkeypatch, capsys, width)
    assert "…" not in out
    lines = out.splitlines()
    for row in ROWS:
        for value in (row["campaign_id"], f"{row['impressions']:,}", f"{row['unique_users']:,}"):
            assert any(value in line for line in lines), (width, value)
        assert any(f"{row['attributed_conversion_value']:,.2f}" in line for line in lines)
    assert max(len(line) for line in lines) <= width


def test_a_table_that_fits_keeps_one_line_per_row_and_whole_headers(monkeypatch, capsys):
    out = render(monkeypatch, capsys, 400)
    assert "attributed_conversion_value" in out
    assert sum("cmp-" in line for line in out.splitlines()) == len(ROWS)


def test_a_table_too_wide_for_the_terminal_becomes_one_record_per_block(monkeypatch, capsys):
    out = render(monkeypatch, capsys, 80)
    assert "one record per block" in out
    assert sum(line.startswith("campaign_id ") for line in out.splitlines()) == len(ROWS)


def test_short_times_drop_the_date_on_the_same_day():
    now = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert short_time("2026-11-27T09:05:01+00:00", now) == "09:05:01"
    assert short_time(datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), now) == "2026-11-20 23:59"
    assert short_time(None, now) is None


def test_no_rows_is_said_in_words_not_drawn_as_an_empty_frame(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")  # too narrow for the headers: it was a bare title
    capsys.readouterr()
    print_rows([], Format.table, title="campaigns", columns=list(ROWS[0]))
    out = capsys.readouterr().out
    assert out.startswith("campaigns: no rows (columns: campaign_id, day,") and "┃" not in out
    print_rows([], Format.table, title="campaigns", columns=["a"], empty="nothing loaded yet")
    said = capsys.readouterr()
    assert said.out == "" and said.err.strip() == "nothing loaded yet"
    print_rows([], Format.json, title="campaigns", columns=["a"], empty="nothing loaded yet")
    assert capsys.readouterr().out.strip() == "[]"


def test_an_interval_is_an_iso_8601_duration_in_json(cli, open_lake, tmp_path):
    """DuckDB hands a SQL interval over as a timedelta, which JSON has no type for: it is
    written as an ISO 8601 duration (it used to stop ``--format json`` with "this is a
    bug")."""
    from advertisex.util import jsonutil

    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    sql = "select interval 1 day as d, interval '90 minutes' as m, -interval '1.5 seconds' as s"
    code, out, err = cli(data, "query", sql, "--format", "json")
    assert (code, err) == (0, "")
    assert jsonutil.loads(out) == [{"d": "P1D", "m": "PT1H30M", "s": "-PT1.5S"}]


# What a producer may put in a record, a field name or a file name: markup Rich would read
# (one that fails, one that styles), an emoji code, terminal control sequences (a window
# title, a screen clear, a colour), a C1 CSI, a carriage return and a bidirectional override.
HOSTILE = [
    "[/]",
    "[bold]y[/bold]",
    ":thumbs_up:",
    "\x1b]0;pwned\x07",
    "\x1b[2Jclear",
    "\x1b[31mred\x1b[0m",
    "a\x9b31mb",
    "over\rwrite",
    "abc\u202edcba",
    "é[/]",
]
ACTED_ON = ("\x1b", "\x07", "\x9b", "\r", "\u202e")


@pytest.mark.parametrize("width", [400, 60, 30])
def test_a_producers_text_is_printed_as_it_is_never_acted_on(monkeypatch, capsys, width):
    """Cells and column names from outside are shown, not interpreted: Rich read them as
    markup (``[/]`` failed the command with a bug report, ``[bold]`` styled the cell away)
    and emoji codes, and control characters reached the terminal, which acts on them (a
    quarantined record could set the window title or clear the screen of whoever looked at
    it). Every layout: a grid drawn as text, one by Rich, one record per block."""
    monkeypatch.setenv("COLUMNS", str(width))
    rows = [{"n": i, "value": text, "\x1b[2J[/]name": text} for i, text in enumerate(HOSTILE)]
    capsys.readouterr()
    print_rows(rows, Format.table, title="into /tmp/[/]x")  # a title may hold a path
    out = capsys.readouterr().out
    assert not any(c in out for c in ACTED_ON), repr(out)
    assert "into /tmp/[/]x" in out
    flat = out.replace("\n", "").replace("│", "").replace(" ", "")
    for text in ("[/]", "[bold]y[/bold]", ":thumbs_up:", "\\x1b]0;pwned\\x07", "\\x1b[2Jclear"):
        assert text in flat, (width, text)
    assert "\\x9b" in flat and "over\\x0dwrite" in flat and "abc\\u202edcba" in flat
    assert "\\x1b[2J[/]name" in flat  # the column's name too


def test_hostile_records_leave_every_verb_that_prints_them_whole(cli, tmp_path):
    """End to end: a record whose field names are markup and escapes (the schema-change
    line of ``process`` failed with a bug report on ``[/]``), a quarantined record of
    control sequences (``quarantine show`` wrote them to the terminal), a query of such
    values, and a folder named ``[/]`` to ingest."""
    data = tmp_path / "data"
    folder = tmp_path / "[" / "]in"  # a path holding "[/]"
    folder.mkdir(parents=True)
    good = '{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"'
    (folder / "x.ndjson").write_text(
        good + ', "[/]": 1, "\\u001b[2Jx": 2, ":thumbs_up:": 3}\n'
        '{"timestamp": "\x1b]0;pwned\x07", "user_id": "\x1b[31mred"}\n'
    )
    code, out, err = cli(data, "ingest", str(folder), "--source", "impressions")
    assert code == 0 and BUG not in err, err
    code, out, err = cli(data, "process")
    assert code == 0 and BUG not in err, err
    assert "[/]" in err and ":thumbs_up:" in err and "\\x1b[2Jx" in err
    assert not any(c in err + out for c in ACTED_ON)
    code, out, err = cli(data, "quarantine", "show")
    assert code == 0 and BUG not in err, err
    assert '"\\x1b]0;pwned\\x07"' in out and not any(c in out for c in ACTED_ON), repr(out)
    code, out, err = cli(data, "query", "select '[/]' as \"[/]\", chr(27) || '[2J' as x")
    assert code == 0 and BUG not in err, err
    assert "[/]" in out and "\\x1b[2J" in out and "\x1b" not in out
    code, out, err = cli(data, "query", 'select 1 as "[/]" where false')
    assert code == 0 and "(columns: [/])" in out, out + err


def test_a_flood_of_field_names_is_summed_up_not_printed(cli, tmp_path):
    # A producer names the fields: a CSV header of 100,000 columns had `process` print
    # all of them, 800 KB on one line of the operator's terminal.
    drop = tmp_path / "drop.ndjson"
    fields = ", ".join(f'"f{i:05}": 1' for i in range(5000))
    drop.write_text(
        '{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"c","user_id":"u","website":"w",'
        f'"{"x" * 500}": 1, {fields}}}\n'
    )
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", str(drop), "--source", "impressions")
    assert code == 0, err
    code, _, err = cli(data, "process")
    assert code == 0 and BUG not in err, err
    assert "f00000, f00001" in err and "and 4,991 more (all in ops.batches.new_fields)" in err
    assert len(err) < 5000 and "x" * 60 not in err


BUG = "this is a bug in advertisex"


@pytest.mark.parametrize("fmt", [Format.json, Format.csv])
def test_rows_printed_as_they_arrive_read_as_rows_printed_at_once(capsys, fmt):
    """``query`` prints JSON and CSV a part at a time (a million rows are never held): the
    text is the one printed for all the rows at once, whatever the parts."""
    from decimal import Decimal

    from advertisex.cli.output import stream_rows

    rows = [
        {"id": "a\u00e9", "n": 1, "x": 0.5, "t": datetime(2026, 11, 20, tzinfo=UTC)},
        {"id": None, "n": None, "x": Decimal("1.25"), "t": None},
        {"id": 'q"uote,', "n": 3, "x": [1, {"k": "v"}], "t": None},
    ]
    columns = ["id", "n", "x", "t"]
    print_rows(rows, fmt, columns=columns)
    at_once = capsys.readouterr().out
    for parts in ([rows], [rows[:1], [], rows[1:]], [[r] for r in rows]):
        stream_rows(columns, iter(parts), fmt)
        assert capsys.readouterr().out == at_once
    print_rows([], fmt, columns=columns)
    none_at_once = capsys.readouterr().out
    stream_rows(columns, iter([]), fmt)
    assert capsys.readouterr().out == none_at_once


def test_a_query_table_shows_its_first_rows_and_says_there_are_more(cli, open_lake, tmp_path):
    data = tmp_path / "data"
    open_lake(data).create_data_dir()
    sql = "select range as n, repeat('x', 25000) as long from range(1500)"
    code, out, err = cli(data, "query", sql, "--max-rows", "3")
    assert code == 0 and "the first 3 rows are shown, and there are more" in err
    cells = re.sub(r"[│┃\s]+", "", out)  # a long cell folds over lines, inside borders
    assert cells.count("x" * 10_000 + "…(15,000morecharacters:--formatjsonshowsall)") == 3
    assert "x" * 10_001 not in cells
    code, out, err = cli(data, "query", sql, "--format", "csv")
    assert (code, err) == (0, "") and len(out.splitlines()) == 1501
    code, out, err = cli(data, "query", "select 1 as one", "--max-rows", "1")
    assert (code, err) == (0, "")


@pytest.mark.parametrize("width", [400, 30])
def test_lists_structs_and_maps_are_shown_as_json_not_as_python(monkeypatch, capsys, width):
    """A quarantined record's ``reasons``, a batch's ``segments`` or a query's struct were
    drawn as Python's repr (``['unknown_campaign']``, ``[Decimal('1.5')]``,
    ``datetime.datetime(2026, …)``): a table cell reads as the JSON and CSV formats print it."""
    from decimal import Decimal

    monkeypatch.setenv("COLUMNS", str(width))
    rows = [
        {
            "reasons": ["unknown_campaign"],
            "numbers": [Decimal("1.5"), 2],
            "struct": {"at": datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC), "k": None},
        }
    ]
    capsys.readouterr()
    print_rows(rows, Format.table)
    flat = re.sub(r"[│┃\s]+", "", capsys.readouterr().out)
    assert '["unknown_campaign"]' in flat
    assert "[1.5,2]" in flat
    assert '{"at":"2026-11-20T01:02:03+00:00","k":null}' in flat
    assert not any(python in flat for python in ("['", "Decimal(", "datetime.", "None"))


@pytest.mark.parametrize("width", [80, 30])
def test_a_title_in_brackets_and_why_it_is_in_blocks_read_as_one(monkeypatch, capsys, width):
    """The demo's report said ``campaigns by day (first 15 rows) (one record per block: …)``."""
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    print_rows(ROWS, Format.table, title="campaigns (first 3 rows)")
    flat = " ".join(capsys.readouterr().out.split())
    said = f"campaigns (first 3 rows; one record per block: too wide for {width} columns)"
    assert said in flat and ") (" not in flat


WIDE = [
    {
        "campaign_id": f"cmp-{i:03d}",
        "day": "2026-12-06",
        **{f"measure_{n:02d}": 1_000 * i + n for n in range(16)},
    }
    for i in range(1, 4)
]
NARROWING = Narrowing(("campaign_id", "day"), ("measure_05", "measure_00", "measure_15"))


@pytest.mark.parametrize("width", [80, 100])
def test_a_report_too_wide_keeps_its_most_asked_columns_and_says_how_many_are_left(
    monkeypatch, capsys, width
):
    """18 columns on a 100-column terminal were one 19-line block per record: a scroll
    through pages for one number. The keys and the most asked columns that fit make a
    table, in the table's order, and one line on stderr says what was left out."""
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    narrowing = Narrowing(("campaign_id", "day"), tuple(f"measure_{n:02d}" for n in range(16)))
    print_rows(WIDE, Format.table, title="campaigns", narrowing=narrowing)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "one record per block" not in out and max(len(line) for line in lines) <= width
    shown = _measures_shown(lines)
    assert shown[0] == 0 and shown == sorted(shown)  # the most asked first, in table order
    assert sum("cmp-" in line for line in lines) == len(WIDE)
    left = 16 - len(shown)
    assert err == (
        f"{left} more columns, too wide for {width}: --columns all or --format json|csv "
        "shows them\n"
    )
    assert len(err.rstrip("\n")) <= 80


def test_a_narrowed_table_keeps_the_columns_asked_first_in_its_own_order(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "70")
    capsys.readouterr()
    print_rows(WIDE, Format.table, narrowing=NARROWING)
    out, err = capsys.readouterr()
    assert _measures_shown(out.splitlines()) == [0, 5, 15]
    assert err.startswith("13 more columns, too wide for 70:")


def _measures_shown(lines: list[str]) -> list[int]:
    """The ``measure_NN`` columns a table of ``WIDE`` shows, as NN, read from its first row
    (headers may be wrapped): its cells are the campaign, the day, then 1,000 + NN."""
    first = next(line for line in lines if "cmp-001" in line)
    cells = [cell.strip() for cell in first.strip("│").split("│")]
    assert cells[:2] == ["cmp-001", "2026-12-06"]
    return [int(cell.replace(",", "")) - 1_000 for cell in cells[2:]]


def test_a_terminal_too_narrow_for_the_keys_and_one_more_gets_every_record_whole(
    monkeypatch, capsys
):
    monkeypatch.setenv("COLUMNS", "30")
    capsys.readouterr()
    print_rows(WIDE, Format.table, title="campaigns", narrowing=NARROWING)
    out, err = capsys.readouterr()
    flat = " ".join(out.split())
    assert "one record per block" in flat and "measure_15 3,015" in flat and err == ""


def test_json_and_csv_keep_every_column_whatever_the_narrowing(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    print_rows(WIDE, Format.json, narrowing=NARROWING)
    assert [set(row) for row in json.loads(capsys.readouterr().out)] == [set(WIDE[0])] * 3
    print_rows(WIDE, Format.csv, narrowing=NARROWING)
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == ",".join(WIDE[0]) and err == ""


SETTINGS = [
    {
        "setting": "data_dir",
        "value": "/srv/advertisex/data",
        "origin": "environment ADVERTISEX_DATA_DIR",
    },
    {
        "setting": "maintenance.orphan_metadata_min_age_minutes",
        "value": "10.0",
        "origin": "default",
    },
    {"setting": "collector.api_keys", "value": "k" * 70, "origin": "file /etc/advertisex.toml"},
    {
        "setting": "monitor.rate_max",
        "value": '{\n  "quarantine": 0.02,\n  "a_long_key_of_a_mapping_folded": 0.5\n}',
        "origin": "default",
    },
]


@pytest.mark.parametrize("width", [70, 80, 100])
def test_a_folded_table_keeps_every_column_and_prints_every_value_whole(monkeypatch, capsys, width):
    monkeypatch.setenv("COLUMNS", str(width))
    capsys.readouterr()
    print_rows(SETTINGS, Format.table, narrowing=Folding(("value", "origin", "setting")))
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert "one record per block" not in out and err == ""
    assert max(len(line) for line in lines) <= width
    body = [line.strip("│").split("│") for line in lines if line.startswith("│")]
    for i, name in enumerate(SETTINGS[0]):
        down = "".join("".join(row[i].split()) for row in body)
        assert down == "".join("".join(r[name].split()) for r in SETTINGS), name


def test_a_folded_table_too_narrow_for_its_least_widths_is_one_record_per_block(
    monkeypatch, capsys
):
    """Three columns of at least 20 cells and their borders need 70."""
    monkeypatch.setenv("COLUMNS", "69")
    capsys.readouterr()
    folding = Folding(("value", "origin", "setting"))
    print_rows(SETTINGS, Format.table, title="settings", narrowing=folding)
    assert "one record per block" in capsys.readouterr().out


def test_a_fold_breaks_where_a_reader_would_and_keeps_a_jsons_indent():
    assert _fold("environment ADVERTISEX_DATA_DIR", 20) == "environment\nADVERTISEX_DATA_DIR"
    assert _fold("/srv/advertisex/data", 12) == "/srv/\nadvertisex/\ndata"
    assert _fold('  "a_long_key": 0.5', 12) == '  "a_long_\n  key": 0.5'
    assert _fold("abcdefgh ij", 4) == "abcd\nefgh\nij"
    assert _fold("line one\n\nline two", 20) == "line one\n\nline two"


def test_an_elided_table_is_drawn_without_loading_rich(monkeypatch, capsys):
    """The ``…`` column is one cell wide as ∅ is: the table stays plain text."""
    from advertisex.cli import output

    monkeypatch.setenv("COLUMNS", "60")
    loaded = []
    monkeypatch.setattr(output, "console", lambda stderr=False: loaded.append(1))
    capsys.readouterr()
    print_rows(WIDE, Format.table, narrowing=Eliding())
    out, err = capsys.readouterr()
    assert not loaded and "│ cmp-001     │ 2026-12-06 │ … │" in out
    assert err.startswith("14 columns hidden at …:")
