"""The monitor's table: ``ops.alerts``, one row per alert state change.

Every table schema lives in ``model``; the registry in ``advertisex.model.schemas``
registers this one too. Rows are transitions (``pending``, ``firing``, ``resolved``), written
when they happen; the live state of each alert is kept in the monitor's state file
(see :mod:`advertisex.monitor.state`), which is rewritten every evaluation.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from advertisex.model.columns import TS

ALERTS = pa.schema(
    [
        pa.field("at", TS, nullable=False),  # when the transition happened
        pa.field("alertname", pa.string(), nullable=False),
        pa.field("state", pa.string(), nullable=False),  # pending | firing | resolved
        pa.field("severity", pa.string(), nullable=False),  # critical | warning | info
        pa.field("source", pa.string()),  # the alert's source label, when it has one
        pa.field("labels", pa.string(), nullable=False),  # JSON object of every label
        pa.field("fingerprint", pa.string(), nullable=False),
        pa.field("active_since", TS, nullable=False),
        pa.field("value", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("summary", pa.string(), nullable=False),
    ]
)

ALERTS_TABLE = "ops.alerts"

# TableSpec keyword arguments for the registry in advertisex.model.schemas.
MONITOR_TABLES: list[dict[str, Any]] = [
    {"namespace": "ops", "name": "alerts", "schema": ALERTS, "partition_by_day": "at"},
]
