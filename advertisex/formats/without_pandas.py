"""Imported first by the decoder workers' forkserver: pandas cannot be imported there.

Arrow imports pandas on its first conversion of a Python list, only to ask whether the list
is a pandas object; no decoder hands it one. Preloaded in the forkserver, pandas cost its
start 33 MiB and a quarter of a second of CPU, and every worker forked from it dirtied its
own copy of those pages. Refused (:mod:`advertisex.util.nopandas`), ``import pandas``
fails at once and Arrow goes on as it does where pandas is not installed (the frames are
the same: ``tests/formats/test_bounded.py``). Only the forkserver and its workers import
this module; the embedded runner refuses pandas while it runs a batch
(``nopandas.refused``).
"""

from __future__ import annotations

from advertisex.util.nopandas import refuse

refuse()
