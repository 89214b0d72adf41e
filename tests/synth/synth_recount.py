"""An independent re-reading of what the generator wrote.

The recount parses the files with orjson, the csv module and fastavro (never the
generator's own code) and rebuilds the ground truth a pipeline would compute: first
occurrence of an id wins, a later same-payload copy is a duplicate, a different payload
a conflict, and anything unreadable or missing a required field is malformed.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import orjson

from advertisex.synth import FaultConfig

START = date(2026, 11, 20)
BOT_AGENT_MARKERS = ("Googlebot", "bingbot", "AhrefsBot", "HeadlessChrome", "python-requests")
CLICK_HEADER = (
    "event_id,timestamp,user_id,campaign_id,ad_creative_id,impression_id,"
    "event_type,conversion_type,conversion_value,currency"
)
FAULTS = FaultConfig(
    duplicate_rate=0.01, malformed_rate=0.01, late_rate=0.03, bot_rate=0.02, conflict_rate=0.005
)


@dataclass
class Table:
    """First occurrences of one curated table plus its repeat counts."""

    rows: dict[Any, dict[str, Any]] = field(default_factory=dict)
    payloads: dict[Any, Any] = field(default_factory=dict)
    duplicates: int = 0
    conflicts: int = 0
    late: int = 0

    def add(self, key: Any, payload: Any, row: dict[str, Any], file_hour: datetime) -> None:
        if key in self.payloads:
            if self.payloads[key] == payload:
                self.duplicates += 1
            else:
                self.conflicts += 1
            return
        self.payloads[key] = payload
        self.rows[key] = row
        if row["time"].replace(minute=0, second=0, microsecond=0) < file_hour:
            self.late += 1


@dataclass
class Recount:
    records: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    malformed_lines: list[bytes] = field(default_factory=list)
    tables: dict[str, Table] = field(default_factory=dict)


def file_hour(path: Path) -> datetime:
    stamp = path.stem.split("-", 1)[1]  # impressions-20261120-13 -> 20261120-13
    return datetime.strptime(stamp, "%Y%m%d-%H").replace(tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 (offset or not, naive = UTC) or epoch milliseconds; None if unusable."""
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value / 1000, tz=UTC)
        elif isinstance(value, str) and value:
            moment = datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        else:
            return None
    except (ValueError, OverflowError):
        return None
    moment = moment.astimezone(UTC)
    return moment if moment.year < 2100 else None


def recount(out: Path) -> Recount:
    result = Recount(
        tables={name: Table() for name in ("impressions", "clicks", "conversions", "bid_requests")}
    )
    for path in sorted((out / "impressions").glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            result.records["impressions"] += 1
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            moment = parse_time(obj.get("timestamp")) if isinstance(obj, dict) else None
            if not isinstance(obj, dict) or not obj.get("user_id") or moment is None:
                result.malformed["impressions"] += 1
                result.malformed_lines.append(line)
                continue
            row = {**obj, "time": moment}
            result.tables["impressions"].add(obj["impression_id"], line, row, file_hour(path))
    for path in sorted((out / "clicks").glob("*.csv")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(CLICK_HEADER + "\n")
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        for fields in reader:
            result.records["clicks"] += 1
            row = dict(zip(header, fields, strict=False))
            moment = parse_time(row.get("timestamp", ""))
            if (
                len(fields) != len(header)
                or row["event_type"] not in ("click", "conversion")
                or moment is None
                or not row["user_id"]
            ):
                result.malformed["clicks"] += 1
                result.malformed_lines.append(",".join(fields).encode())
                continue
            table = "clicks" if row["event_type"] == "click" else "conversions"
            row["time"] = moment
            result.tables[table].add(row["event_id"], tuple(fields), row, file_hour(path))
    for path in sorted((out / "bids").glob("*.avro")):
        with path.open("rb") as handle:
            for record in fastavro.reader(handle):
                result.records["bids"] += 1
                if None in (record["user_id"], record["auction_id"], record["timestamp"]):
                    result.malformed["bids"] += 1
                    continue
                key = (record["exchange"], record["auction_id"])
                row = {**record, "time": record["timestamp"]}
                result.tables["bid_requests"].add(key, record, row, file_hour(path))
    return result


def is_bot_agent(agent: str) -> bool:
    return any(marker in agent for marker in BOT_AGENT_MARKERS)
