"""Errors handle themselves where they can: retries for transient failures, and a landing
file that cannot be read at all is moved aside without blocking the files behind it."""

from __future__ import annotations

import pytest

from advertisex.errors import CommitConflictError
from advertisex.formats.decode import DECODERS
from tests.following import run_follower

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


def test_an_unreadable_segment_is_set_aside_and_the_rest_is_processed(tmp_path, monkeypatch):
    import advertisex

    # In-process decoding, so that the patched decoder below is the one that runs.
    ax = advertisex.open(data_dir=tmp_path / "data", processor={"decode_isolated": False})
    ax.landing.write_segment("impressions", GOOD, label="good")
    bad = ax.landing.write_segment(
        "clicks", b"timestamp,user_id,campaign_id,event_type\n", label="bad"
    )

    def exploding_decoder(data: bytes):
        raise MemoryError("decoder blew up")

    monkeypatch.setitem(DECODERS, ("clicks", "csv"), exploding_decoder)
    report = ax.process()
    assert [u.segment.name for u in report.unreadable] == [bad.name]
    assert "MemoryError" in report.unreadable[0].reason
    assert report.accounts["impressions"].accepted == 1
    # A quarantine entry of its own; the file stays where it landed, for a replay.
    [entry] = ax.quarantine_records(reason="segment_unreadable").to_pylist()
    assert entry["reasons"] == ["segment_unreadable:decode_failed"]
    assert "MemoryError: decoder blew up" in entry["detail"]
    assert (ax.settings.landing_dir / bad.name).exists()
    assert ax.process().segments == 0  # nothing left pending, nothing blocked
    metrics = (ax.settings.data_dir / "monitor" / "processor.prom").read_text()
    assert 'advertisex_processor_unreadable_files_total{source="clicks"}' in metrics


CLICKS = b"timestamp,user_id,campaign_id,event_type\n2026-01-01T00:00:00Z,u,c,click\n"


@pytest.fixture(params=["embedded", pytest.param("spark", marks=pytest.mark.spark)])
def runner_of(request):
    """A function making the runner of the engine under test for a platform."""
    if request.param == "embedded":
        return lambda ax: ax.runner
    from advertisex.runners.spark import SparkRunner

    session = request.getfixturevalue("spark")
    return lambda ax: SparkRunner(
        ax.settings, ax.lake, ax.landing, session=session, hooks=ax.commit_hooks
    )


def test_a_segment_gone_before_its_batch_is_set_aside_and_counted_on_every_engine(ax, runner_of):
    """The runner template handles unreadable segments for every engine (the Spark
    runner once skipped the metric: advertisex_processor_unreadable_files stayed 0)."""
    from advertisex.monitor.metrics import PROCESSOR
    from advertisex.runners.runner import ProcessReport

    ax.landing.write_segment("impressions", GOOD, label="good")
    gone = ax.landing.write_segment("clicks", CLICKS, label="gone")
    runner = runner_of(ax)
    pending = runner.pending()
    (ax.settings.landing_dir / gone.name).unlink()  # listed, then removed: cannot be read
    counted = {"source": "clicks"}
    before = PROCESSOR.get_sample_value("advertisex_processor_unreadable_files_total", counted)
    report = ProcessReport()
    accounts, _ = runner.run_batch(pending, report=report)
    assert [u.segment.name for u in report.unreadable] == [gone.name]
    assert "FileNotFoundError" in report.unreadable[0].reason
    assert list(accounts) == ["impressions", "clicks"] and accounts["impressions"].accepted == 1
    assert (accounts["clicks"].records_in, accounts["clicks"].quarantined) == (1, 1)
    after = PROCESSOR.get_sample_value("advertisex_processor_unreadable_files_total", counted)
    assert after == (before or 0) + 1
    metrics = (ax.settings.data_dir / "monitor" / "processor.prom").read_text()
    assert 'advertisex_processor_unreadable_files_total{source="clicks"} ' in metrics
    assert runner.pending() == []
    batches = ax.query("select source, files, records_in, segments from ops.batches order by 1")
    assert batches.to_pylist() == [
        {"source": "clicks", "files": 1, "records_in": 1, "segments": [gone.name]},
        {"source": "impressions", "files": 1, "records_in": 1, "segments": [pending[0].name]},
    ]


def test_a_lost_commit_race_is_retried_on_fresh_metadata(ax, monkeypatch):
    ax.landing.write_segment("impressions", GOOD, label="one")
    original = ax.lake.commit_files
    calls = []

    def flaky_commit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise CommitConflictError("table moved")
        return original(*args, **kwargs)

    monkeypatch.setattr(ax.lake, "commit_files", flaky_commit)
    report = ax.process()
    assert len(calls) == 2
    assert report.accounts["impressions"].accepted == 1
    assert ax.query("select count(*) n from curated.impressions").column("n")[0].as_py() == 1


