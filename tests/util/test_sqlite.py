import sqlite3

import pytest

from advertisex.util.sqlite import execute_while_locked, open_shared


class _LockedFor:
    """A connection whose statements meet "database is locked" ``times`` times first."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.left, self.message, self.ran = times, message, []

    def execute(self, statement: str) -> None:
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.message)
        self.ran.append(statement)


def test_a_locked_wal_switch_is_tried_again_until_it_goes_through() -> None:
    db = _LockedFor(3)
    execute_while_locked(db, "PRAGMA journal_mode=WAL", timeout=5)
    assert db.ran == ["PRAGMA journal_mode=WAL"] and db.left == 0


def test_a_lock_that_outlasts_the_timeout_and_other_errors_are_raised() -> None:
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        execute_while_locked(_LockedFor(10_000), "PRAGMA journal_mode=WAL", timeout=0.05)
    other = _LockedFor(1, "disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        execute_while_locked(other, "PRAGMA journal_mode=WAL", timeout=5)


def test_a_shared_file_opens_in_wal_mode_beside_another_connection(tmp_path) -> None:
    first = open_shared(tmp_path / "shared.sqlite")
    first.execute("CREATE TABLE t (x)")
    second = open_shared(tmp_path / "shared.sqlite")
    assert second.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert second.execute("PRAGMA synchronous").fetchone() == (0,)
