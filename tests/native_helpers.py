"""Tests' switch for the compiled helpers: the same answers must come without them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

from advertisex import native


@contextlib.contextmanager
def helpers_missing() -> Iterator[None]:
    """Within it, the compiled helpers are as on an install without a C compiler."""
    with mock.patch.object(native, "_library", lambda: None):
        native.function.cache_clear()
        try:
            yield
        finally:
            native.function.cache_clear()
