"""The distinct words of a landing file's texts in one native pass (``native/words.c``).

:func:`advertisex.formats.scrubwords.words_of` cut every run of word bytes out as an Arrow
array element, made them unique, sorted them and hashed them again for its filter: ≈ 10
ms of CPU a MB of landing bytes, ten times the search an erasure's summary spares. The
helper finds and deduplicates the runs as it reads the bytes, and hands on only the
distinct words, joined or as the filter's bits — the same bytes as scrubwords' own code,
which computes them where the library was not built (``tests/native/test_words.py``).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from types import TracebackType

import numpy as np

from advertisex import native

_P, _I32, _I64 = native.POINTER, ctypes.c_int32, ctypes.c_int64
_NEW = ("adx_words_new", _P, (_P,))
_ADD = ("adx_words_add", _I32, (_P, _P, _I64))
_SIZES = ("adx_words_sizes", None, (_P, _P, _P, _P))
_JOINED = ("adx_words_joined", _I32, (_P, _P))
_FILTER = ("adx_words_filter", None, (_P, _P, _I64, _I32))
_FREE = ("adx_words_free", None, (_P,))


class DistinctWords:
    """The distinct maximal runs of word bytes of some texts, held by the library (which
    points into the texts: they are held here too). Use as a context manager."""

    def __init__(self, handle: int, texts: list[np.ndarray]) -> None:
        self._handle: int | None = handle
        self._texts = texts
        sizes = (ctypes.c_int64 * 3)()
        native.function(*_SIZES)(  # type: ignore[misc]
            handle,
            ctypes.addressof(sizes),
            ctypes.addressof(sizes) + 8,
            ctypes.addressof(sizes) + 16,
        )
        if sizes[0] < 0:
            self.close()
            raise MemoryError("no memory for a landing file's words")
        self.count, self.bytes, self.longest = sizes[0], sizes[1], sizes[2]

    def joined(self) -> bytes:
        """The words in byte order, each after a ``\\n``, and a ``\\n`` at the end."""
        out = np.empty(self.bytes + self.count + 1, np.uint8)
        if native.function(*_JOINED)(self._handle, out.ctypes.data) != 0:  # type: ignore[misc]
            raise MemoryError("no memory to sort a landing file's words")
        return out.tobytes()

    def filter(self, bits: int, probes: int) -> bytes:
        """The bits of a Bloom filter of the words (``scrubwords._filter_of``'s)."""
        out = np.zeros(bits // 8, np.uint8)
        native.function(*_FILTER)(self._handle, out.ctypes.data, bits, probes)  # type: ignore[misc]
        return out.tobytes()

    def close(self) -> None:
        if self._handle is not None:
            native.function(*_FREE)(self._handle)  # type: ignore[misc]
            self._handle = None
            self._texts = []

    def __enter__(self) -> DistinctWords:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def distinct_words(texts: Sequence[bytes], is_word: bytes) -> DistinctWords | None:
    """The distinct words of ``texts`` (a run never continues from one text to the next),
    the word bytes being those ``is_word`` (256 bytes) marks non-zero; None without the
    library.

    >>> found = distinct_words([b"a-1 b a-1", b"c"], bytes(1 if chr(b) in "abc-1" else 0
    ...                                                      for b in range(256)))
    >>> found is None or (found.count, found.bytes, found.longest, found.joined()) == (
    ...     3, 5, 3, b"\\na-1\\nb\\nc\\n")
    True
    """
    new, add = native.function(*_NEW), native.function(*_ADD)
    if new is None or add is None:
        return None
    table = np.frombuffer(is_word, np.uint8)
    handle = new(table.ctypes.data)
    if not handle:
        raise MemoryError("no memory for a landing file's words")
    held = []
    try:
        for text in texts:
            array = np.frombuffer(text, np.uint8)
            held.append(array)
            if len(array) and add(handle, array.ctypes.data, len(array)) != 0:
                raise MemoryError("no memory for a landing file's words")
    except BaseException:
        native.function(*_FREE)(handle)  # type: ignore[misc]
        raise
    return DistinctWords(handle, held)
