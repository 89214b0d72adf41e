"""The monitor's live state: current alerts, incident groups and the notification outbox.

Kept in one small SQLite file (``<data_dir>/monitor/state.db``), not in Iceberg: it is
rewritten every evaluation (every minute), and each Iceberg commit would add a snapshot
and a metadata file for a few rows that change in place. SQLite gives the same
all-or-nothing writes with in-place updates, and survives restarts, so a monitor that
is killed neither re-sends a notification nor forgets one still owed. The history of
state changes, which is append-only, goes to ``ops.alerts`` in the lake. Pass
``path=None`` for an in-memory store (unit tests, simulations).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from advertisex.util import jsonutil

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (fingerprint TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (key TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  next_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  delivered_at TEXT,
  failed_at TEXT,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, failed_at, next_at);
CREATE TABLE IF NOT EXISTS aggregates (
  name TEXT NOT NULL, hour TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (name, hour)
);
"""


def _arrivals_name(source: str, epoch: int) -> str:
    return f"arrivals:{source}:{epoch}"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    channel: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    next_at: datetime


class StateStore:
    """Alerts and groups as JSON documents by key; the outbox as rows. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        self._lock = threading.RLock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------ documents
    def load(self, kind: str) -> dict[str, dict[str, Any]]:
        """Every document of ``kind`` (``alerts`` or ``groups``) by key."""
        column = "fingerprint" if kind == "alerts" else "key"
        with self._lock:
            rows = self._db.execute(f"SELECT {column}, data FROM {kind}").fetchall()
        return {key: jsonutil.loads(data) for key, data in rows}

    def save(self, kind: str, documents: dict[str, dict[str, Any]]) -> None:
        """Replace all documents of ``kind`` (call inside :meth:`transaction`)."""
        column = "fingerprint" if kind == "alerts" else "key"
        with self._lock:
            self._db.execute(f"DELETE FROM {kind}")
            self._db.executemany(
                f"INSERT INTO {kind} ({column}, data) VALUES (?, ?)",
                [(k, jsonutil.dumps_str(v)) for k, v in documents.items()],
            )

    # ------------------------------------------------------------ aggregates
    def load_aggregates(
        self, hours: list[datetime], names: Collection[str]
    ) -> dict[tuple[str, datetime], pa.Table]:
        """Aggregates (``names``) of complete hours kept by an earlier run (Arrow IPC)."""
        import pyarrow.ipc as ipc

        wanted = {h.isoformat(): h for h in hours}
        marks = ", ".join("?" * len(names))
        with self._lock:
            rows = self._db.execute(
                f"SELECT name, hour, data FROM aggregates WHERE name IN ({marks})", list(names)
            ).fetchall()
        return {
            (name, wanted[hour]): ipc.open_stream(data).read_all()
            for name, hour, data in rows
            if hour in wanted
        }

    def save_aggregates(self, parts: dict[tuple[str, datetime], pa.Table], since: datetime) -> None:
        """Keep ``parts`` (complete hours never change) and forget hours before ``since``."""
        import pyarrow.ipc as ipc

        def encode(table: pa.Table) -> bytes:
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return bytes(sink.getvalue().to_pybytes())

        with self.transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO aggregates (name, hour, data) VALUES (?, ?, ?)",
                [(name, hour.isoformat(), encode(t)) for (name, hour), t in parts.items()],
            )
            self._db.execute("DELETE FROM aggregates WHERE hour < ?", (since.isoformat(),))

    def load_arrivals(
        self, keys: list[tuple[str, datetime]], epoch: int
    ) -> dict[tuple[str, datetime], pa.Table]:
        """Arrivals of final (source, hour)s kept by an earlier run as of the ledger's
        ``epoch`` (those of an earlier epoch are stale: a replay re-committed segments)."""
        names = {_arrivals_name(source, epoch): source for source, _ in keys}
        found = self.load_aggregates([hour for _, hour in keys], names)
        wanted = set(keys)
        found_keys = {(names[name], hour): table for (name, hour), table in found.items()}
        return {key: table for key, table in found_keys.items() if key in wanted}

    def save_arrivals(
        self, parts: dict[tuple[str, datetime], pa.Table], epoch: int, since: datetime
    ) -> None:
        """Keep final hours' arrivals, read at the ledger's ``epoch``."""
        named = {(_arrivals_name(source, epoch), hour): t for (source, hour), t in parts.items()}
        self.save_aggregates(named, since)

    # ------------------------------------------------------------ outbox
    def enqueue(self, channel: str, payload: dict[str, Any], at: datetime) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO outbox (channel, payload, created_at, next_at) VALUES (?, ?, ?, ?)",
                (channel, jsonutil.dumps_str(payload), at.isoformat(), at.isoformat()),
            )

    def pending(self) -> list[OutboxRow]:
        """Messages neither delivered nor given up on, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, payload, created_at, attempts, next_at FROM outbox "
                "WHERE delivered_at IS NULL AND failed_at IS NULL ORDER BY id"
            ).fetchall()
        return [
            OutboxRow(
                r[0],
                r[1],
                jsonutil.loads(r[2]),
                datetime.fromisoformat(r[3]),
                r[4],
                datetime.fromisoformat(r[5]),
            )
            for r in rows
        ]

    def mark(
        self,
        row_id: int,
        *,
        delivered_at: datetime | None = None,
        retry_at: datetime | None = None,
        failed_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "delivered_at = ?, failed_at = ?, next_at = coalesce(?, next_at) WHERE id = ?",
                (
                    error,
                    delivered_at.isoformat() if delivered_at else None,
                    failed_at.isoformat() if failed_at else None,
                    retry_at.isoformat() if retry_at else None,
                    row_id,
                ),
            )

    def outbox(self) -> list[dict[str, Any]]:
        """Every message with its delivery status (for ``status`` and tests)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, created_at, attempts, delivered_at, failed_at, last_error, "
                "payload FROM outbox ORDER BY id"
            ).fetchall()
        names = ["id", "channel", "created_at", "attempts", "delivered_at", "failed_at", "error"]
        return [
            {**dict(zip(names, r[:-1], strict=True)), "payload": jsonutil.loads(r[-1])}
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
