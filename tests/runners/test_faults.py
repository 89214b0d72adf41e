"""A full disk under the lake, and a catalog that cannot write: ``process`` stops with one
line saying what to do (no traceback), commits nothing half-way, and the rerun after the
fault is fixed accounts for every landed record exactly once.

Real faults need a small tmpfs, so these run as root (CI does) and are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advertisex.model.schemas import TABLES
from tests.cli_fixtures import cli, open_lake  # noqa: F401 (fixtures)
from tests.table_snapshots import snapshot

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMPRESSION = (
    '{"timestamp":"2026-11-20T10:%02d:00Z","ad_creative_id":"c","user_id":"u%d",'
    '"website":"w","impression_id":"i%d"}'
)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs needs root")
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> Path:
    """Take all free space under ``path`` but ``leave`` bytes."""
    free = shutil.disk_usage(path).free
    filler = path / "filler"
    with open(filler, "wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(free - leave, 1))
    return filler


def land(ax: Any, segments: int, per_segment: int, first: int = 0) -> int:
    for s in range(first, first + segments):
        lines = [
            IMPRESSION % (s, s * per_segment + i, s * per_segment + i) for i in range(per_segment)
        ]
        ax.landing.write_segment("impressions", ("\n".join(lines) + "\n").encode(), fsync=False)
    return segments * per_segment


def accounted(ax: Any) -> tuple[int, int]:
    """(rows in curated.impressions, distinct impression ids among them)."""
    [row] = ax.query(
        "select count(*) n, count(distinct impression_id) ids from curated.impressions"
    ).to_pylist()
    return row["n"], row["ids"]


def _fault(run: Any, opener: Any, data: Path, uri: str, disk: Path, leave: int) -> tuple:
    """A first batch while there is room (the tables exist), then more landed and ``disk``
    filled but ``leave`` bytes: (records landed, the failed run's stderr as one line, the
    filler to remove, a function opening the lake)."""
    env = {"ADVERTISEX_LAKE__CATALOG_URI": uri}

    def lake() -> Any:
        return opener(data, lake={"catalog_uri": uri})

    landed = land(lake(), segments=1, per_segment=10)
    assert run(data, "process", **env)[0] == 0
    landed += land(lake(), segments=4, per_segment=400, first=1)
    filler = fill(disk, leave=leave)
    code, out, err = run(data, "process", **env)
    err = " ".join(err.split())  # as one line, whatever the terminal width
    assert code == 2, out + err
    assert "Traceback" not in err and "run the same command again" in err
    assert accounted(lake()) == (10, 10)  # nothing half-way
    return landed, err, filler, lake


def _resumed(run: Any, data: Path, uri: str, filler: Path, lake: Any, landed: int) -> None:
    """Space again: the rerun commits every landed record once, and a second run nothing."""
    filler.unlink()
    for _ in range(2):
        assert run(data, "process", ADVERTISEX_LAKE__CATALOG_URI=uri)[0] == 0
        assert accounted(lake()) == (landed, landed)


def test_a_full_disk_stops_process_cleanly_and_the_rerun_loses_nothing(
    tmp_path: Path,
    cli: Any,  # noqa: F811
    open_lake: Any,  # noqa: F811
) -> None:
    """The warehouse (and landing zone) on a full disk; the catalog elsewhere."""
    with tmpfs(tmp_path / "disk", "8m") as disk:
        data, uri = disk / "data", f"sqlite:///{tmp_path / 'catalog.db'}"
        landed, err, filler, lake = _fault(cli, open_lake, data, uri, disk, leave=16 << 10)
        assert "No space left on device" in err
        listed = lake().lake.data_files_of(list(TABLES))
        referenced = {f.removeprefix("file://") for files in listed.values() for f in files}
        on_disk = {str(p) for p in (data / "warehouse").rglob("*.parquet")}
        assert on_disk == referenced  # no torn or unreferenced file left
        _resumed(cli, data, uri, filler, lake, landed)


def test_a_catalog_that_cannot_write_stops_process_cleanly_and_the_rerun_loses_nothing(
    tmp_path: Path,
    cli: Any,  # noqa: F811
    open_lake: Any,  # noqa: F811
) -> None:
    """The catalog database on a full disk; the warehouse elsewhere."""
    with tmpfs(tmp_path / "catalog", "1m") as disk:
        data, uri = tmp_path / "data", f"sqlite:///{disk / 'catalog.db'}"
        landed, err, filler, lake = _fault(cli, open_lake, data, uri, disk, leave=0)
        assert "catalog" in err and "database or disk is full" in err
        _resumed(cli, data, uri, filler, lake, landed)


def test_a_full_disk_during_the_marts_update_is_one_line_and_the_rerun_levels_them(
    tmp_path: Path,
    cli: Any,  # noqa: F811
    open_lake: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills after the batches are committed, as the marts are being updated."""
    from advertisex.runners.runner import Runner

    marts_on = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "true"}
    with tmpfs(tmp_path / "disk", "8m") as disk:
        data, uri = disk / "data", f"sqlite:///{tmp_path / 'catalog.db'}"
        env = {"ADVERTISEX_LAKE__CATALOG_URI": uri, **marts_on}

        def lake() -> Any:
            return open_lake(data, lake={"catalog_uri": uri})

        landed = land(lake(), segments=1, per_segment=10)
        assert cli(data, "process", **env)[0] == 0
        landed += land(lake(), segments=4, per_segment=400, first=1)
        update = Runner.update_marts
        fillers: list[Path] = []

        def full_disk_first(self: Any, progress: Any = None, replayed: Any = None) -> Any:
            fillers.append(fill(disk, leave=16 << 10))
            return update(self, progress, replayed)

        monkeypatch.setattr(Runner, "update_marts", full_disk_first)
        code, out, err = cli(data, "process", **env)
        monkeypatch.setattr(Runner, "update_marts", update)
        err = " ".join(err.split())
        assert code == 2, out + err
        assert "Traceback" not in err and "cannot write the marts" in err
        assert "No space left on device" in err and "run the same command again" in err
        assert accounted(lake()) == (landed, landed)  # the batches were committed
        fillers[0].unlink()
        code, out, err = cli(data, "process", **env)
        assert code == 0 and "the marts were behind" in " ".join(err.split()), out + err
        marts = sorted(n for n in TABLES if n.startswith("marts.") and n != "marts.state")
        kept = snapshot(lake(), marts)
        lake().refresh_marts(rebuild=True)
        assert kept == snapshot(lake(), marts)
        [row] = lake().query("select sum(impressions) n from marts.campaign_hourly").to_pylist()
        assert row["n"] == landed


