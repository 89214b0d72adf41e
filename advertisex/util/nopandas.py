"""pandas refused: ``import pandas`` fails at once, as it does where pandas is not installed.

Arrow imports pandas on its first array made from anything (a list, even a NumPy array),
only to ask whether it was handed a pandas object; nothing in a batch hands it one. That
import is a quarter of a second of CPU and 20-50 MiB of the process, paid on the batch's
serial start (the first ``pa.array`` is the lineage table's, before the first piece).
Refused, Arrow remembers that pandas is absent and goes on exactly as it does where pandas
is not installed (``tests/formats/test_bounded.py``, ``tests/runners/test_without_pandas.py``).

* The decoder workers' forkserver refuses it for good (``formats.without_pandas``);
* the embedded runner refuses it while it runs a batch (:func:`refused`), and lets it load
  again after: a caller that needs pandas later (``Table.to_pandas``) imports it then, and
  Arrow, asked for pandas outright, imports it too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NoPandas:
    """A meta path finder that refuses pandas and its submodules."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(
                "pandas is refused in this process: nothing it runs needs it "
                "(advertisex.util.nopandas)",
                name=name,
            )


def refuse() -> bool:
    """Refuse pandas from now on, unless it is loaded already; whether this call did."""
    if "pandas" in sys.modules or NoPandas in sys.meta_path:
        return False
    sys.meta_path.insert(0, NoPandas)
    return True


@contextmanager
def refused() -> Iterator[None]:
    """pandas refused inside (unless it is loaded already); importable again after."""
    if not refuse():
        yield
        return
    try:
        yield
    finally:
        sys.meta_path.remove(NoPandas)
