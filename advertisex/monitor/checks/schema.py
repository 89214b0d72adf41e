"""Schema drift: fields that appear, fields that disappear, fields whose type changes.

The ``fields`` aggregate counts, per curated table and hour, the rows that fill each
optional column and each key of ``extras`` (the unknown producer fields every curated
row keeps) with its JSON type. The last complete hour is compared with the hours before
it in the lookback: a field never seen before is new (info); a field that most rows had
and no row has now is missing (warning); a field arriving with a type it never had is a
type change (warning).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.stats import split_sums
from advertisex.monitor.model import HOUR, Finding, Observations

FIELD_KEYS = ["table", "field", "type"]
# Source label per curated table (for grouping alerts with their source's other alerts).
_SOURCE = {
    "curated.impressions": "impressions",
    "curated.clicks": "clicks",
    "curated.conversions": "clicks",
    "curated.bid_requests": "bids",
}


def schema(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    hour = obs.settled(timedelta(seconds=cfg.settle_seconds)) - HOUR
    past_rows, hour_rows = split_sums(obs.tables, "hour", hour, ["table"], ["rows"])
    seen_rows = {t: v["rows"] for (t,), v in past_rows.items()}  # per table, earlier hours
    before: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    now: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    past_fields, hour_fields = split_sums(obs.fields, "hour", hour, FIELD_KEYS, ["rows"])
    for sums, target in ((past_fields, before), (hour_fields, now)):
        for (table, name, kind), v in sums.items():
            target[(table, name)][kind] += v["rows"]
    findings = []
    for (table, name), types in sorted(now.items()):
        labels = {"source": _SOURCE.get(table, table), "table": table, "field": name}
        past = before.get((table, name))
        if past is None:
            if seen_rows.get(table, 0) > 0:
                findings.append(
                    Finding(
                        "SchemaNewField",
                        labels,
                        "info",
                        f"{table}: new field {name!r} ({', '.join(sorted(types))}) in "
                        f"{int(sum(types.values())):,} rows at {hour:%Y-%m-%d %H}:00 UTC",
                    )
                )
            continue
        new_types = sorted(set(types) - set(past))
        if new_types and "column" not in types:
            usual = max(past, key=lambda t: past[t])
            findings.append(
                Finding(
                    "SchemaTypeChanged",
                    {**labels, "type": new_types[0]},
                    "warning",
                    f"{table}: field {name!r} arrives as {', '.join(new_types)} "
                    f"(usually {usual}) at {hour:%Y-%m-%d %H}:00 UTC",
                )
            )
    for (table, name), types in sorted(before.items()):
        rows_now = hour_rows.get((table,), {}).get("rows", 0.0)
        share = sum(types.values()) / seen_rows[table] if seen_rows.get(table) else 0.0
        if rows_now >= cfg.schema_min_rows and share >= 0.5 and (table, name) not in now:
            findings.append(
                Finding(
                    "SchemaFieldMissing",
                    {"source": _SOURCE.get(table, table), "table": table, "field": name},
                    "warning",
                    f"{table}: field {name!r}, in {share:.0%} of earlier rows, is in none of "
                    f"the {int(rows_now):,} rows at {hour:%Y-%m-%d %H}:00 UTC",
                    0.0,
                    share,
                )
            )
    return findings
