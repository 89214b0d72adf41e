"""The kernels' compiled helpers are built wherever a C compiler is."""

from __future__ import annotations

import shutil

import pytest

from advertisex import native


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the kernels run without")
def test_the_compiled_helpers_are_built_with_the_install():
    # pyproject marks the extension optional: a failed compile would only show as speed lost
    assert native.available(), "the helpers did not compile: run make install"


def test_without_the_library_no_function_is_offered(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(native, "_library", lambda: None)
    native.function.cache_clear()
    try:
        assert native.function("adx_scan_objects", None, ()) is None
    finally:
        native.function.cache_clear()
