"""A lake made once for a module's tests and handed back to each as it was made.

Each copy is put back at the path the lake was made at: Iceberg records every file by
its absolute path, so a copy anywhere else would read the original's files (and is
read-only for that reason, ``Lake.check_home``). A test that changes its lake changes
only that copy; the next test gets the kept state again.
"""

from __future__ import annotations

import shutil
from pathlib import Path


class KeptLake:
    """States of the lake at ``root / "data"``, kept by name under ``root / "kept"``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"

    def keep(self, state: str) -> None:
        """Keep the lake as it is now as ``state``."""
        shutil.copytree(self.data, self.root / "kept" / state)

    def restored(self, state: str) -> Path:
        """The data directory, holding the lake as it was kept as ``state``."""
        shutil.rmtree(self.data, ignore_errors=True)
        shutil.copytree(self.root / "kept" / state, self.data)
        return self.data
