"""The console script itself: its version and shell completion."""

from __future__ import annotations

import importlib

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
