"""Reading what a page or API request asks for: dates, instants, models, selections.

A bad value is a :class:`UserInputError` naming the parameter and showing a good one;
the web layer turns it into a 400 (JSON ``code`` + ``message``, or the page's error box).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from advertisex.errors import UserInputError

MODELS = ("last", "first", "linear")
SOURCES = ("impressions", "clicks", "bids")


def text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def day(params: Mapping[str, Any], name: str) -> date | None:
    value = text(params, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserInputError(
            f"{name}={value!r} is not a date", hint=f"write {name}=2026-11-20"
        ) from None


def instant(params: Mapping[str, Any], name: str) -> datetime | None:
    from advertisex.util.timeutil import parse_instant

    value = text(params, name)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        raise UserInputError(
            f"{name}={value!r} is not an ISO-8601 instant or date",
            hint=f"write {name}=2026-11-20 or {name}=2026-11-20T06:00:00Z",
        ) from None


def integer(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = text(params, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise UserInputError(f"{name}={value!r} is not a whole number") from None
    if not low <= number <= high:
        raise UserInputError(f"{name}={number} is out of range", hint=f"use {low} to {high}")
    return number


def flag(params: Mapping[str, Any], name: str) -> bool:
    value = (text(params, name) or "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise UserInputError(f"{name}={value!r} is not true or false")
    return value in ("true", "1", "yes", "on")


def model(params: Mapping[str, Any]) -> str:
    value = text(params, "model") or "last"
    if value not in MODELS:
        raise UserInputError(
            f"unknown attribution model {value!r}", hint="use model=last, first or linear"
        )
    return value


def report_options(params: Mapping[str, Any]) -> dict[str, Any]:
    """``from``, ``to``, ``campaign``, ``model``, ``include_ivt`` → ReportOptions fields."""
    return {
        "start": day(params, "from"),
        "end": day(params, "to"),
        "campaign": text(params, "campaign"),
        "model": model(params),
        "include_ivt": flag(params, "include_ivt"),
    }


def selection(params: Mapping[str, Any]) -> dict[str, Any]:
    """``source``, ``reason``, ``since``, ``until`` → which quarantined records."""
    source = text(params, "source")
    if source is not None and source not in SOURCES:
        raise UserInputError(f"unknown source {source!r}", hint="use " + ", ".join(SOURCES))
    return {
        "source": source,
        "reason": text(params, "reason"),
        "since": instant(params, "since"),
        "until": instant(params, "until"),
    }
