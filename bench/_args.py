"""Argument types the bench scripts share: a bad value is argparse's one-line error
(exit 2), not a traceback from deep inside a run."""

from __future__ import annotations

import argparse
import re


def positive(text: str) -> int:
    """A whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def whole(text: str) -> int:
    """A whole number ≥ 0 (where 0 means "none" or "never")."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 0")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")  # refused below: nan is neither > 0 nor ≥ 0


def positive_number(text: str) -> float:
    """A number > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0")
    return value


def at_least_zero(text: str) -> float:
    """A number ≥ 0."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of at least 0")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds > 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def spark_runs(text: str) -> str:
    """A comma-separated list of ``embedded`` and ``local[N]`` (N ≥ 1)."""
    for run in text.split(","):
        if run != "embedded" and not re.fullmatch(r"local\[[1-9][0-9]*\]", run):
            raise argparse.ArgumentTypeError(
                f"{run!r}: give embedded or local[N] (e.g. 'embedded,local[2]')"
            )
    return text
