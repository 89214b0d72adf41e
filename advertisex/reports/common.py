"""What every report shares: its options, the models, and running SQL over the marts.

Reports are named questions answered with DuckDB over the Iceberg tables (marts first:
they are small and pre-correlated; curated tables only where a question needs single
events, such as impressions per user).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from advertisex.errors import UserInputError
from advertisex.util.timeutil import day_start

if TYPE_CHECKING:
    import pyarrow as pa

    from advertisex.lake.tables import Lake


class Platform(Protocol):
    """What a report reads: the lake (``advertisex.api.Platform`` is one)."""

    @property
    def lake(self) -> Lake: ...


# Model → (credit column, value column) of marts.campaign_hourly and marts.campaign_daily.
MODELS = {
    "last": ("conv_last", "value_last"),
    "first": ("conv_first", "value_first"),
    "linear": ("conv_linear", "value_linear"),
}


# The exclusive end of a range without an end: a few days before the last a date holds.
_OPEN_HIGH = datetime(9999, 12, 30, tzinfo=UTC)


@dataclass(frozen=True)
class ReportOptions:
    """Days ``start``..``end`` (inclusive, UTC), one campaign or all, an attribution model."""

    start: date | None = None
    end: date | None = None
    campaign: str | None = None
    model: str = "last"
    # Invalid traffic is excluded from every figure; True adds it beside them, disclosed.
    include_ivt: bool = False

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise UserInputError(
                f"unknown attribution model {self.model!r}",
                hint="use --model last, first or linear",
            )
        if self.start and self.end and self.end < self.start:
            raise UserInputError(
                f"--to {self.end} is before --from {self.start}", hint="swap the two dates"
            )

    @property
    def low(self) -> datetime:
        return day_start(self.start) if self.start else datetime(1, 1, 2, tzinfo=UTC)

    @property
    def high(self) -> datetime:
        """Exclusive end: midnight after ``end`` (no end, or one in the last days a date
        holds — ``--to 9999-12-31``, whose next midnight is past them —: open)."""
        if self.end is None or self.end >= _OPEN_HIGH.date():
            return _OPEN_HIGH
        return day_start(self.end) + timedelta(days=1)

    @property
    def credit(self) -> str:
        return MODELS[self.model][0]

    @property
    def value(self) -> str:
        return MODELS[self.model][1]

    def where(self, time_column: str, campaign_column: str = "campaign_id") -> str:
        """SQL condition for the date range (``$low``/``$high``) and the campaign."""
        condition = f"{time_column} >= $low AND {time_column} < $high"
        return condition + (f" AND {campaign_column} = $campaign" if self.campaign else "")

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.campaign:
            params["campaign"] = self.campaign
        return params


def run(ax: Platform, sql: str, tables: tuple[str, ...], options: ReportOptions) -> pa.Table:
    """Report SQL over views of ``tables`` with the options' parameters, as an Arrow table."""
    con, params = _prepared(ax, sql, tables, options, relational=True)
    return con.sql(sql, params=params).to_arrow_table()


def rows(
    ax: Platform, sql: str, tables: tuple[str, ...], options: ReportOptions
) -> tuple[list[str], list[dict[str, Any]]]:
    """:func:`run` as (column names, row dicts) straight from DuckDB: the CLI's path, which
    so never loads Arrow (and NumPy with it), nor DuckDB's relational API, to print a few
    hundred rows."""
    con, params = _prepared(ax, sql, tables, options, relational=False)
    con.execute(sql, params)
    columns = [column[0] for column in con.description]
    return columns, [dict(zip(columns, row, strict=True)) for row in con.fetchall()]


def _prepared(
    ax: Platform, sql: str, tables: tuple[str, ...], options: ReportOptions, relational: bool
) -> tuple[Any, dict[str, Any]]:
    """A DuckDB connection with a view per table of ``tables`` over its current files, and
    the options' parameters ``sql`` names.

    Uses the per-thread DuckDB connection of the kernels (opening a DuckDB database
    costs more than a report query).
    """
    from advertisex.lake.query import register_view
    from advertisex.util import engine

    con = engine.connection(relational)
    for name, files in ax.lake.data_files_of(list(tables)).items():
        register_view(con, name, files, ax.lake.settings.scale)
    return con, {k: v for k, v in options.params().items() if f"${k}" in sql}
