"""Mart maintenance a key bucket at a time: the same marts, and buckets that do not grow with the input."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mart_events import minutes, table
from test_incremental import RULES, _curated, canonical, datasets

from advertisex.marts import maintain
from advertisex.marts.local import SPILL_PREFIX, LocalKernels, Spill
from advertisex.marts.store import MemoryCurated, MemoryMarts, Slice
from advertisex.util.spill import sweep

WHOLE = 10**9  # bucket_rows no test input reaches: every step runs whole


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=datasets(), order=st.randoms(use_true_random=False), cuts=st.integers(1, 2))
def test_a_bucket_at_a_time_equals_whole(events: Any, order: Any, cuts: int) -> None:
    """Rebuilds and incremental updates cut into buckets of a few rows give the marts of
    steps run whole."""
    shuffled = list(events)
    order.shuffle(shuffled)
    bounds = sorted(order.randint(0, len(shuffled)) for _ in range(cuts - 1))
    batches = [shuffled[a:b] for a, b in zip([0, *bounds], [*bounds, len(shuffled)], strict=True)]
    results = []
    for bucket_rows in (WHOLE, 3):
        curated, marts = MemoryCurated(), MemoryMarts()
        for batch in batches:
            curated.append(_curated(batch))
            maintain.update(curated, marts, RULES, LocalKernels(curated, bucket_rows))
        rebuilt = MemoryMarts()
        maintain.rebuild(curated, rebuilt, RULES, LocalKernels(curated, bucket_rows))
        results.append((canonical(marts), canonical(rebuilt)))
    assert results[0] == results[1]
    assert results[0][0] == results[0][1]


def traffic(users: int, seed: int) -> dict[str, list[pa.Table]]:
    """A day of traffic of ``users`` users (a few impressions each, some clicked, some
    converting, bid requests behind a third), in appended parts of 250 users."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pa.Table]] = {}
    for start in range(0, users, 250):
        rows: dict[str, list[dict[str, Any]]] = {
            "curated.impressions": [],
            "curated.clicks": [],
            "curated.conversions": [],
            "curated.bid_requests": [],
        }
        for u in range(start, min(users, start + 250)):
            campaign = f"c{u % 7}"
            for k in range(int(rng.integers(1, 6))):
                at = int(rng.integers(0, 24 * 60))
                auction = f"auc-{u}-{k}" if k % 3 == 0 else None
                rows["curated.impressions"].append(
                    {
                        "impression_id": f"imp-{u}-{k}",
                        "event_time": minutes(at),
                        "user_id": f"u{u}",
                        "campaign_id": campaign,
                        "ad_creative_id": f"{campaign}-a",
                        "country": ["US", "DE", "FR"][u % 3],
                        "device_type": "mobile",
                        "cost": 0.002,
                        "auction_id": auction,
                    }
                )
                if auction is not None:
                    bid = {"auction_id": auction, "exchange": "x", "user_id": f"u{u}"}
                    bid |= {"event_time": minutes(at), "campaign_id": campaign, "bid_price": 1.5}
                    rows["curated.bid_requests"].append({**bid, "floor_price": 1.0})
                if rng.random() < 0.1:
                    click = {"event_id": f"clk-{u}-{k}", "event_time": minutes(at + 1)}
                    rows["curated.clicks"].append(
                        {**click, "user_id": f"u{u}", "campaign_id": campaign}
                    )
                if rng.random() < 0.05:
                    rows["curated.conversions"].append(
                        {
                            "event_id": f"cnv-{u}-{k}",
                            "event_time": minutes(at + 30),
                            "user_id": f"u{u}",
                            "campaign_id": campaign,
                            "conversion_value": 2.5,
                        }
                    )
        for name, batch in rows.items():
            parts.setdefault(name, []).append(table(name, batch))
    return parts


def _built(parts: dict[str, list[pa.Table]], bucket_rows: int) -> tuple[MemoryMarts, LocalKernels]:
    curated = MemoryCurated()
    for index in range(len(parts["curated.impressions"])):
        curated.append({name: tables[index] for name, tables in parts.items()})
    marts = MemoryMarts()
    kernels = LocalKernels(curated, bucket_rows)
    maintain.rebuild(curated, marts, maintain.MatchingRules(), kernels)
    return marts, kernels


