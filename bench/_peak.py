"""Run a module or script and write this process's peak RSS (MiB) to a file at exit.

python bench/_peak.py OUT.txt -m advertisex.cli.app process
python bench/_peak.py OUT.txt script.py args...
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys
from pathlib import Path

out = Path(sys.argv[1])
atexit.register(
    lambda: out.write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
)
if sys.argv[2] == "-m":
    sys.argv = [sys.argv[3], *sys.argv[4:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.argv = sys.argv[2:]
    runpy.run_path(sys.argv[0], run_name="__main__")
