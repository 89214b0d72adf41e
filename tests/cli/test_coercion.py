"""Text, flag, choice and list-of-text parameters parsed without pydantic answer what Typer's own
coercion answers: the same values, and for a value they do not take the same error and exit
code (Typer's pydantic coercion says it)."""

from __future__ import annotations

import enum
from typing import Literal

import pytest
import typer
import typer.core
from typer._coercion import build_runtime_param
from typer.testing import CliRunner

from advertisex.cli import coercion


class Colour(enum.StrEnum):
    red = "red"
    green = "green"


app = typer.Typer()


@app.command()
def show(
    text: str,
    colour: Colour = typer.Option(Colour.red, "--colour", "-c"),
    shade: Colour = typer.Option(Colour.green, case_sensitive=False),
    size: Literal["s", "m"] = typer.Option("s"),
    loud: bool = typer.Option(False, "--loud", envvar="SHOW_LOUD"),
    count: int = typer.Option(1),
    ratio: float = typer.Option(0.5),
    tags: list[str] = typer.Option([], "--tag"),
) -> None:
    print(repr((text, colour, shade, size, loud, count, ratio, tags)))


ARGS = [
    ["hello"],
    ["hello", "-c", "green", "--shade", "RED", "--size", "m", "--loud", "--count", "3"],
    ["hello", "--colour", "blue"],
    ["hello", "--colour", "GREEN"],
    ["hello", "--size", "xl"],
    ["hello", "--count", "x"],
    ["hello", "--count", "007", "--ratio", "2.5"],
    ["hello", "--count", "1.0"],
    ["hello", "--count", "True"],
    ["hello", "--ratio", "1e3"],
    ["hello", "--ratio", "x"],
    ["hello", "--ratio", "3"],
    ["--colour", "red"],
    ["hello", "--colour"],
    ["hello", "--tag", "a", "--tag", "", "--tag", "c d"],
    ["hello", "--tag"],
]


def answers(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize("args", ARGS)
def test_the_same_values_errors_and_exit_codes_as_typer(monkeypatch, args):
    coercion.install()
    ours = answers(args)
    monkeypatch.setattr(typer.core._TyperParameter, "get_runtime_param", TYPER_BUILDS)
    assert answers(args) == ours


def test_a_flag_from_the_environment_goes_through_typer(monkeypatch):
    coercion.install()
    ours = [answers(["x"], {"SHOW_LOUD": v}) for v in ("1", "no", "maybe")]
    monkeypatch.setattr(typer.core._TyperParameter, "get_runtime_param", TYPER_BUILDS)
    assert [answers(["x"], {"SHOW_LOUD": v}) for v in ("1", "no", "maybe")] == ours


def test_text_choices_lists_of_texts_and_numbers_defaults_need_no_pydantic():
    coercion.install()
    command = typer.main.get_command(app)
    kinds = {p.name: type(p.get_runtime_param()).__name__ for p in command.params}
    assert set(kinds.values()) == {"_PlainRuntimeParam"}
    # A number's default is taken as it is; a number given as text goes to Typer's adapter.
    ratio = next(p for p in command.params if p.name == "ratio").get_runtime_param()
    assert ratio._coerce_value(0.5, param=None, ctx=None) == 0.5
    assert ratio._coerce_value("2.5", param=None, ctx=None) == 2.5
    # Texts come as Click's tuple, and leave as a list (ingest's paths).
    tags = next(p for p in command.params if p.name == "tags").get_runtime_param()
    assert tags._coerce_value(("a", "b"), param=None, ctx=None) == ["a", "b"]


def TYPER_BUILDS(param):
    """Typer 0.29's own ``get_runtime_param``: every parameter through its pydantic adapter."""
    if param._runtime_param is None:
        param._runtime_param = build_runtime_param(param.type_descriptor)
    return param._runtime_param
