"""The command's heap is frozen before the interpreter shuts down (no collection of it)."""

from __future__ import annotations

import subprocess
import sys


def test_the_heap_is_frozen_before_the_interpreter_shuts_down() -> None:
    # Registered before main(), this probe runs after main's own exit handler (LIFO).
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "sys.argv = ['advertisex', '--help']\n"
        "from advertisex.cli.app import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("frozen True")
