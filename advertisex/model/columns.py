"""Column types every table schema shares (one definition, imported by each schema module)."""

from __future__ import annotations

import pyarrow as pa

# Every time AdvertiseX stores: UTC, microseconds (what Iceberg's timestamptz holds).
TS = pa.timestamp("us", tz="UTC")
