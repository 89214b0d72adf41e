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


def test_the_commands_processes_start_no_linear_algebra_threads() -> None:
    """NumPy's OpenBLAS spun a thread per core for ≈ 0.1 s of CPU in every process of a
    command (the processor, the forkserver, each decoder worker); a user's setting is kept."""
    import os

    code = (
        "import os\n"
        "from advertisex.cli import app\n"
        "import numpy\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    setting, threads = done.stdout.split()
    assert setting == "1" and int(threads) == 1  # numpy loaded, no thread beside the main one
    env["OPENBLAS_NUM_THREADS"] = "3"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split()[0] == "3"


def test_the_runners_modules_load_with_the_collector_off_and_are_frozen_after() -> None:
    """The cycle collector walked the runner's modules again and again as they loaded, on
    the command's start: off while they load, then what they made frozen (``process``)."""
    code = (
        "import gc, sys\n"
        "from advertisex.cli import common\n"
        "import advertisex\n"
        "seen = []\n"
        "class Platform:\n"
        "    settings = advertisex.open(data_dir=sys.argv[1]).settings\n"
        "    @property\n"
        "    def runner(self):\n"
        "        seen.append(gc.isenabled())\n"
        "        import advertisex.runners.embedded\n"
        "        return 'runner'\n"
        "before = gc.get_freeze_count()\n"
        "assert common.open_runner(Platform(), None, None) == 'runner'\n"
        "print(seen, gc.isenabled(), gc.get_freeze_count() > before + 100_000)\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as data:
        done = subprocess.run([sys.executable, "-c", code, data], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[False]", "True", "True"]