@pytest.mark.slow
def test_a_first_build_holds_buckets_bounded_by_the_bucket_not_the_input() -> None:
    """Ten times the input is ten times the buckets, none of them bigger: what a step holds
    at once (its memory) does not grow with the backlog."""
    bucket_rows = 1_000  # every step of the smaller input over twice that: none whole
    held = {}
    for users in (1_000, 10_000):
        parts = traffic(users, seed=users)
        marts, kernels = _built(parts, bucket_rows)
        whole, alone = _built(parts, WHOLE)
        assert canonical(marts) == canonical(whole)
        assert alone.held.buckets == [1, 1, 1]  # correlate, bids, hourly
        assert max(kernels.held.largest) <= 1.5 * bucket_rows, kernels.held
        held[users] = kernels.held
    small, big = held[1_000].buckets, held[10_000].buckets
    assert all(b >= 2 for b in small)
    assert all(b >= 7 * s for s, b in zip(small, big, strict=True)), (small, big)


def test_a_spill_gives_each_key_back_in_one_bucket(tmp_path: Any) -> None:
    rows = pa.table({"k": [f"u{i % 37}" for i in range(1_000)], "v": list(range(1_000))})
    schema = {"t": rows.schema}
    with Spill(8, tmp_path) as spill:
        for start in range(0, 1_000, 128):
            spill.add("t", rows.slice(start, 128), "k")
        buckets = [spill.take([b], schema)["t"] for b in range(8)]
        assert not list(tmp_path.glob("*/*.arrow"))  # each bucket's file gone once read
    assert sum(b.num_rows for b in buckets) == 1_000
    assert sorted(v for b in buckets for v in b.column("v").to_pylist()) == list(range(1_000))
    keys = [set(b.column("k").to_pylist()) for b in buckets]
    assert all(not (a & b) for i, a in enumerate(keys) for b in keys[i + 1 :])
    assert spill.rows.tolist() == [b.num_rows for b in buckets]
    assert not list(tmp_path.iterdir())  # the directory removed on exit


def _left_by_a_killed_build(directory: Path, name: str) -> Path:
    """What a build killed mid-spill leaves: its folder, its owner file (whose lock the
    kernel dropped with the process) and bucket files."""
    folder = directory / f"{SPILL_PREFIX}{name}"
    folder.mkdir()
    (folder / ".owner").touch()
    (folder / "impressions-3.arrow").write_bytes(b"x" * 1000)
    return folder


def test_spills_of_killed_builds_are_swept_and_those_in_use_are_not(tmp_path: Path) -> None:
    rows = pa.table({"k": ["a", "b", "c"], "v": [1, 2, 3]})
    dead = _left_by_a_killed_build(tmp_path, "dead")
    unclaimed_new = tmp_path / f"{SPILL_PREFIX}unclaimed-new"  # made, not claimed yet
    unclaimed_new.mkdir()
    unclaimed_old = tmp_path / f"{SPILL_PREFIX}unclaimed-old"  # killed before its claim
    unclaimed_old.mkdir()
    os.utime(unclaimed_old, (time.time() - 7200, time.time() - 7200))
    other = tmp_path / "not-a-spill"
    other.mkdir()
    with Spill(4, tmp_path) as running:  # a build of this process, in use
        running.add("t", rows, "k")
        assert sweep(tmp_path) == 2
        left = sorted(p.name for p in tmp_path.iterdir())
        assert dead.name not in left and unclaimed_old.name not in left
        assert unclaimed_new.name in left and other.name in left and len(left) == 3
        taken = [running.take([b], {"t": rows.schema})["t"] for b in range(4)]  # still whole
        assert sorted(v for t in taken for v in t.column("v").to_pylist()) == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([unclaimed_new.name, other.name])


def test_a_build_sweeps_its_spill_directory_when_it_starts(tmp_path: Path) -> None:
    dead = _left_by_a_killed_build(tmp_path, "dead")
    LocalKernels(MemoryCurated(), spill_dir=tmp_path)
    assert not dead.exists()
    assert sweep(tmp_path / "never-made") == 0


