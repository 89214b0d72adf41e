"""Segment names per collector, and crash recovery of the segments a collector left open.

Labels are ``<collector id>.<boot>.<sequence>``: the id tells collectors sharing a
landing zone apart (and lets a restarted collector find its own unsealed files), the
boot token and sequence keep names unique across restarts and writers.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import threading

from advertisex.collector.writer import Sealed
from advertisex.landing.zone import LandingZone

_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_collector_id(raw: str) -> str:
    """Letters, digits, ``_`` and ``-`` only: a dot separates the id from the rest of a label."""
    return _ID_SAFE.sub("_", raw).strip("_") or "collector"


class Labels:
    """Segment labels ``<id>.<boot>.<sequence>``, unique across writers and restarts."""

    def __init__(self, collector_id: str, boot: str | None = None) -> None:
        self.collector_id = collector_id
        self.boot = boot or new_boot()
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            n = next(self._sequence)
        return f"{self.collector_id}.{self.boot}.{n:06d}"


def new_boot() -> str:
    """A fresh boot token: hex, so a label stays ``<id>.<hex>.<sequence>``."""
    return secrets.token_hex(4)


def recover(
    zone: LandingZone,
    collector_id: str,
    on_sealed: Sealed | None = None,
    boot: str | None = None,
) -> list[str]:
    """Seal the unsealed NDJSON segments a previous run of this collector left behind
    (with ``boot``: only those of that run, e.g. one worker that died while the others
    go on).

    Their bytes include every acknowledged request (each was fsync'd before its answer);
    a torn last line — possible only after a power cut — is cut off. Leftover per-request
    Avro files were never acknowledged (the answer waits for the rename) and are removed.
    """
    pattern = re.compile(
        r"^\.\d{8}T\d{6}\d*Z-"
        + re.escape(collector_id)
        + (r"\." + re.escape(boot) if boot else r"\.[0-9a-f]+")
        + r"\.\d+\.(\w+)\.tmp$"
    )
    recovered: list[str] = []
    for temporary in zone.unsealed():
        match = pattern.match(temporary.name)
        if not match:
            continue  # another collector's, or a batch ingest's, file: not ours to touch
        final = temporary.with_name(temporary.name[1:-4])
        if match.group(1) != "ndjson":
            temporary.unlink(missing_ok=True)
            continue
        data = temporary.read_bytes()
        keep = data[: data.rfind(b"\n") + 1]
        if not keep:
            temporary.unlink(missing_ok=True)
            continue
        if len(keep) != len(data):
            with open(temporary, "r+b") as handle:
                handle.truncate(len(keep))
                os.fsync(handle.fileno())
        zone.seal(temporary, final)
        name = final.relative_to(zone.root).as_posix()
        recovered.append(name)
        if on_sealed:
            on_sealed(name, len(keep))
    return recovered
