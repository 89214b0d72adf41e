"""Imported first by the decoder workers' forkserver: pandas cannot be imported there.

Arrow imports pandas on its first conversion of a Python list, only to ask whether the list
is a pandas object; no decoder hands it one. Preloaded in the forkserver, pandas cost its
start 33 MiB and a quarter of a second of CPU, and every worker forked from it dirtied its
own copy of those pages. With this finder first on ``sys.meta_path``, ``import pandas``
fails at once and Arrow goes on as it does where pandas is not installed (the frames are
the same: ``tests/formats/test_bounded.py``). Only the forkserver and its workers import
this module; the processor keeps pandas.
"""

from __future__ import annotations

import sys
from typing import Any


class _NoPandas:
    """A meta path finder that refuses pandas and its submodules."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("pandas is not imported in a decoder worker", name=name)


if "pandas" not in sys.modules and _NoPandas not in sys.meta_path:
    sys.meta_path.insert(0, _NoPandas)
