"""What reached the disk in a test: the paths fsync'd, and the files renamed into place, in
order — what the durability tests hold a write's order against."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest


def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths fsync'd from now on, in order (any thread), each once its fsync returned."""
    synced: list[str] = []
    _watch_fsync(monkeypatch, synced.append)
    return synced


def disk_events(
    monkeypatch: pytest.MonkeyPatch, naming: tuple[Any, str] | None = None
) -> list[tuple[str, str]]:
    """("fsync", path) of every fsync from now on, in order (any thread); with ``naming`` —
    the owner and name of a rename, as ``(os, "replace")`` — also ("named", target) each
    time it has renamed a file into place."""
    events: list[tuple[str, str]] = []
    _watch_fsync(monkeypatch, lambda path: events.append(("fsync", path)))
    if naming is not None:
        owner, name = naming
        rename = getattr(owner, name)

        def watched(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            done = rename(source, target, *args, **kwargs)
            events.append(("named", str(target)))
            return done

        monkeypatch.setattr(owner, name, watched)
    return events


def _watch_fsync(monkeypatch: pytest.MonkeyPatch, record: Callable[[str], None]) -> None:
    fsync = os.fsync

    def watched(fd: int) -> None:
        fsync(fd)
        record(os.readlink(f"/proc/self/fd/{fd}"))

    monkeypatch.setattr(os, "fsync", watched)
