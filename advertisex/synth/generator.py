"""``generate()``: synthetic traffic files plus the ground truth a correct pipeline must match.

Stages, each with its own random stream spawned from the seed (so adding draws to one
stage never shifts another's): world → impressions → clicks and conversions → bid
requests → per source: schedule (late, duplicates, conflicts) and malformed records →
hourly files → ``truth.json``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.errors import UserInputError
from advertisex.synth.avro_out import DEFLATE_LEVEL
from advertisex.synth.clock import Window
from advertisex.synth.config import FaultConfig

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from advertisex.synth.schedule import Mutate
    from advertisex.synth.world import World

IMPRESSION_SHARE = 0.55  # of valid records; bid requests take ~43 %, responses the rest
MIN_USERS = 1000
EVENTS_PER_USER = 20
GENERATION_STEPS = 4  # progress units before the first file is written
POSITIONS = ["_hour", "_arrival", "_seq"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Traffic:
    """Unique valid events of one run, before faults and files."""

    world: World
    impressions: pl.DataFrame
    responses: pl.DataFrame  # clicks and conversions
    bids: pl.DataFrame
    # dims files by name (campaigns, creatives, and campaigns-new with FaultConfig.new_campaign)
    dims: dict[str, pl.DataFrame]


@dataclass(frozen=True)
class Landed:
    """One source as written: scheduled valid records, malformed count, file names."""

    records: pl.DataFrame
    malformed: int
    files: list[str]


def generate(
    out_dir: Path,
    *,
    events: int,
    seed: int,
    start: dt.date,
    days: int = 1,
    faults: FaultConfig = FaultConfig(),
    progress: Progress | None = None,
    on_file: Callable[[Path], None] | None = None,
    avro_level: int = DEFLATE_LEVEL,
) -> dict[str, Any]:
    """Write ~``events`` records of ad traffic under ``out_dir`` and return ``truth.json``.

    ``on_file`` is told of each traffic file (impressions, clicks, bids) as soon as it is
    written, from the thread that wrote it: a caller may ingest it while the rest is made.
    ``avro_level``: zlib's level for the bid files' deflate blocks (the records are the
    same at every level; 0 writes and reads fastest, into files ≈ 3x larger).

    Same arguments, byte-identical files. Example::

        truth = generate(Path("data/raw"), events=100_000, seed=7,
                         start=date(2026, 11, 20), faults=FaultConfig.demo())
        truth["tables"]["impressions"]["unique"]
    """
    import numpy as np

    from advertisex.synth import truth
    from advertisex.synth.landing import remove_stale_files
    from advertisex.util import jsonutil

    check_arguments(events, seed, days)
    out_dir = _prepare(Path(out_dir))
    window = Window(start, days)
    seeds = np.random.SeedSequence(seed).spawn(10)
    streams = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
    step = _stepper(progress, GENERATION_STEPS + 3 * window.hours + 3)

    traffic = _simulate(streams[:4], window, events, faults, step)

    def wrote(path: Path) -> None:
        step()
        if on_file is not None:
            on_file(path)

    (out_dir / "dims" / "campaigns-new.csv").unlink(missing_ok=True)  # from an earlier run
    for name, frame in traffic.dims.items():
        frame.write_csv(out_dir / "dims" / f"{name}.csv", line_terminator="\n")
    step()
    step()
    # Bid files (Rust encoding, zlib), click files and impression files (polars, disk
    # writes) spend most of their time outside the GIL, so writing them side by side uses
    # both cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        bids = pool.submit(
            _land_bids,
            streams[6],
            streams[9],
            traffic,
            window,
            faults,
            out_dir,
            seed,
            wrote,
            avro_level,
        )
        clicks = pool.submit(
            _land_responses, streams[5], streams[8], traffic, window, faults, out_dir, wrote
        )
        landed = {
            "impressions": _land_impressions(
                streams[4], streams[7], traffic, window, faults, out_dir, wrote
            ),
            "clicks": clicks.result(),
            "bids": bids.result(),
        }
    remove_stale_files(out_dir, {name for source in landed.values() for name in source.files})

    result = truth.build(
        run={
            "seed": seed,
            "events": events,
            "start": start.isoformat(),
            "days": days,
            "faults": faults.to_dict(),
        },
        window=window,
        world=traffic.world,
        landed={name: (s.records, s.malformed, s.files) for name, s in landed.items()},
        dims_files=sorted(f"dims/{name}.csv" for name in traffic.dims),
    )
    (out_dir / "truth.json").write_bytes(
        jsonutil.dumps(result, indent=True, sort_keys=True) + b"\n"
    )
    step()
    return result


def _simulate(
    streams: list[np.random.Generator],
    window: Window,
    events: int,
    faults: FaultConfig,
    step: Callable[[], None],
) -> Traffic:
    """Draw the world and its unique valid events, sized so files hold ~``events`` records."""
    from advertisex.synth.bids import make_bids
    from advertisex.synth.impressions import make_impressions
    from advertisex.synth.responses import make_responses
    from advertisex.synth.world import build_world, launch_campaign

    # Valid records leave room for the repeats and junk the faults add on top.
    extra = faults.duplicate_rate + faults.conflict_rate + faults.malformed_rate
    n_valid = round(events / (1.0 + extra))
    world = build_world(streams[0], window, max(MIN_USERS, events // EVENTS_PER_USER))
    dims = {"campaigns": world.campaigns, "creatives": world.creatives}
    if faults.new_campaign:
        world, dims["campaigns"], dims["campaigns-new"] = launch_campaign(world, window.start)
        dims["creatives"] = world.creatives
    step()
    n_impressions = round(IMPRESSION_SHARE * n_valid)
    impressions = make_impressions(streams[1], world, window, n_impressions, faults.bot_rate)
    step()
    responses = make_responses(streams[2], world, window, impressions)
    step()
    # Bid requests fill the rest exactly, so valid records add up to n_valid.
    n_bids = max(0, n_valid - len(impressions) - len(responses))
    impressions, bids = make_bids(streams[3], world, window, impressions, n_bids)
    step()
    return Traffic(world, impressions, responses, bids, dims)


def _schedule_with_junk(
    rng: np.random.Generator,
    valid: pl.DataFrame,
    window: Window,
    faults: FaultConfig,
    mutate: Mutate,
    id_column: str,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Scheduled valid records, and templates for this source's malformed records."""
    from advertisex.synth.schedule import malformed_templates, schedule

    records = schedule(rng, valid, window, faults, mutate)
    n_bad = round(faults.malformed_rate * len(valid))
    bad = malformed_templates(rng, valid, window, n_bad, id_column, len(records))
    return records, bad


