"""Text and choice parameters read without pydantic: Typer 0.29 coerces every parameter
that is not a flag through a pydantic ``TypeAdapter``, and importing pydantic for that costs
``advertisex query "select 1"`` about a third of its instructions.

A parameter whose type is ``str``, ``bool``, an ``Enum`` or a ``Literal`` gets a coercion
that does what Typer's adapter does for such a value with the same pydantic-free helpers
Typer's adapter calls inside (a ``str`` or a ``bool`` stays itself, a choice goes through
Typer's ``coerce_cli_choice``); any value it does not take that way (a wrong choice, a flag
from an environment variable, bytes …) goes to Typer's own pydantic coercion, so errors,
their wording and exit codes are Typer's. An ``int`` or ``float`` parameter takes only a
value of its own type as it is — its default: ``process --interval 0.5`` built Typer's
adapter (≈ 0.1 s of every run's start) for a default it returns unchanged — and any text
given for it goes to Typer's coercion. A ``list[str]`` (``ingest``'s paths) takes texts as
the list of them Typer's adapter makes (the adapter's pydantic types and their build were
≈ 0.05 s of ``ingest``'s start). Other types (paths, dates) keep Typer's.
The hook is the method that builds a parameter's coercion on first use
(``_TyperParameter.get_runtime_param``, Typer 0.29); on a Typer without it every parameter
keeps Typer's own coercion (slower, never different), and ``tests/cli/test_startup.py``
fails on the pydantic it then loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, get_args, get_origin

import typer.core
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer._param_types import coerce_cli_choice, lenient_issubclass
from typer._typing import is_literal_type, literal_values


@dataclass(frozen=True)
class _PlainRuntimeParam(RuntimeParam):
    """A ``str``, flag, number or choice parameter: Typer's answer for the values it takes as
    they are, Typer's pydantic coercion (built on first need) for anything else."""

    descriptor: TypeDescriptor
    choices: tuple[Any, ...] | None
    texts: bool = False  # a list[str]: Click's tuple of texts, as a list

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        if self.texts:
            if isinstance(value, tuple | list) and all(type(item) is str for item in value):
                return list(value)
        elif self.choices is None:
            if type(value) is self.annotation:  # str, a flag's bool, a number's default
                return value
        else:
            try:
                return coerce_cli_choice(
                    value,
                    choices=self.choices,
                    case_sensitive=self.parameter_info.case_sensitive,
                    ctx=ctx,
                )
            except ValueError:
                pass  # Typer's adapter says what is wrong, in its own words
        return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)


def install() -> None:
    """Make every Typer parameter built from now on try the coercion above first (the
    ``--help`` flags too, which Click makes per call). Does nothing on a Typer without the
    hook."""
    parameter = getattr(typer.core, "_TyperParameter", None)
    if getattr(parameter, "get_runtime_param", None) in (None, _runtime_param):
        return
    parameter.get_runtime_param = _runtime_param  # type: ignore[union-attr]


def _runtime_param(param: Any) -> RuntimeParam:
    """Typer's ``_TyperParameter.get_runtime_param``, with the plain coercion for a
    ``str``, flag or choice parameter."""
    if param._runtime_param is None:
        descriptor = param.type_descriptor
        param._runtime_param = _plain(descriptor) or build_runtime_param(descriptor)
    return param._runtime_param  # type: ignore[no-any-return]


def _plain(descriptor: TypeDescriptor) -> _PlainRuntimeParam | None:
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if descriptor.file_annotation is not None or info.parser is not None:
        return None
    texts = get_origin(annotation) is list and get_args(annotation) == (str,)
    if (
        annotation in (str, bool, int, float) or texts
    ):  # a number: only its default is taken as it is
        choices = None
    elif lenient_issubclass(annotation, Enum):
        choices = tuple(annotation)
    elif is_literal_type(annotation):
        choices = tuple(literal_values(annotation))
    else:
        return None
    return _PlainRuntimeParam(
        parameter_info=info,
        annotation=annotation,
        descriptor=descriptor,
        choices=choices,
        texts=texts,
    )