def test_a_full_disk_while_spilling_is_the_marts_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from advertisex.errors import StorageError

    def no_space(*_: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pa.ipc, "new_stream", no_space)
    rows = pa.table({"k": ["a", "b"], "v": [1, 2]})
    with pytest.raises(StorageError) as raised, Spill(4, tmp_path) as spill:
        spill.add("t", rows, "k")
    assert raised.value.message == (
        f"cannot write the marts' spill under {tmp_path}: No space left on device; they were "
        "left as they were (the committed batches are kept)"
    )
    assert "run the same command again" in (raised.value.hint or "")
    assert not list(tmp_path.iterdir())  # the spill's folder removed all the same


@pytest.mark.slow
def test_a_spill_killed_with_its_process_is_removed_by_the_next_sweep(tmp_path: Path) -> None:
    """SIGKILL mid-spill leaves the folder with its rows; its lock goes with the process."""
    script = (
        "import sys, time, pyarrow as pa\n"
        "from pathlib import Path\n"
        "from advertisex.marts.local import Spill\n"
        "spill = Spill(4, Path(sys.argv[1])).__enter__()\n"
        "spill.add('t', pa.table({'k': ['a', 'b'], 'v': [1, 2]}), 'k')\n"
        "spill.close()\n"
        "print('spilled', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spilled"
        assert sweep(tmp_path) == 0  # its build runs
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        (folder,) = tmp_path.iterdir()
        assert list(folder.glob("*.arrow"))  # what the killed build left
        assert sweep(tmp_path) == 1
        assert not list(tmp_path.iterdir())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def _meeting(monkeypatch: pytest.MonkeyPatch, parties: int) -> list[int]:
    """The correlate and bids parts wait for ``parties`` parts to run at once (a barrier);
    returns the list of how many ran at once, as each part started."""
    import threading

    from advertisex.marts import local

    barrier = threading.Barrier(parties, timeout=20)
    running: list[int] = []
    now = [0]
    lock = threading.Lock()

    def met(real: Any) -> Any:
        def part(*args: Any, **kwargs: Any) -> Any:
            with lock:
                now[0] += 1
                running.append(now[0])
            try:
                if parties > 1:
                    barrier.wait()
                return real(*args, **kwargs)
            finally:
                with lock:
                    now[0] -= 1

        return part

    monkeypatch.setattr(local, "correlate_part", met(local.correlate_part))
    monkeypatch.setattr(local, "bids_part", met(local.bids_part))
    return running


def test_a_rebuild_runs_attribution_and_auctions_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both steps whole: the auctions run on a second thread beside the attribution (each
    part waits here until the other has started), and the marts are those of one at a time."""
    parts = traffic(300, seed=3)
    serial, _ = _built(parts, WHOLE)
    running = _meeting(monkeypatch, parties=2)
    marts, kernels = _built(parts, WHOLE)
    assert sorted(running) == [1, 2]
    assert canonical(marts) == canonical(serial)
    assert kernels.held.buckets == [1, 1, 1]  # correlate, bids, hourly


def test_a_rebuild_counts_the_impressions_while_the_auctions_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once the attribution is done, the impressions are counted (``shown_hourly``) while
    the auctions are still matched — the auctions' part waits here until the count has
    started — and the rollup takes those counts instead of counting again; the marts are
    those of one step at a time. Bucketed, the rollup counts its impressions itself."""
    import threading

    from advertisex.marts import local

    parts = traffic(300, seed=5)
    serial, _ = _built(parts, WHOLE)
    meet = threading.Barrier(2, timeout=20)
    counted: list[int] = []

    def auctions(real: Any) -> Any:
        def part(*args: Any, **kwargs: Any) -> Any:
            meet.wait()  # the count of the impressions has begun
            return real(*args, **kwargs)

        return part

    def count(real: Any) -> Any:
        def shown(impressions: pa.Table) -> pa.Table:
            counted.append(impressions.num_rows)
            meet.wait()
            return real(impressions)

        return shown

    monkeypatch.setattr(local, "bids_part", auctions(local.bids_part))
    monkeypatch.setattr(local, "shown_hourly", count(local.shown_hourly))
    marts, _ = _built(parts, WHOLE)
    impressions = sum(t.num_rows for t in parts["curated.impressions"])
    assert counted == [impressions]  # counted once, whole, before the rollup
    assert canonical(marts) == canonical(serial)

    curated = MemoryCurated()
    for index in range(len(parts["curated.impressions"])):
        curated.append({name: tables[index] for name, tables in parts.items()})
    bucketed = LocalKernels(curated, 100)
    request = maintain.Rows("curated.impressions", Slice.everything(), maintain.IMPRESSION_COLUMNS)
    assert bucketed.shown(request, Slice.everything()) is None


def test_bucketed_steps_hold_two_half_runs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded by one bucket while both cores work: runs of at most half a
    bucket, two at once (the first two wait here for each other: one at a time would
    never meet), and never more rows held at once than one bucket."""
    import threading

    from advertisex.marts import local

    parts = traffic(1_000, seed=4)
    serial, _ = _built(parts, WHOLE)
    bucket_rows = 1_000
    held: list[int] = []  # rows held by the runs running, as each run started
    running: list[int] = []
    lock = threading.Lock()
    meet = threading.Barrier(2, timeout=20)

    def met(real: Any) -> Any:
        def part(tables: dict[str, pa.Table], *args: Any, **kwargs: Any) -> Any:
            rows = sum(t.num_rows for t in tables.values())
            with lock:
                running.append(rows)
                held.append(sum(running))
                first_two = len(held) <= 2
            try:
                if first_two:
                    meet.wait()
                return real(tables, *args, **kwargs)
            finally:
                with lock:
                    running.remove(rows)

        return part

    monkeypatch.setattr(local, "correlate_part", met(local.correlate_part))
    monkeypatch.setattr(local, "bids_part", met(local.bids_part))
    marts, kernels = _built(parts, bucket_rows)
    assert min(kernels.held.buckets) >= 2
    # A run of buckets is at most half a bucket (planned from upper bounds: up to 1.5
    # times that); the rollup's parts are whole record batches of the files.
    buckets = [run.largest for run in kernels.held.runs if run.step != "hourly"]
    assert max(buckets) <= 1.5 * bucket_rows / 2, kernels.held
    assert max(held) <= 1.5 * bucket_rows, held
    assert canonical(marts) == canonical(serial)


def test_a_step_within_twice_the_bucket_runs_whole() -> None:
    """A step over one bucket but within two runs whole (no rows written out and read
    back); bigger ones are bucketed; the marts are the same either way."""
    from advertisex.marts.local import WHOLE_BUCKETS

    parts = traffic(1_000, seed=4)
    serial, _ = _built(parts, WHOLE)
    marts, kernels = _built(parts, 1_500)
    runs = {run.step: run for run in kernels.held.runs}
    assert runs["hourly"].buckets == 1  # its ≈ 3,000 impressions: over 1,500, within 3,000
    assert 1_500 < runs["hourly"].largest <= WHOLE_BUCKETS * 1_500
    assert runs["correlate"].buckets >= 2 and runs["bids"].buckets >= 2
    assert canonical(marts) == canonical(serial)


def test_a_spill_is_written_a_run_of_rows_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inputs are spilled in parts of up to a run's rows, not a record batch at a time:
    cut into every bucket, a batch of a few rows made an IPC message per bucket of next to
    nothing. Consecutive parts that fit in a run together went to the spill together."""
    parts = traffic(1_000, seed=4)  # clicks in parts of ≈ 70 rows, bids ≈ 350
    bucket_rows = 1_000
    added: dict[str, list[int]] = {}
    real_add = Spill.add

    def add(self: Spill, tag: str, rows: pa.Table, key: str) -> None:
        added.setdefault(tag, []).append(rows.num_rows)
        real_add(self, tag, rows, key)

    monkeypatch.setattr(Spill, "add", add)
    marts, _ = _built(parts, bucket_rows)
    run_rows = bucket_rows // 2
    assert added["clicks"] == [sum(t.num_rows for t in parts["curated.clicks"])]
    for tag, sizes in added.items():
        assert all(a + b > run_rows for a, b in itertools.pairwise(sizes)), (tag, sizes)
    assert canonical(marts) == canonical(_built(parts, WHOLE)[0])