def test_a_follower_sees_segments_landed_after_its_first_pass(ax):
    runner = ax.runner
    ax.landing.write_segment("impressions", GOOD, label="first")
    assert len(runner.pending()) == 1
    runner.run_batch(runner.pending())
    assert runner.pending() == []
    ax.landing.write_segment("impressions", GOOD.replace(b'"u"', b'"u2"'), label="second")
    [late] = runner.pending()
    assert late.name.endswith("second.ndjson")


def _impression(user: str) -> bytes:
    return GOOD.replace(b'"u"', f'"{user}"'.encode())


def test_a_follower_keeps_the_marts_current_at_most_every_marts_every_seconds(ax):
    from advertisex.runners.follow import Follower

    ax.landing.write_segment("impressions", _impression("u1"), label="a")
    updates, batches = [], []

    def on_batch(batch):
        batches.append(batch)
        if len(batches) == 1:  # lands during the first pass: committed by the second
            ax.landing.write_segment("impressions", _impression("u2"), label="b")
        else:
            follower.stop.set()

    follower = Follower(ax.runner, interval=0.01, marts_every=3600)
    run_follower(follower, on_batch, on_marts=updates.append)
    # One update after the first pass; the second pass came before marts_every elapsed.
    assert len(batches) == 2 and [u.mode for u in updates] == ["rebuild"]
    assert ax.query("select count(*) as n from curated.impressions").to_pylist() == [{"n": 2}]
    assert ax.query("select sum(impressions) as n from marts.campaign_hourly").to_pylist() == [
        {"n": 1}
    ]

    eager = Follower(ax.runner, interval=0.01, marts_every=0)
    run_follower(eager, on_marts=lambda done: (updates.append(done), eager.stop.set()))
    # Nothing was pending, but a follower starts by folding in what its predecessor left.
    assert [u.mode for u in updates] == ["rebuild", "incremental"]
    assert ax.query("select sum(impressions) as n from marts.campaign_hourly").to_pylist() == [
        {"n": 2}
    ]


def test_a_slow_marts_update_is_followed_by_a_longer_rest(monkeypatch):
    """An update holds the batches up while it runs: one that took t seconds is followed
    by at least MARTS_REST × t of batches alone, so updates that grow with the lake take
    at most a quarter of the follower's time (without the rest, a 40 s update every 60 s
    left the batches a third of it)."""
    from types import SimpleNamespace

    from advertisex.runners import follow

    clock = [1000.0]
    monkeypatch.setattr(follow.time, "monotonic", lambda: clock[0])
    updates = []

    def update_marts():  # takes 40 s of the (fake) clock
        clock[0] += 40
        updates.append(clock[0])
        return "done"

    runner = SimpleNamespace(update_marts=update_marts, cancel=None)
    follower = follow.Follower(runner, marts_every=60)  # type: ignore[arg-type]
    follower._keep_marts(None)
    assert updates == [1040.0]
    for waited in (60, 119):  # past marts_every, but not past 3 × 40 s of rest
        clock[0] = 1040.0 + waited
        follower._marts_behind = True
        follower._keep_marts(None)
        assert updates == [1040.0]
    clock[0] = 1040.0 + follow.MARTS_REST * 40
    follower._keep_marts(None)
    assert updates == [1040.0, 1200.0]

    # A quick update keeps the configured interval.
    clock[0] += 1000
    runner.update_marts = lambda: "done"
    follower._marts_behind = True
    follower._keep_marts(None)
    assert follower._marts_due == clock[0] + 60


def test_a_follower_commits_a_batch_at_most_every_gather_seconds_unless_one_is_full():
    """A collector seals a segment a second a source; a follower committed each look's few
    segments as a batch, a data file a table and a commit every half second. Pending
    segments now wait until ``gather`` seconds after the last batch — unless they fill a
    batch; the first after a quiet spell go at once."""
    import time
    from types import SimpleNamespace

    from advertisex.landing.zone import Segment
    from advertisex.runners import follow

    pending = [Segment("impressions", "impressions/2026-12-07/20/20261207T205200000000Z-a", 10)]
    cut = 1
    runner = SimpleNamespace(cancel=None, pending=lambda: pending, plan=lambda p: [p] * cut)
    follower = follow.Follower(runner, gather=5)  # type: ignore[arg-type]
    assert not follower._gathering(pending)  # no batch yet: at once
    for since, cut, waits in (
        (1, 1, True),  # the last batch 1 s ago: more may come
        (6, 1, False),  # 6 s ago: committed now
        (1, 2, False),  # a batch and more pending: committed now
    ):
        follower._batched = time.monotonic() - since
        assert follower._gathering(pending) is waits, (since, cut)
    assert not follower._gathering([])
    follower._batched, cut = time.monotonic(), 1
    runner.run_batch = lambda *a, **k: pytest.fail("a batch was run")
    assert follower.run_pending(lambda batch: None) == 0  # gathering: nothing run
    assert not follow.Follower(runner)._gathering(pending)  # gather 0: what is there goes


