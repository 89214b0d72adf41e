"""A file copied into the landing zone by the kernel, read back from its own pages.

Batch ingest used to read each file into this process (one copy, out of the page cache)
and write it into the landing zone (a second copy, into it). The kernel copies a file to
another on its own (``copy_file_range``; ``sendfile`` across file systems), without either
copy passing through this process: ingest's system time for the 2 M-event benchmark's
515 MB fell from 0.5-1.5 s to 0.2-0.3 s, its wall time from 0.84-1.39 to 0.58-0.72 s on
this machine (``python bench/ingest.py``).

The copy goes into an unnamed file (``O_TMPFILE``) of the landing zone's file system: the
bytes hashed, checked and landed are the copy's, which no producer can change — a copy is
a snapshot, as the bytes read were — and a crash before it is landed leaves nothing behind
(an unnamed file is gone with the process). Landing links it under its final name once it
is fsync'd: a visible segment is complete, as with the temporary-name-and-rename of
:meth:`~advertisex.landing.zone.LandingZone.write_segment`.

Linux only (``O_TMPFILE``, ``/proc/self/fd``): where the platform or the file system
cannot, :func:`stage` or :meth:`StagedCopy.link` raises :class:`Unsupported`, and the
landing zone reads and writes files as before from then on.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

from advertisex.util.storage import start_file_writeback

# Errors that mean "this platform or file system cannot do that", not "this file failed".
_UNSUPPORTED = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EISDIR, errno.ENOENT}
)
_CHUNK = 1 << 30  # bytes asked of the kernel per call (it may copy fewer)


class Unsupported(OSError):
    """Staging cannot work here (platform, file system or /proc): read and write instead."""


class StagedCopy:
    """An unnamed copy of a file on the landing zone's file system, mapped for reading.

    ``view`` is the copy's bytes (empty for an empty file). :meth:`link` names it;
    :meth:`close` lets it go (an unnamed copy disappears with it).
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ) if size else None

    @property
    def view(self) -> mmap.mmap | bytes:
        return self._map if self._map is not None else b""

    def link(self, final: Path) -> None:
        """fsync the copy, name it ``final`` (which must not exist) and fsync its folder."""
        os.fsync(self.fd)
        folder = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N: how an O_TMPFILE file is named
                # without CAP_DAC_READ_SEARCH (open(2)).
                os.link(
                    f"/proc/self/fd/{self.fd}", final.name, dst_dir_fd=folder, follow_symlinks=True
                )
            except OSError as error:
                if error.errno in _UNSUPPORTED:
                    raise Unsupported(error.errno, error.strerror) from error
                raise
            os.fsync(folder)
        finally:
            os.close(folder)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def stage(source: int, folder: Path) -> StagedCopy:
    """Copy the open file ``source`` (from its start) into a new unnamed file in ``folder``.

    Raises :class:`Unsupported` where this cannot work here, and the copy's ``OSError``
    (a full disk, an unreadable file) otherwise; either way nothing is left behind.
    """
    flags = getattr(os, "O_TMPFILE", None)
    if flags is None:
        raise Unsupported(errno.ENOSYS, "no O_TMPFILE on this platform")
    try:
        fd = os.open(folder, flags | os.O_RDWR, 0o666)  # as open() makes files: the umask decides
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            raise Unsupported(error.errno, error.strerror) from error
        raise
    try:
        size = _copy(source, fd)
        # On its way to the disk while ingest hashes and checks it: the fsync that names
        # it then finds it (mostly) written (the 2 M set's ingest 0.52-0.54 → 0.41-0.44 s).
        start_file_writeback(fd)
        return StagedCopy(fd, size)
    except BaseException:
        os.close(fd)
        raise


def _copy(source: int, target: int) -> int:
    """Every byte of ``source`` from its start into ``target``, by the kernel; bytes copied."""
    copied = 0
    try:
        while got := os.copy_file_range(source, target, _CHUNK, copied):  # from that offset
            copied += got
        return copied
    except OSError as error:
        # Across file systems copy_file_range may refuse (EXDEV) where sendfile copies.
        if error.errno not in _UNSUPPORTED or copied:
            raise
    try:
        while got := os.sendfile(target, source, copied, _CHUNK):
            copied += got
    except OSError as error:
        if error.errno in _UNSUPPORTED and not copied:
            raise Unsupported(error.errno, error.strerror) from error
        raise
    return copied