def _land_impressions(
    rng: np.random.Generator,
    junk_rng: np.random.Generator,
    traffic: Traffic,
    window: Window,
    faults: FaultConfig,
    out_dir: Path,
    wrote: Callable[[Path], None],
) -> Landed:
    import polars as pl

    from advertisex.synth import ndjson_out
    from advertisex.synth.landing import write_text_source

    records, bad = _schedule_with_junk(
        rng,
        traffic.impressions,
        window,
        faults,
        ndjson_out.conflicting_impressions,
        "impression_id",
    )
    lines = pl.concat(
        [
            ndjson_out.render_impressions(records, POSITIONS),
            bad.select(POSITIONS).with_columns(
                line=ndjson_out.malformed_impressions(junk_rng, bad)
            ),
        ]
    )
    files = write_text_source(out_dir, "impressions", window, lines, None, wrote)
    return Landed(records, len(bad), files)


def _land_responses(
    rng: np.random.Generator,
    junk_rng: np.random.Generator,
    traffic: Traffic,
    window: Window,
    faults: FaultConfig,
    out_dir: Path,
    wrote: Callable[[Path], None],
) -> Landed:
    import polars as pl

    from advertisex.synth import csv_out
    from advertisex.synth.landing import write_text_source

    records, bad = _schedule_with_junk(
        rng, traffic.responses, window, faults, csv_out.conflicting_responses, "event_id"
    )
    lines = pl.concat(
        [
            records.select(POSITIONS).with_columns(line=csv_out.render_responses(records)),
            bad.select(POSITIONS).with_columns(line=csv_out.malformed_responses(junk_rng, bad)),
        ]
    )
    header = csv_out.header_line()
    files = write_text_source(out_dir, "clicks", window, lines, header, wrote)
    return Landed(records, len(bad), files)


def _land_bids(
    rng: np.random.Generator,
    junk_rng: np.random.Generator,
    traffic: Traffic,
    window: Window,
    faults: FaultConfig,
    out_dir: Path,
    seed: int,
    wrote: Callable[[Path], None],
    avro_level: int,
) -> Landed:
    import polars as pl

    from advertisex.synth.avro_out import conflicting_bids, malformed_bids
    from advertisex.synth.landing import write_bid_source

    records, bad = _schedule_with_junk(
        rng, traffic.bids, window, faults, conflicting_bids, "auction_id"
    )
    rows = pl.concat([records, malformed_bids(junk_rng, bad)], how="diagonal_relaxed")
    files = write_bid_source(out_dir, window, rows, seed, wrote, avro_level)
    return Landed(records, len(bad), files)


def _stepper(progress: Progress | None, total: int) -> Callable[[], None]:
    """A callback advancing ``progress`` by one unit of ``total`` per call."""
    done = 0
    lock = threading.Lock()  # steps come from two threads while files are written
    if progress is not None:
        progress(0, total)

    def step() -> None:
        nonlocal done
        with lock:
            done += 1
            if progress is not None:
                progress(done, total)

    return step


# The most a run may ask for: a billion events (≈ 450 GB of files: more is several runs,
# each its own --out and --seed), a seed that truth.json's 64-bit integers hold, and ten
# years of days. Past them the run failed as a bug: NumPy's arrays too big, JSON's
# integers past 64 bits, dates past the calendar.
MAX_EVENTS = 1_000_000_000
MAX_SEED = 2**63 - 1
MAX_DAYS = 3_660


def check_arguments(events: int, seed: int, days: int) -> None:
    """Raise UserInputError, saying what to pass instead, for unusable arguments."""
    if isinstance(events, bool) or not isinstance(events, int) or not 0 <= events <= MAX_EVENTS:
        raise UserInputError(
            f"events must be a whole number of records from 0 to {MAX_EVENTS:,}; got {events!r}",
            hint="pass e.g. --events 100000 (more than a billion: several runs, each its own "
            "--out and --seed)",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserInputError(
            f"seed must be a whole number from 0 to {MAX_SEED}; got {seed!r}",
            hint="pass e.g. --seed 42",
        )
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise UserInputError(
            f"days must be from 1 to {MAX_DAYS:,}; got {days!r}", hint="pass e.g. --days 1"
        )


def _prepare(out_dir: Path) -> Path:
    """Create the output folders, turning OS errors into a message about ``--out``."""
    try:
        for folder in ("impressions", "clicks", "bids", "dims"):
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".advertisex-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserInputError(
            f"cannot write generated files to {out_dir}: {error.strerror or error}",
            hint="pass --out a directory you can write to (it is created if missing)",
        ) from error
    return out_dir
