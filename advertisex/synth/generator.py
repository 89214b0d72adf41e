"""``generate()``: synthetic traffic files plus the ground truth a correct pipeline must match.

Stages, each with its own random stream spawned from the seed (so adding draws to one
stage never shifts another's): world → impressions → clicks and conversions → bid
requests → per source: schedule (late, duplicates, conflicts) and malformed records →
hourly files → ``truth.json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from advertisex.errors import UserInputError
from advertisex.synth.clock import Window
from advertisex.synth.config import FaultConfig

IMPRESSION_SHARE = 0.55  # of valid records; bid requests take ~43 %, responses the rest
MIN_USERS = 1000
EVENTS_PER_USER = 20
GENERATION_STEPS = 4  # progress units before the first file is written

Progress = Callable[[int, int], None]


def generate(
    out_dir: Path,
    *,
    events: int,
    seed: int,
    start: dt.date,
    days: int = 1,
    faults: FaultConfig = FaultConfig(),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write ~``events`` records of ad traffic under ``out_dir`` and return ``truth.json``.

    Same arguments, byte-identical files. Example::

        truth = generate(Path("data/raw"), events=100_000, seed=7,
                         start=date(2026, 11, 20), faults=FaultConfig.demo())
        truth["tables"]["impressions"]["unique"]
    """
    import numpy as np
    import polars as pl

    from advertisex.synth import bids as bid_stage
    from advertisex.synth import csv_out, ndjson_out, truth
    from advertisex.synth.avro_out import conflicting_bids, malformed_bids
    from advertisex.synth.impressions import make_impressions
    from advertisex.synth.landing import remove_stale_files, write_bid_source, write_text_source
    from advertisex.synth.responses import make_responses
    from advertisex.synth.schedule import malformed_templates, schedule
    from advertisex.synth.world import build_world
    from advertisex.util import jsonutil

    _check_arguments(events, seed, days)
    out_dir = _prepare(Path(out_dir))
    window = Window(start, days)
    streams = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(10)]
    total_steps = GENERATION_STEPS + 3 * window.hours + 3
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total_steps)

    if progress is not None:
        progress(0, total_steps)

    # Valid records leave room for the repeats and junk the faults add on top.
    extra = faults.duplicate_rate + faults.conflict_rate + faults.malformed_rate
    n_valid = round(events / (1.0 + extra))
    world = build_world(streams[0], window, max(MIN_USERS, events // EVENTS_PER_USER))
    step()
    impressions = make_impressions(
        streams[1], world, window, round(IMPRESSION_SHARE * n_valid), faults.bot_rate
    )
    step()
    responses = make_responses(streams[2], world, window, impressions)
    step()
    n_bids = max(0, n_valid - len(impressions) - len(responses))
    impressions, bids = bid_stage.make_bids(streams[3], world, window, impressions, n_bids)
    step()

    dims = out_dir / "dims"
    world.campaigns.write_csv(dims / "campaigns.csv", line_terminator="\n")
    step()
    world.creatives.write_csv(dims / "creatives.csv", line_terminator="\n")
    step()

    def land(valid: pl.DataFrame, stream: int, mutate: Any, id_column: str) -> tuple[
        pl.DataFrame, pl.DataFrame
    ]:
        rng = streams[stream]
        records = schedule(rng, valid, window, faults, mutate)
        n_bad = round(faults.malformed_rate * len(valid))
        bad = malformed_templates(rng, valid, window, n_bad, id_column, len(records))
        return records, bad

    positions = ["_hour", "_arrival", "_seq"]
    imp_records, imp_bad = land(impressions, 4, ndjson_out.conflicting_impressions, "impression_id")
    imp_lines = pl.concat(
        [
            ndjson_out.render_impressions(imp_records, positions),
            imp_bad.select(positions).with_columns(
                line=ndjson_out.malformed_impressions(streams[7], imp_bad)
            ),
        ]
    )
    imp_files = write_text_source(out_dir, "impressions", window, imp_lines, None, step)

    resp_records, resp_bad = land(responses, 5, csv_out.conflicting_responses, "event_id")
    resp_lines = pl.concat(
        [
            resp_records.select(positions).with_columns(
                line=csv_out.render_responses(resp_records)
            ),
            resp_bad.select(positions).with_columns(
                line=csv_out.malformed_responses(streams[8], resp_bad)
            ),
        ]
    )
    header = csv_out.header_line()
    resp_files = write_text_source(out_dir, "clicks", window, resp_lines, header, step)

    bid_records, bid_bad = land(bids, 6, conflicting_bids, "auction_id")
    bid_landed = pl.concat(
        [bid_records, malformed_bids(streams[9], bid_bad)], how="diagonal_relaxed"
    )
    bid_files = write_bid_source(out_dir, window, bid_landed, seed, step)
    remove_stale_files(out_dir, set(imp_files + resp_files + bid_files))

    sources = {
        "impressions": truth.source_summary(imp_records, len(imp_bad), imp_files),
        "clicks": truth.source_summary(resp_records, len(resp_bad), resp_files),
        "bids": truth.source_summary(bid_records, len(bid_bad), bid_files),
    }
    result: dict[str, Any] = {
        "seed": seed,
        "events": events,
        "start": start.isoformat(),
        "days": days,
        "faults": faults.to_dict(),
        "sources": sources,
        "tables": {
            "impressions": truth.table_summary(imp_records, "impressions"),
            "clicks": truth.table_summary(resp_records, "clicks"),
            "conversions": truth.table_summary(resp_records, "conversions"),
            "bid_requests": truth.table_summary(bid_records, "bid_requests"),
        },
        "quarantine": sum(source["malformed"] for source in sources.values()),
        "ground_truth": {
            "records_total": sum(source["records"] for source in sources.values()),
            "window": {
                "start": dt.datetime.fromtimestamp(window.start_ms / 1000, dt.UTC).isoformat(),
                "end": dt.datetime.fromtimestamp(window.end_ms / 1000, dt.UTC).isoformat(),
                "hours": window.hours,
            },
            "dims": {
                "files": ["dims/campaigns.csv", "dims/creatives.csv"],
                "campaigns": len(world.campaigns),
                "creatives": len(world.creatives),
            },
            "bot_user_ids": world.bot_user_ids(),
            "campaign_days": truth.campaign_days(imp_records, resp_records),
            **truth.extras(imp_records, resp_records, bid_records),
        },
    }
    (out_dir / "truth.json").write_bytes(jsonutil.dumps(result, indent=True, sort_keys=True) + b"\n")
    step()
    return result


def _check_arguments(events: int, seed: int, days: int) -> None:
    if isinstance(events, bool) or not isinstance(events, int) or events < 0:
        raise UserInputError(
            f"events must be a whole number of records, 0 or more; got {events!r}",
            hint="pass e.g. --events 100000",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserInputError(
            f"seed must be a non-negative whole number; got {seed!r}", hint="pass e.g. --seed 42"
        )
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise UserInputError(
            f"days must be at least 1; got {days!r}", hint="pass e.g. --days 1"
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
