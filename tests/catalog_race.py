"""Two first runs on a new catalog: the other one creates the catalog's tables between this
one's check and its CREATE, which then fails in the database driver as it really does."""

from __future__ import annotations

from typing import Any

import pytest


def lose_every_create_race(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on each set of tables (pyiceberg's, the segment ledger's) is created by "the
    other process" just before this one's unchecked CREATE; returns the first table name of
    each set that lost its race, as they lose it."""
    from sqlalchemy import MetaData

    create_all = MetaData.create_all
    lost: list[str] = []

    def created_meanwhile(self: MetaData, bind: Any, *args: Any, **kwargs: Any) -> None:
        first = next(iter(self.tables))
        if first not in lost:
            create_all(self, bind, *args, **kwargs)  # the other process's CREATE
            lost.append(first)
            # This one's CREATE, its check made before the other's: it fails in the driver,
            # through the engine's error listeners (the ledger's engine translates it).
            create_all(self, bind, checkfirst=False)
            return
        create_all(self, bind, *args, **kwargs)

    monkeypatch.setattr(MetaData, "create_all", created_meanwhile)
    return lost
