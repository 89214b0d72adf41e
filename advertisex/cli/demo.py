"""``advertisex demo``: a realistic day of traffic, end to end, checked against ground truth."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import shutil
import sysconfig
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import typer

from advertisex.cli.common import FormatOption, open_platform, progress_bar
from advertisex.cli.output import Format, print_json, print_message, print_rows, table_rows
from advertisex.cli.progress import across_batches
from advertisex.errors import UserInputError


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    events: int = typer.Option(1_000_000, help="How many events to generate."),
    seed: int = typer.Option(42, help="Generator seed (same seed, same data)."),
    fresh: bool = typer.Option(False, help="Delete the demo's data first and start over."),
    fmt: Format = FormatOption,
) -> None:
    """Generate a day of traffic, ingest it, process it, report, and check it against truth."""
    from advertisex.util.nopandas import refused as refused_pandas

    ax = open_platform(create=True)
    data_dir = ax.data_location()
    source_dir = data_dir / "demo-input"
    if fresh:
        _start_over(ax, data_dir, source_dir)
        ax = open_platform(create=True)  # on the emptied folder, nothing cached from before
    human = fmt is Format.table
    clock = _Clock()
    # Nothing before the report needs pandas: Arrow imports it on its first array made from
    # NumPy or a list (the bid files' table, on the generator's second thread) only to ask
    # whether it was handed a pandas object: ≈ 0.4 s of CPU holding the GIL while the
    # generator runs. The report and the check run without it too.
    with refused_pandas():
        truth, ingested, segments, report = _generate_and_process(
            ax, source_dir, events, seed, human, clock
        )
    phases = {f"process: {name}": seconds for name, seconds in report.phases.items()}
    with clock("report"):
        day = date.fromisoformat(truth["start"])
        campaigns = ax.report_campaigns(day, day)
    with clock("check"):
        check = _check_against_truth(ax, truth, segments)
    timings = clock.total()
    if not human:
        print_json(
            {
                "timings_s": {k: round(v, 2) for k, v in timings.items()},
                "phases_s": {k: round(v, 2) for k, v in phases.items()},
                # CPU of this process (every thread; not the decoder worker processes)
                "cpu_s": {k: round(v, 2) for k, v in clock.cpu.items()},
                "landed": sum(r.status == "landed" for r in ingested),
                "truth_check": check,
                "data_dir": str(data_dir),
            }
        )
        return
    from advertisex.cli.pipeline import print_accounting
    from advertisex.cli.report import NARROWINGS

    # As `report campaigns` shows it: 15 blocks of 19 lines were the demo's first answer on
    # an ordinary terminal. Its columns left out are the report's to show.
    see_all = "advertisex report campaigns --columns all"
    print_rows(
        table_rows(campaigns)[:15],
        fmt,
        title="campaigns by day (first 15 rows)",
        columns=campaigns.column_names,
        narrowing=dataclasses.replace(NARROWINGS["campaigns"], see_all=see_all),
    )
    print_accounting(report, fmt)
    print_rows(check, fmt, title="the demo's rows against the generator's truth.json")
    ok = all(row["match"] for row in check)
    print_message(
        (
            "[bold green]every table matches truth.json[/]"
            if ok
            else "[bold red]MISMATCH against truth.json[/]"
        )
        + "  ·  "
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + "\n("
        + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items())
        + ")"
    )
    print_message(_next_steps(data_dir, Path(source_dir), truth["start"]))
    print_message(_how_to_run())
    console = ax.settings.console
    print_message(
        f"See it in a browser: run [bold]advertisex console[/] and open "
        f"[bold]http://{console.host}:{console.port}/[/] (or `advertisex up`: the collector's port)"
    )
    if not ok:
        raise typer.Exit(1)


def _generate_and_process(
    ax: Any, source_dir: Path, events: int, seed: int, human: bool, clock: _Clock
) -> tuple[dict, list[Any], list[str], Any]:
    """Generate (unless the data is there), ingest and process the demo's traffic:
    (truth, ingest results, the demo's landing files, the processing report)."""
    from advertisex import synth
    from advertisex.landing.zone import Ingest, expand_paths
    from advertisex.util import jsonutil
    from advertisex.util.timeutil import utcnow

    ready = _get_ready(ax)
    truth_file = source_dir / "truth.json"
    truth = jsonutil.loads(truth_file.read_bytes()) if truth_file.exists() else None
    early = None  # files ingested as soon as they are generated
    if truth is None or truth.get("seed") != seed or truth.get("events") != events:
        shutil.rmtree(source_dir, ignore_errors=True)
        early = Ingest(ax.landing)
        with clock("generate"), progress_bar(human, "generate", unit="steps") as progress:
            truth = synth.generate(
                source_dir,
                events=events,
                seed=seed,
                start=(utcnow() - timedelta(days=1)).date(),
                days=1,
                faults=synth.FaultConfig.demo(),
                progress=(lambda done, total: progress("write", done, total)) if progress else None,
                on_file=early.add,
                # Stored deflate blocks: the same records, written and inflated ≈ 0.8 s of
                # CPU sooner per million events than at level 1, in files ≈ 3x larger
                # (the demo's own input, read once, from a local folder).
                avro_level=0,
            )

    with clock("ingest"), progress_bar(human, "ingest") as progress:
        folders = [str(source_dir / s) for s in ("impressions", "clicks", "bids")]
        if early is None:
            ingested = ax.ingest(folders, None, progress)
        else:  # what is left to land of the files handed over while they were generated
            files = expand_paths(folders)
            told = (lambda n: progress("ingest", n, len(files))) if progress else None
            ingested = early.results(told)
            handed = {r.path for r in ingested}
            rest = [str(p) for p in files if str(p) not in handed]  # none, unless a bug
            ingested += ax.ingest(rest) if rest else []
    # The demo's own landing files: what it checks, and what --fresh may delete.
    segments = sorted({r.segment for r in ingested if r.segment})
    (source_dir / SEGMENTS_FILE).write_bytes(jsonutil.dumps(segments, indent=True))
    with clock("process"), progress_bar(human, "process") as progress:
        ready.join()
        runner = ax.runner
        report = runner.process(across_batches(progress, len(runner.pending())))
    return truth, ingested, segments, report


class _Clock:
    """Wall-clock and CPU seconds (this process, every thread) of each named phase."""

    def __init__(self) -> None:
        self.started = time.perf_counter(), time.process_time()
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[phase] = time.perf_counter() - wall
        self.cpu[phase] = time.process_time() - cpu

    def total(self) -> dict[str, float]:
        """Each phase's wall-clock seconds and the ``total`` since the clock started."""
        self.cpu["total"] = time.process_time() - self.started[1]
        return {**self.wall, "total": time.perf_counter() - self.started[0]}


def _get_ready(ax: Any) -> threading.Thread:
    """Started before the data is generated, on a thread: load the processor's modules,
    create the lake's tables and start the decoder workers. Generating is native code
    outside the GIL, so this takes the second core instead of a share of ``process``. What
    fails here fails again, with its message, where ``process`` does it itself."""

    def prepare() -> None:
        import importlib

        from advertisex.formats.bounded import warm
        from advertisex.util.allocator import arrow_from_jemalloc

        # Arrow's pool chosen before the decoder workers start: they inherit it. glibc's
        # bounds (util.allocator) wait for the processor, which sets them as its batch
        # starts: the generator beside this thread remakes arrays of 4-8 MB step after
        # step, each a fresh mapping under the bounds (100-160 k page faults more a run).
        arrow_from_jemalloc()
        # The heap as it stands, and again once the processor's modules are in, is kept out
        # of the cycle collector's full passes: they walked every module object each time
        # (the demo's collections 0.45 -> 0.29 s of CPU).
        gc.freeze()
        with contextlib.suppress(Exception):
            warm()
            for module in _PROCESSOR_MODULES:
                importlib.import_module(module)
            ax.lake.ensure_all()
        gc.freeze()

    # Not a daemon: a demo that ends before it is joined (generation failed, Ctrl-C) waits
    # for it, rather than finalizing while it is inside pyiceberg, SQLite or an import.
    thread = threading.Thread(target=prepare, name="demo-get-ready")
    thread.start()
    return thread


# What `process` and the report load on first use.
_PROCESSOR_MODULES = (
    "advertisex.runners.embedded",
    "advertisex.marts.iceberg",
    "advertisex.reports.campaigns",
)


def _check_against_truth(ax: Any, truth: dict, segments: list[str]) -> list[dict]:
    """Rows that came from the demo's own landing files against truth.json, table by table
    (whatever else the lake holds: the tour's data, live traffic …)."""
    mine = "(" + ", ".join(_sql_text(s) for s in segments) + ")" if segments else "(NULL)"

    expected = {f"curated.{t}": e["unique_human"] for t, e in truth["tables"].items()}
    expected["curated.filtered"] = sum(t["bots"] for t in truth["tables"].values())
    expected["curated.quarantine"] = truth["quarantine"]
    # One statement: the tables are listed and opened once, as of one committed state.
    sql = " union all ".join(
        f"select {i} as i, count(*) as n from {table} where source_file in {mine}"
        for i, table in enumerate(expected)
    )
    answer = ax.query(sql).to_pydict()
    counts = dict(zip(answer["i"], answer["n"], strict=True))
    rows = []
    for i, (table, want) in enumerate(expected.items()):
        got = counts[i]
        rows.append({"table": table, "expected": want, "actual": got, "match": got == want})
    return rows


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _start_over(ax: Any, data_dir: Path, source_dir: Path) -> None:
    """--fresh: delete the lake when all it holds is the demo's; else refuse and say why."""
    if not any(data_dir.iterdir()):
        return
    others = _not_the_demos(ax, data_dir, source_dir)
    if others:
        raise UserInputError(
            f"--fresh would delete {data_dir}, which holds more than the demo made: {others}",
            hint="run the demo on a lake of its own (ADVERTISEX_DATA_DIR=demo-data advertisex "
            "demo --fresh), or delete that folder yourself if nothing in it matters",
        )
    shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


def _not_the_demos(ax: Any, data_dir: Path, source_dir: Path) -> str | None:
    """What in ``data_dir`` the demo did not make, in words; None when there is nothing."""
    from advertisex.util import jsonutil

    if ax.settings.lake.catalog_uri or ax.settings.scale.landing or ax.settings.lake.warehouse:
        return (
            "a catalog, warehouse or landing zone configured elsewhere, which --fresh cannot clear"
        )
    strangers = sorted(p.name for p in data_dir.iterdir() if p.name not in LAKE_ENTRIES)
    if strangers:
        return "files it did not make (" + ", ".join(strangers[:5]) + ")"
    listed = source_dir / SEGMENTS_FILE
    mine = set(jsonutil.loads(listed.read_bytes())) if listed.exists() else set()
    landed = [s.name for s in ax.landing.segments()]
    foreign = [name for name in landed if name not in mine]
    if foreign:
        return f"{len(foreign):,} landing files that did not come from the demo"
    dims = [t for t in ("dims.campaigns", "dims.creatives") if _has_rows(ax, t)]
    if dims:
        return "dimensions loaded by hand (" + ", ".join(dims) + ")"
    return None


def _has_rows(ax: Any, table: str) -> bool:
    return bool(ax.query(f"select count(*) as n from {table}").column("n")[0].as_py())


# What a lake's data directory holds (config.Settings' layout, the monitor's state, the
# processor lock and a follower's health file, the spill directory a batch's stored keys leave, the console's query
# slots) besides the demo's input.
LAKE_ENTRIES = {
    "catalog.db", "catalog.db-journal", "catalog.db-wal", "catalog.db-shm", "landing",
    "warehouse", "monitor", "logs", "processor.lock", "processor", "spill", "console",
    "demo-input",
}  # fmt: skip
SEGMENTS_FILE = "segments.json"


def _how_to_run() -> str:
    """How to run the commands above from this shell: advertisex may not be on PATH (a
    virtualenv that is not activated, as after `make demo`)."""
    here = Path(sysconfig.get_path("scripts")).resolve()  # where the console script is
    found = shutil.which("advertisex")
    if found and Path(found).resolve().parent == here:
        return ""
    bin_dir = os.path.relpath(here)
    if bin_dir.startswith(".."):
        bin_dir = str(here)
    if (here / "activate").exists():
        return (
            f"advertisex is not on your PATH in this shell: run [bold]source "
            f"{bin_dir}/activate[/] first (or call {bin_dir}/advertisex …)"
        )
    return f"advertisex is not on your PATH in this shell: call {bin_dir}/advertisex …"


def _next_steps(data_dir: Path, source_dir: Path, day: str) -> str:
    return f"""
Data is under [bold]{data_dir}[/] (landing zone, Iceberg warehouse, SQLite catalog);
the generated input files are in {source_dir}. Try:
  advertisex query "select device_type, count(*) from curated.impressions group by all"
  advertisex query "select reasons, raw from curated.quarantine limit 5"
  advertisex query "select * from ops.batches" --format json
  advertisex report campaigns --from {day} --format csv
  advertisex ingest {source_dir}/impressions   # again: a no-op, same bytes
"""
