"""The kernels' compiled helpers are built wherever a C compiler is."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pytest

from advertisex import native
from tests.native_helpers import helpers_missing


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the kernels run without")
def test_the_compiled_helpers_are_built_with_the_install():
    # pyproject marks the extension optional: a failed compile would only show as speed lost
    assert native.available(), "the helpers did not compile: run make install"


def test_without_the_library_no_function_is_offered():
    with helpers_missing():
        assert native.function("adx_scan_objects", None, ()) is None
        assert native.text_hashes(pa.array(["a"])) is None