def test_ingest_on_a_full_disk_is_one_line_and_leaves_no_temporary_file(
    tmp_path: Path,
    cli: Any,  # noqa: F811
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "a-small.ndjson").write_text(IMPRESSION % (0, 0, 0) + "\n")
    lines = [IMPRESSION % (i % 60, i, i) for i in range(1, 20_001)]  # about 2.4 MB
    (drop / "b-big.ndjson").write_text("\n".join(lines) + "\n")
    with tmpfs(tmp_path / "disk", "1m") as disk:
        data, uri = disk / "data", f"sqlite:///{tmp_path / 'catalog.db'}"
        files = [str(drop / "a-small.ndjson"), str(drop / "b-big.ndjson")]
        code, out, err = cli(data, "ingest", *files, ADVERTISEX_LAKE__CATALOG_URI=uri)
        err = " ".join(err.split())
        assert code == 2, out + err
        assert "Traceback" not in err and "cannot write a landing segment" in err
        assert "No space left on device" in err and "run the same command again" in err
        assert not [p for p in (data / "landing").rglob("*") if p.name.endswith(".tmp")]
        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        code, out, err = cli(data, "ingest", *files, ADVERTISEX_LAKE__CATALOG_URI=uri)
        assert code == 0, out + err
        landed = [p for p in (data / "landing").rglob("*") if p.is_file() and "file-" in p.name]
        assert len(landed) == 2  # the small file once, the big one now
