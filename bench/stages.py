"""Where `advertisex process` spends its CPU, stage by stage: the piece threads' own CPU
time (``time.thread_time``) added up per step of the embedded runner and per source.

Ingests ``bench/process.py``'s data set into a new lake, then runs ``advertisex process``
in this process with the runner's steps wrapped: each step's time is the CPU of the thread
that ran it, so a step that waits (for a decoder worker, a dedupe turn) counts only what it
did. The Parquet writers' threads are counted by the writes they ran. The decoder workers
are other processes: their CPU is not here (``bench/decode.py`` measures the hand-off).
A step's parts are listed under it (``step > part``); µs/event is over all the batch's events.

    python bench/stages.py [--events 2000000]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive
from _checkout import use_this_checkout
from process import _dataset

SOURCES = ("impressions", "bids", "clicks")
_spent: dict[str, float] = defaultdict(float)
_lock = threading.Lock()


def _add(label: str, seconds: float) -> None:
    with _lock:
        _spent[label] += seconds


def _label(name: str, args: tuple[Any, ...]) -> str:
    source = next((a for a in args[:2] if isinstance(a, str) and a in SOURCES), None)
    return f"{name} ({source})" if source else name


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            _add(_label(name, args), time.thread_time() - started)

    return timed


def _timed_generator(name: str, function: Callable[..., Iterator[Any]]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        items = function(*args, **kwargs)
        while True:
            started = time.thread_time()
            try:
                item = next(items)
            except StopIteration:
                _add(name, time.thread_time() - started)
                return
            _add(name, time.thread_time() - started)
            yield item

    return timed


def _wrap() -> None:
    """The runner's steps, each where its caller looks it up."""
    from advertisex.kernels import standardize
    from advertisex.lake import datafiles, tables
    from advertisex.runners import batch, embedded

    for name in ("frame_segments", "standardize_source", "finish_source"):
        setattr(embedded, name, _timed(f"{name}", getattr(embedded, name)))
    batch.BatchDedupe.verdicts = _timed("dedupe", batch.BatchDedupe.verdicts)  # type: ignore[method-assign]
    for name in ("check_domains", "enrich"):
        setattr(batch, name, _timed(f"standardize_source > {name}", getattr(batch, name)))
    for name in ("accepted_rows", "filter_invalid_traffic"):
        setattr(batch, name, _timed(f"finish_source > {name}", getattr(batch, name)))
    batch.STANDARDIZERS = {
        source: _timed(f"standardize_source > {function.__name__}", function)
        for source, function in batch.STANDARDIZERS.items()
    }
    for name in ("_parse_impressions", "_check_impressions", "payload_hashes"):
        label = f"standardize_source > standardize_* > {name}"
        setattr(standardize, name, _timed(label, getattr(standardize, name)))
    datafiles.write_data_files = _timed_generator(
        "write_files > Parquet (writer threads)", datafiles.write_data_files
    )
    tables.Lake.commit_files = _timed("commit", tables.Lake.commit_files)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive, default=2_000_000)
    args = parser.parse_args()
    use_this_checkout()  # not the checkout the virtualenv installed (bench/_checkout.py)
    source = _dataset(args.events)
    work = tempfile.mkdtemp(prefix="adx-stages-")
    os.environ["ADVERTISEX_DATA_DIR"] = str(Path(work) / "data")
    os.environ.setdefault("ADVERTISEX_CORRELATION__UPDATE_MARTS", "false")
    ingest = [sys.executable, "-m", "advertisex.cli.app", "ingest", str(source)]
    subprocess.run([*ingest, "--format", "json"], check=True, stdout=subprocess.DEVNULL)
    _wrap()
    from advertisex.cli.app import main as cli

    sys.argv = ["advertisex", "process", "--format", "json"]
    started = time.perf_counter()
    with (
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),
        contextlib.suppress(SystemExit),
    ):
        cli()
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    events = args.events
    print(
        f"\nadvertisex process, {events:,} events: {wall:.2f} s wall, "
        f"{usage.ru_utime + usage.ru_stime:.2f} s CPU in this process (its decoder "
        "workers not counted)"
    )
    print(f"{'step (the CPU of the thread that ran it)':58s} {'CPU s':>7s} {'µs/event':>9s}")
    for label in sorted(_spent):  # a step's parts under it
        seconds = _spent[label]
        print(f"{label:58s} {seconds:7.3f} {seconds / events * 1e6:9.3f}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":  # the decoder workers' forkserver imports this file again
    main()
