"""The console script itself: its version, shell completion and usage errors."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

import advertisex


def test_version_prints_the_package_version(cli, tmp_path):
    code, out, err = cli(tmp_path / "data", "--version")
    assert (code, out.strip(), err) == (0, f"advertisex {advertisex.__version__}", "")


def test_bash_completion_offers_verbs_and_subcommands(cli, tmp_path):
    data = tmp_path / "data"
    complete = {"_ADVERTISEX_COMPLETE": "complete_bash"}
    code, out, _ = cli(data, **complete, COMP_WORDS="advertisex qu", COMP_CWORD="1")
    assert code == 0 and set(out.split()) == {"query", "quarantine"}
    code, out, _ = cli(data, **complete, COMP_WORDS="advertisex report ca", COMP_CWORD="2")
    assert code == 0 and out.split() == ["campaigns"]


def test_zsh_and_fish_completion_describe_the_verbs(cli, tmp_path):
    data, args = tmp_path / "data", {"_TYPER_COMPLETE_ARGS": "advertisex qu"}
    code, out, _ = cli(data, _ADVERTISEX_COMPLETE="complete_zsh", **args)
    assert code == 0 and '"query":"Run read-only SQL' in out and '"quarantine"' in out
    fish = {"_TYPER_COMPLETE_FISH_ACTION": "get-args"}
    code, out, _ = cli(data, _ADVERTISEX_COMPLETE="complete_fish", **args, **fish)
    assert code == 0 and {line.split("\t")[0] for line in out.splitlines()} == {
        "query",
        "quarantine",
    }


def test_every_verb_is_listed_with_the_module_that_registers_it():
    import pkgutil

    import typer
    from typer.main import get_group

    import advertisex.cli
    from advertisex.cli.app import VERBS

    modules = {f"advertisex.cli.{m.name}" for m in pkgutil.iter_modules(advertisex.cli.__path__)}
    for module in sorted(modules):
        verbs = typer.Typer()
        register = getattr(importlib.import_module(module), "register", None)
        if register is None:
            continue
        register(verbs)
        registered = set(get_group(verbs).commands)
        assert registered == {v for v, m in VERBS.items() if m == module}, module
    assert set(VERBS.values()) <= modules


@pytest.mark.parametrize(
    ("args", "said", "help_of"),
    [
        (["procss"], "no such command 'procss'. Did you mean 'process'?", "advertisex"),
        (["--bogus"], "no such option: --bogus", "advertisex"),
        (["report", "bogus"], "no such command 'bogus'", "advertisex report"),
        (["process", "--bogus"], "no such option: --bogus (Possible options: --verbose)",
         "advertisex process"),
        (["process", "--interval"], "option '--interval' requires an argument",
         "advertisex process"),
        (["process", "stray"], "got unexpected extra argument(s) (stray)", "advertisex process"),
        (["query"], "missing argument 'sql'", "advertisex query"),
        (["report", "campaigns", "--format", "xml"],
         "invalid value for '--format' / '-f': 'xml' is not one of 'table', 'json', 'csv'",
         "advertisex report campaigns"),
        (["quarantine", "show", "--limit", "ten"],
         "invalid value for '--limit' / '-n': not a whole number", "advertisex quarantine show"),
        (["dims", "load", "--kind"], "option '--kind' requires an argument",
         "advertisex dims load"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_error_line_and_where_to_look(cli, tmp_path, args, said, help_of):
    """Click's boxed "Usage: … Try … ╭─ Error ─╮" panel was all a mistyped command got; now
    it is the line every other error is, with the command's --help as what to do."""
    code, out, err = cli(tmp_path / "data", *args)
    assert code == 2 and out == "", err
    lists = "commands" if help_of in ("advertisex", "advertisex report") else "options"
    assert err == f"error: {said}\n  → run {help_of} --help to see its {lists}\n"
    assert not (tmp_path / "data").exists()


def test_help_is_still_help(cli, tmp_path):
    code, out, err = cli(tmp_path / "data", "process", "--help")
    assert code == 0 and "Usage: advertisex process [OPTIONS]" in out and err == ""
    code, out, err = cli(tmp_path / "data", "report")  # a group named alone: its help
    assert code == 2 and "Usage: advertisex report [OPTIONS] COMMAND" in out + err
    assert "error:" not in out + err


def _commands() -> list[tuple[str, ...]]:
    """Every verb and subcommand, as the words that name it (``("report", "campaigns")``)."""
    from typer._click.core import Context
    from typer.main import get_command

    from advertisex.cli.app import VERBS, app

    top = get_command(app)
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        if hasattr(command, "list_commands"):
            context = Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), (*path, name))

    for verb in VERBS:
        walk(top.get_command(Context(top), verb), (verb,))
    return found


def test_every_help_says_all_its_text_as_written(cli, tmp_path):
    """Typer reads help as Rich markup: ``[default: monitor.interval_seconds]`` vanished
    from ``monitor --help`` (a tag Rich did not know, dropped), a docstring's reST
    (````process --follow````) was printed with its backquotes and its second paragraph
    with the source's line breaks, mid-sentence. Each option's help appears whole, each
    paragraph of a command's on one line of a wide terminal, and no help shows reST, nor
    Typer's Python types (``--dry-run <bool>``, ``--table <list[str]>``)."""
    from typer.main import get_command

    from advertisex.cli.app import app

    top = get_command(app)
    for path in _commands():
        code, out, err = cli(tmp_path / "data", *path, "--help", COLUMNS="400")
        assert code == 0 and err == "", path
        assert "``" not in out, path
        # a flag shows no type (``--dry-run <bool>`` read as a value to give), a list its items'
        assert "<bool>" not in out and "<list[" not in out, path
        shown = re.sub(r"[│\s]+", " ", out)
        command = top
        for name in path:
            command = command.get_command(None, name)  # type: ignore[arg-type]
        lines = [" ".join(line.strip(" │").split()) for line in out.splitlines()]
        for paragraph in (command.help or "").split("\n\n"):
            assert " ".join(paragraph.split()) in lines, (path, paragraph)
        for param in command.params:
            said = getattr(param, "help", None)
            if said:
                assert " ".join(said.split()) in shown, (path, param.name)
