"""One processor per lake: a second one is refused (or waits), naming the first."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from advertisex.errors import ProcessorBusyError
from advertisex.runners.lock import processor_lock
from tests.cli_fixtures import lock_holder

__all__ = ["lock_holder"]


@pytest.fixture
def holder(tmp_path: Path, lock_holder):
    """Another process holding the lake's processor lock until killed."""
    return lock_holder(tmp_path)


def test_a_second_processor_is_refused_with_the_holders_pid(tmp_path, holder):
    with (
        pytest.raises(
            ProcessorBusyError, match=rf"another processor is running \(pid {holder.pid} "
        ),
        processor_lock(tmp_path),
    ):
        pass


def test_the_lock_is_freed_when_its_holder_is_killed(tmp_path, holder):
    holder.kill()
    holder.wait()
    with processor_lock(tmp_path) as held:
        assert held


def test_a_waiting_processor_is_told_who_it_waits_for_and_goes_on_after(tmp_path, holder):
    told: list[str] = []
    got: list[bool] = []

    def wait_then_hold() -> None:
        with processor_lock(tmp_path, on_wait=told.append, poll_seconds=0.05) as held:
            got.append(held)

    waiter = threading.Thread(target=wait_then_hold)
    waiter.start()
    while not told:
        threading.Event().wait(0.02)
    assert not got and told[0].startswith(f"pid {holder.pid} ")
    holder.kill()
    waiter.join(30)
    assert got == [True] and len(told) == 1


def test_a_wait_ends_when_the_processor_is_told_to_stop(tmp_path, holder):
    stop = threading.Event()
    stop.set()
    with processor_lock(tmp_path, on_wait=lambda holder: None, stop=stop) as held:
        assert not held


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    with processor_lock(tmp_path), processor_lock(tmp_path) as again:
        assert again
    with processor_lock(tmp_path) as after:
        assert after


def test_a_folder_where_the_lock_goes_is_one_line_saying_what_to_remove(tmp_path):
    from advertisex.errors import StorageError

    (tmp_path / "processor.lock").mkdir()  # it was a bug report (IsADirectoryError)
    lock = processor_lock(tmp_path)
    with pytest.raises(StorageError, match="cannot take the processor lock") as raised:
        lock.__enter__()
    assert "remove" in str(raised.value) and "processor.lock" in str(raised.value)


def test_maintenance_is_one_run_at_a_time_even_within_a_process(tmp_path):
    """The follower's scheduled run and one asked for on the console share a process."""
    from advertisex.errors import MaintenanceBusyError
    from advertisex.runners.lock import MAINTENANCE_LOCK_FILE, held_since, maintenance_lock

    assert held_since(tmp_path, MAINTENANCE_LOCK_FILE) is None
    with maintenance_lock(tmp_path):
        assert held_since(tmp_path, MAINTENANCE_LOCK_FILE) is not None
        with (
            pytest.raises(MaintenanceBusyError, match=r"another maintain is running \(pid "),
            maintenance_lock(tmp_path),
        ):
            pass
    with maintenance_lock(tmp_path):  # let go
        pass
    assert held_since(tmp_path, MAINTENANCE_LOCK_FILE) is None