def test_a_follower_whose_every_pass_fails_fails_its_test_with_that_error(ax, monkeypatch):
    """A follower backs off and tries again for as long as it runs: a test stopping it only
    once a batch is committed waited forever when every batch raised (a typo in the
    invalid-traffic step held three tests until pytest-timeout, 300 s each)."""
    import threading

    from advertisex.runners import batch
    from advertisex.runners.follow import Follower

    def typo(*args, **kwargs):
        raise AttributeError("'IvtRules' object has no attribute 'crawlers'")

    monkeypatch.setattr(batch, "filter_invalid_traffic", typo)
    ax.landing.write_segment("impressions", _impression("u1"), label="a")
    follower, raised = Follower(ax.runner, interval=0.01, max_backoff=0.01), []

    def following():
        try:
            run_follower(follower, lambda batch: follower.stop.set())
        except AttributeError as error:
            raised.append(error)

    thread = threading.Thread(target=following, daemon=True)
    thread.start()
    thread.join(120)  # a bound for a broken helper, not a measure of speed
    follower.stop.set()
    assert not thread.is_alive(), "the follower was still retrying"
    assert [str(e) for e in raised] == ["'IvtRules' object has no attribute 'crawlers'"]
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 0}]


def test_a_follower_maintains_the_lake_on_its_schedule(ax):
    import threading

    from advertisex.runners.follow import Follower

    ax.landing.write_segment("impressions", _impression("u1"), label="a")
    quiet = Follower(ax.runner, interval=0.01)  # no schedule: never maintains
    threading.Timer(0.5, quiet.stop.set).start()
    run_follower(quiet, on_maintain=lambda report: pytest.fail("not scheduled"))

    runs = []
    follower = Follower(ax.runner, interval=0.01, maintain_every=0.05)
    run_follower(follower, on_maintain=lambda r: (runs.append(r), follower.stop.set()))
    assert [r.trigger for r in runs] == ["schedule"]
    assert follower._upkeep is not None and follower._upkeep.name == "maintenance"  # beside
    rows = ax.query("select distinct trigger, run_id from ops.maintenance").to_pylist()
    assert rows == [{"trigger": "schedule", "run_id": runs[0].run_id}]
    # A follower started now waits what is left of the period since that run.
    assert 3500 < Follower(ax.runner)._first_wait(3600) <= 3600

    # While another maintain runs, the scheduled one leaves the lake to it, quietly.
    from advertisex.runners.lock import maintenance_lock

    busy = Follower(ax.runner, interval=0.01, maintain_every=0.05)
    with maintenance_lock(ax.settings.data_dir):
        busy._maintain(lambda r: pytest.fail("not run"), lambda e, s: pytest.fail(f"told: {e}"))
    assert ax.query("select count(distinct run_id) n from ops.maintenance")["n"].to_pylist() == [1]


def test_a_follower_hands_back_what_a_marts_update_and_a_maintenance_run_freed(ax, monkeypatch):
    """A follower runs for months: the memory a marts update (every minute) or a maintenance
    run (every 10 minutes) freed stayed with the process — glibc's free chunks, the pages of
    Arrow's jemalloc arenas no thread allocates from any more — and its resident memory grew
    from 316 to 615 MiB in 10 minutes of a 2,000-events/s ``up``. Each is followed by
    ``release_memory``."""
    import threading

    from advertisex.lake import upkeep
    from advertisex.runners import follow
    from advertisex.runners.follow import Follower

    done: list[str] = []
    monkeypatch.setattr(follow, "release_memory", lambda: done.append("released"))
    runner = ax.runner
    update = runner.update_marts

    def update_marts(*args):
        done.append("marts")
        return update(*args)

    monkeypatch.setattr(runner, "update_marts", update_marts)
    ax.landing.write_segment("impressions", _impression("u1"), label="a")
    follower = Follower(runner, interval=0.01, marts_every=3600)
    run_follower(follower, on_marts=lambda update: follower.stop.set())
    assert done == ["marts", "released"]

    done.clear()
    ran = threading.Event()

    def maintain(lake, landing, *, trigger, keep, stop):
        done.append("maintenance")
        ran.set()
        return object()

    monkeypatch.setattr(upkeep, "maintain", maintain)
    maintaining = Follower(ax.runner, interval=0.01, maintain_every=0.0)
    run_follower(maintaining, on_maintain=lambda report: maintaining.stop.set())
    assert ran.is_set() and done == ["maintenance", "released"]


