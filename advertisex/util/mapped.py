"""A file's bytes mapped read-only, handed to a worker process by its name, not its bytes.

A landing segment decoded in a worker (:mod:`advertisex.util.isolate`) used to be in
memory three times while it was framed: the caller's copy (read from the file), the pipe's
traffic and the worker's copy (read from the pipe), and the caller went on holding its copy
for the texts of the frame. Mapped, both processes see the one copy the kernel keeps of the
file anyway (its page cache): nothing is copied, nothing is zeroed, and the pages are
clean, so the kernel may take them back under pressure and read them again when touched.

Landing segments are immutable (written aside, renamed into place; a rewrite renames a new
file over the old one), so a mapping never sees its bytes change. A worker checks that the
name still leads to the file the caller mapped (device, inode, size): a segment renamed over
in between raises :class:`FileChanged` there rather than being framed from the other file
(the caller then sends its own mapping's bytes).

>>> import os, pickle, tempfile
>>> with tempfile.NamedTemporaryFile(delete=False) as f:
...     _ = f.write(b'{"a":1}\\n')
>>> mapped = map_file(f.name)
>>> bytes(view_of(mapped))
b'{"a":1}\\n'
>>> sent = pickle.loads(pickle.dumps(mapped))  # what a worker gets: the name
>>> bytes(view_of(sent.map()))
b'{"a":1}\\n'
>>> os.unlink(f.name)
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
import weakref
from dataclasses import dataclass

# Every mapping :func:`map_file` made that is still alive (a weak set: a mapping goes when
# the last view of it does), for :func:`release_pages`. The lock: a piece's thread may map
# a segment while another one lists them (a set that grows while listed raises).
_LIVE: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class FileChanged(OSError):
    """The name no longer leads to the file that was mapped (renamed over in between)."""


@dataclass(frozen=True, eq=False)
class MappedFile:
    """``view``: the file's bytes, read-only, format ``B``. Pickles as its name and
    identity: a :class:`FileName`, which maps the same file where it is unpickled."""

    path: str
    identity: tuple[int, int, int]  # st_dev, st_ino, st_size when it was mapped
    view: memoryview

    def __len__(self) -> int:
        return self.view.nbytes

    def __reduce__(self) -> tuple[object, ...]:
        return (FileName, (self.path, self.identity))


@dataclass(frozen=True)
class FileName:
    """A :class:`MappedFile` as another process receives it: mapped there by :meth:`map`
    (not while it is unpickled, where a failure would be the pipe's, not the job's)."""

    path: str
    identity: tuple[int, int, int]

    def map(self) -> MappedFile:
        """The same file mapped here; :class:`FileChanged` if the name leads elsewhere now."""
        try:
            mapped = map_file(self.path)
        except FileNotFoundError as missing:
            raise FileChanged(f"{self.path} is gone since it was mapped") from missing
        if not isinstance(mapped, MappedFile) or mapped.identity != tuple(self.identity):
            raise FileChanged(f"{self.path} changed after it was mapped (renamed over)")
        return mapped


def map_file(path: str | os.PathLike[str]) -> MappedFile | bytes:
    """``path``'s bytes mapped read-only; an empty file (which cannot be mapped) as ``b""``."""
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        if stat.st_size == 0:
            return b""
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    with _LIVE_LOCK:
        _LIVE.add(mapping)
    identity = (stat.st_dev, stat.st_ino, stat.st_size)
    return MappedFile(os.fspath(path), identity, memoryview(mapping))


def view_of(data: MappedFile | bytes | memoryview) -> bytes | memoryview:
    """The bytes of ``data`` as a bytes-like object (a mapped file's read-only view)."""
    return data.view if isinstance(data, MappedFile) else data


def release_pages() -> int:
    """Take the pages this process has touched of every live mapping out of its memory
    (``MADV_DONTNEED``); returns how many mappings there were.

    A mapped file's pages stay counted in the process's memory once touched, until the
    mapping goes: a 100 MB landing segment whose slices were parsed one by one ends its
    piece fully resident, and so do the pages of stored keys that lookups read (with the
    neighbours the kernel maps around each). The mappings are read-only views of files,
    so nothing is lost: a page touched again is mapped again from the page cache (a minor
    fault), or read from the disk if the kernel let it go.
    """
    with _LIVE_LOCK:
        mappings = list(_LIVE)
    if not hasattr(mmap, "MADV_DONTNEED"):  # not on every system (Windows has no madvise)
        return len(mappings)
    for mapping in mappings:
        with contextlib.suppress(ValueError, OSError):  # closed meanwhile
            mapping.madvise(mmap.MADV_DONTNEED)
    return len(mappings)
