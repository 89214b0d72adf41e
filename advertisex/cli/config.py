"""``advertisex config``: every setting in force and where its value comes from."""

from __future__ import annotations

from typing import Any

import typer

from advertisex.cli.common import FormatOption
from advertisex.cli.output import (
    Folding,
    Format,
    literal,
    print_json,
    print_message,
    print_rows,
)


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)


def show_config(fmt: Format = FormatOption) -> None:
    """Every setting in force, with its origin (default, file or environment); secrets masked."""
    from advertisex.config import config_file, load_settings, settings_in_force
    from advertisex.util import jsonutil

    rows = [
        {"setting": s.name, "value": s.value, "origin": s.origin, "source": s.source}
        for s in settings_in_force(load_settings())
    ]
    if fmt is Format.json:
        print_json(rows)
        return
    if fmt is Format.table:
        for row in rows:
            row["origin"] = f"{row['origin']} {row.pop('source')}".strip()
            row["value"] = _text(row["value"], jsonutil)
    print_rows(rows, fmt, title="settings in force", columns=list(rows[0]), narrowing=FOLDING)
    if fmt is Format.table:
        path = config_file()
        if path is None:
            print_message("no configuration file (ADVERTISEX_CONFIG is empty)")
        else:
            found = "read" if path.is_file() else "not found, defaults and environment only"
            print_message(f"configuration file {literal(path.resolve())}: {found}")


# Below ≈ 160 columns the values, then the origins, then the names fold inside their
# cells: the point of the table is each value beside its origin, so no column is left out.
FOLDING = Folding(("value", "origin", "setting"))


def _text(value: Any, jsonutil: Any) -> str:
    """A value for the table: a mapping or list too long for one line is indented JSON over
    several lines, so that the table keeps one row per setting instead of turning into
    one block per setting."""
    if isinstance(value, dict | list):
        text = jsonutil.dumps_str(value)
        return text if len(text) <= ONE_LINE_JSON else jsonutil.dumps_str(value, indent=True)
    return "∅" if value is None else str(value)


ONE_LINE_JSON = 48  # a setting, its value and its origin side by side in 160 columns
