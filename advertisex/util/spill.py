"""What a process writes aside for a while — a marts build's buckets, a batch's remembered
keys — held by a lock while in use, and swept once its process is gone.

A process killed mid-way (SIGKILL, the out-of-memory killer, a power cut) never removes
what it wrote aside, and a backlog's spill holds gigabytes. So each such file, or folder,
is *claimed*: its process holds an exclusive ``flock`` on it (a folder: on its
:data:`OWNER` file) for as long as it uses it. The kernel drops the locks of a process
however it ends, so :func:`sweep` removes exactly what nobody holds any more — whatever
another process, or this one, still uses stays.

The place is the lake's spill directory (``Settings.spill_dir``, ``<data_dir>/spill``):
the lake's own disk. The system's temporary folder may live in memory (tmpfs), which
spilling or mapping rows from a file is there to spare.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

PREFIX = "advertisex-"  # every name written aside begins so; :func:`sweep` looks at no other
OWNER = ".owner"  # in a claimed folder: the file its process holds locked
# A folder without its owner file is a process's for the instant between making the folder
# and claiming it — or one killed in that instant: swept once this old.
UNCLAIMED_STALE_SECONDS = 3600
_CLAIMING = ".claiming-"  # a file's name until it is claimed


def place(directory: Path | None) -> str:
    """Where ``directory`` (None: the system's temporary folder) puts what is written aside,
    for messages."""
    return str(directory or tempfile.gettempdir())


class ClaimedFolder:
    """A new folder in ``directory`` (default: the system's temporary folder), named
    ``prefix`` + a unique tail and claimed until :meth:`cleanup`, which removes it."""

    def __init__(self, prefix: str, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
        try:
            # Locked under another name, then named: a sweep never finds the owner file
            # unlocked while the folder is in use.
            claiming = self.path / f"{OWNER}.new"
            self._owner = _locked(claiming)
            os.rename(claiming, self.path / OWNER)
        except BaseException:
            if hasattr(self, "_owner"):
                os.close(self._owner)
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def cleanup(self) -> None:
        try:
            shutil.rmtree(self.path)
        finally:
            os.close(self._owner)  # released once the folder is gone


def claimed_file(prefix: str, suffix: str, directory: Path | None = None) -> tuple[int, Path]:
    """A new empty file in ``directory`` (default: the system's temporary folder), claimed
    while the returned descriptor is open: (the descriptor, the file's path). Close the
    descriptor once the file is removed."""
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    # Made and locked under a name :func:`sweep` passes over, then named: a sweep never
    # finds the file unlocked while it is in use.
    fd, claiming = tempfile.mkstemp(prefix=_CLAIMING, suffix=suffix, dir=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = Path(claiming).with_name(prefix + Path(claiming).name.removeprefix(_CLAIMING))
        os.rename(claiming, path)
    except BaseException:
        os.close(fd)
        Path(claiming).unlink(missing_ok=True)
        raise
    return fd, path


def sweep(directory: Path) -> int:
    """Remove what was written aside in ``directory`` (names beginning :data:`PREFIX`) and
    is claimed by no process any more: how many files and folders."""
    try:
        entries = [e for e in os.scandir(directory) if e.name.startswith(PREFIX)]
    except OSError:  # not made yet, or not readable: the write that follows says what is wrong
        return 0
    removed = 0
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if _unclaimed(path / OWNER, path):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        elif entry.is_file(follow_symlinks=False) and _unclaimed(path, path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _locked(path: Path) -> int:
    """A new file at ``path``, open and locked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unclaimed(lock: Path, entry: Path) -> bool:
    """Whether no process holds ``lock`` (the claim on ``entry``); a folder not claimed yet
    counts as unclaimed only after :data:`UNCLAIMED_STALE_SECONDS`."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        try:
            return time.time() - entry.stat().st_mtime > UNCLAIMED_STALE_SECONDS
        except OSError:
            return False
    except OSError:  # not ours to judge (another user's, say)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held: in use
        return False
    finally:
        os.close(fd)
    return True
