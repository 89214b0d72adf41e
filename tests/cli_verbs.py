"""The app's leaf commands and arguments that get each past parsing: what the CLI's sweeps
walk (``tests/cli/test_no_traceback.py`` and ``bench/sweep.py``), so a new verb or option
is swept by both."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def leaf_commands() -> list[tuple[tuple[str, ...], Any]]:
    """(verb, its click command) of every leaf command of the app, found by walking it."""
    import typer

    from advertisex.cli.app import app

    def walk(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
        if not hasattr(command, "list_commands"):
            return [(path, command)]
        context = typer.Context(command)  # the verbs load as they are asked for
        return [
            leaf
            for name in command.list_commands(context)
            for leaf in walk(command.get_command(context, name), (*path, name))
        ]

    return walk(typer.main.get_command(app), ())


def arguments(verb: tuple[str, ...], folder: Path, port: int) -> list[str]:
    """Arguments a user could well pass to ``verb``: enough to get past parsing (files
    under ``folder``, a server on ``port``)."""
    return {
        ("generate",): ["--out", str(folder / "gen"), "--events", "50", "--seed", "1"],
        ("ingest",): [str(folder / "drop.ndjson")],
        ("serve",): ["--port", str(port)],
        ("up",): ["--port", str(port)],
        ("console",): ["--port", str(port)],
        ("keygen",): ["--name", "ana"],
        ("sign-url",): ["--to", "https://shop.example/", "--campaign-id", "cmp-1"],
        ("query",): ["select count(*) from curated.impressions"],
        ("monitor",): ["--once"],
        ("forget",): ["--user-id", "u-1"],
        ("backup",): [str(folder / "backup")],
        ("demo",): ["--events", "50"],
        ("dims", "load"): [str(folder / "campaigns.csv")],
    }.get(verb, [])