def test_a_follower_ended_by_an_error_waits_for_its_maintenance_run(ax, monkeypatch):
    """A follower raising an error it cannot retry (on its way to the CLI's ``error:``
    line and exit 2) left its maintenance run going on a daemon thread: the interpreter
    then finalized while that thread was inside pyiceberg / SQLite / Arrow, and the process
    aborted (exit 134, or 139) in 9 of 30 runs. The run is now told to stop and waited for."""
    import threading

    from advertisex.errors import UserInputError
    from advertisex.lake import upkeep
    from advertisex.runners.follow import Follower

    started, told = threading.Event(), []

    def maintain(lake, landing, *, trigger, keep, stop):  # a table that takes a while
        started.set()
        told.append(stop.wait(10))
        raise RuntimeError("interrupted")

    monkeypatch.setattr(upkeep, "maintain", maintain)
    runner, passes = ax.runner, []

    def pending():
        passes.append(1)
        if len(passes) > 1 and started.wait(10):
            raise UserInputError("bad setting", hint="fix advertisex.toml")
        return []

    runner.pending = pending
    follower = Follower(runner, interval=0.01, maintain_every=0.0)
    with pytest.raises(UserInputError):
        follower.run(lambda batch: None)
    assert follower._upkeep is not None and not follower._upkeep.is_alive()
    assert told == [True]  # told to stop, not left to run out its table
    assert not follower._upkeep.daemon  # an exit past the follower's wait still waits


def _impression_of(user: str, n: int) -> bytes:
    return (
        f'{{"timestamp":"2026-01-01T00:00:0{n}Z","ad_creative_id":"c","user_id":"{user}",'
        f'"website":"w","impression_id":"i-{n}"}}\n'
    ).encode()


def test_a_follower_reads_fresh_metadata_after_a_failed_pass(tmp_path, monkeypatch):
    """Under ``up``, ``forget`` in another process rewrote the tables, expired their
    history and deleted a file the follower's batch had just written (unreferenced, and
    holding the user): the commit failed, as it should. But the follower kept the tables
    it had opened before, whose metadata named the files just deleted, and every later
    pass failed reading them ("curated.impressions changed while it was read"), 30 s
    apart, until the process was restarted: processing stopped for good."""
    import advertisex
    from advertisex.runners import forget
    from advertisex.runners.follow import Follower

    # The erasure runs inside the follower's own pass here, so the batches it would wait
    # for (those of the files it rewrote) cannot come while it waits: not two minutes.
    monkeypatch.setattr(forget, "WAIT_FOR_BATCHES", 0.2)
    ax = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    other = advertisex.open(data_dir=tmp_path / "data", correlation={"update_marts": False})
    ax.landing.write_segment("impressions", _impression_of("gone", 1) + _impression_of("u", 2))
    write_files, forgotten, failures = ax.lake.write_files, [], []

    def racing(*args, **kwargs):  # type: ignore[no-untyped-def]
        written = write_files(*args, **kwargs)
        committed = ax.query("select count(*) n from curated.impressions").column("n")[0]
        if committed.as_py() and not forgotten:  # the second batch, written, not committed
            forgotten.append(other.forget(["gone"]))
        return written

    ax.lake.write_files = racing
    follower = Follower(ax.runner, interval=0.01, max_backoff=0.05)

    def on_batch(done):  # type: ignore[no-untyped-def]
        if not forgotten:
            ax.landing.write_segment(
                "impressions", _impression_of("gone", 3) + _impression_of("u", 4)
            )
        else:
            follower.stop.set()

    def on_retry(error, wait):  # type: ignore[no-untyped-def]
        failures.append(error)
        if len(failures) > 5:
            follower.stop.set()

    follower.run(on_batch, on_retry=on_retry)
    assert forgotten and forgotten[0].rows["curated.impressions"] == 1
    assert len(failures) == 1, [str(f) for f in failures]  # the commit that lost its file
    rows = ax.query("select user_id, impression_id from curated.impressions order by 2")
    assert rows.to_pylist() == [
        {"user_id": "u", "impression_id": "i-2"},
        {"user_id": "u", "impression_id": "i-4"},
    ]
