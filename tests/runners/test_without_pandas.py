"""The embedded runner refuses pandas while it runs a batch and brings the marts up to
date: Arrow would import it on the batch's first array (0.3-0.4 s of CPU and 20-50 MiB on
the serial start) only to ask whether it was handed a pandas object, and the first
Iceberg table a process opens imports pyarrow.dataset, which imports it (0.25 s). The
batch's rows are those of a run with pandas loaded, and pandas imports again once the
batch is done."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import orjson
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # fresh interpreters over generated days

# Runs in a fresh interpreter (pytest's own has pandas loaded): processes the landing zone
# at argv[1], pandas imported first when argv[2] says so, then prints what it saw.
_PROCESS = """
import sys
if sys.argv[2] == "with-pandas":
    import pandas
import advertisex
from tests.table_snapshots import CURATED, snapshot

ax = advertisex.open(data_dir=sys.argv[1], correlation={"update_marts": sys.argv[3] == "marts"})
report = ax.process()
loaded = "pandas" in sys.modules
import pandas  # refused only while a batch ran
import orjson
rows = snapshot(ax, [*CURATED, "ops.batches"])
print(orjson.dumps({"loaded": loaded, "batches": len(report.batches), "rows": rows},
                   default=str).decode())
"""


def _processed(data: Path, pandas: str, marts: str = "no-marts") -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROCESS, str(data), pandas, marts],
        capture_output=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],  # the checkout: ``tests`` importable
    )
    assert done.returncode == 0, done.stderr.decode()
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_batch_runs_without_pandas_and_gives_the_same_rows(tmp_path: Path) -> None:
    import advertisex
    from advertisex.synth.config import FaultConfig
    from advertisex.synth.generator import generate

    generate(
        tmp_path / "input", events=1500, seed=5, start=date(2026, 11, 10), faults=FaultConfig.demo()
    )
    ax = advertisex.open(data_dir=tmp_path / "refused")
    for source in ("impressions", "clicks", "bids"):
        ax.ingest([str(tmp_path / "input" / source)], source=source)
    shutil.copytree(tmp_path / "refused", tmp_path / "loaded")  # the same segments

    refused = _processed(tmp_path / "refused", "without")
    loaded = _processed(tmp_path / "loaded", "with-pandas")

    assert refused["loaded"] is False  # not imported while the batch ran
    assert loaded["loaded"] is True
    assert refused["batches"] == loaded["batches"] == 1
    assert refused["rows"] == loaded["rows"]
    assert any(refused["rows"]["curated.quarantine"])  # type: ignore[index]


def test_the_marts_update_alone_runs_without_pandas(tmp_path: Path) -> None:
    # A process with nothing new to commit (a follower's pass, a cron run) opens its first
    # Iceberg tables in the marts' update: pandas stays refused there too.
    import advertisex
    from advertisex.synth.generator import generate

    generate(tmp_path / "input", events=600, seed=3, start=date(2026, 11, 10))
    ax = advertisex.open(data_dir=tmp_path / "lake")
    ax.ingest([str(tmp_path / "input" / s) for s in ("impressions", "clicks", "bids")])
    ax.process()

    again = _processed(tmp_path / "lake", "without", "marts")

    assert again["batches"] == 0
    assert again["loaded"] is False
