"""Make a bench script measure the checkout it belongs to.

`make install` installs the package in editable mode, pointing at the checkout it ran in:
the virtualenv's `advertisex` script, and `python -m advertisex…` started anywhere but a
checkout's root, import *that* checkout. A bench script of another worktree sharing the
virtualenv would then time the installed checkout's code, not its own (a before/after
comparison comparing one code with itself). :func:`use_this_checkout` puts this checkout
first on the module path, for this process and every command it starts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def use_this_checkout() -> None:
    """This checkout first on ``sys.path`` and on ``PYTHONPATH`` (which the commands a
    script starts inherit, their forkserver and its workers too)."""
    root = str(ROOT)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *(p for p in inherited if p != root)])
