"""Real-time verbs: ``serve`` (the collector), ``up`` (collector + continuous processing),
``keygen`` (a new collector API key). ``process --follow`` prints through :func:`follow_landing`.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any

import typer

from advertisex.cli.common import EngineOption, MasterOption
from advertisex.cli.output import Format, literal, print_message
from advertisex.errors import AdvertiseXError

HOST_HELP = "Interface to listen on; anything but loopback requires API keys."
PORT_HELP = "TCP port to listen on."


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(up)
    app.command()(keygen)


def _settings(host: str | None, port: int | None) -> Any:
    """Settings with --host / --port over the configured ones (checked like them), and the
    lake made if there is none yet."""
    from advertisex.api import AdvertiseX
    from advertisex.cli.common import announce_new_lake
    from advertisex.config import load_settings

    given = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    settings = load_settings(**({"collector": given} if given else {}))
    announce_new_lake(AdvertiseX(settings))
    return settings


def serve(
    host: str | None = typer.Option(None, "--host", help=HOST_HELP + " (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", "-p", help=PORT_HELP + " (default 8080)"),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        max=64,
        help="Processes serving the port (default: collector.workers, else one per CPU core).",
    ),
) -> None:
    """Run the HTTP collector (and the web console at /): events are fsync'd before they are acknowledged."""
    from advertisex.cli.console import beside_collector
    from advertisex.collector.server import serve as run
    from advertisex.collector.workers import default_workers

    settings = _settings(host, port)
    wrap = beside_collector(settings)
    count = workers or default_workers(settings)

    def ready(url: str) -> None:
        processes = f", {count} workers" if count > 1 else ""
        print_message(
            f"collector listening on [bold]{url}[/] → {literal(settings.landing_dir)}{processes} "
            f"(docs {url}/docs, metrics {url}/metrics; Ctrl-C or SIGTERM to stop)"
        )
        if wrap is not None:
            print_message(f"console on [bold]{url}/[/] (read API {url}/api/v1)")

    run(settings, on_ready=ready, wrap=wrap, workers=count)


def up(
    host: str | None = typer.Option(None, "--host", help=HOST_HELP + " (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", "-p", help=PORT_HELP + " (default 8080)"),
    interval: float = typer.Option(
        0.5, "--interval", help="Seconds between looks for new segments."
    ),
    engine: str | None = EngineOption,
    master: str | None = MasterOption,
) -> None:
    """Run the collector, continuous processing, the monitors and the web console at /.

    Its processing is 'process --follow' (--engine, --master passed on), maintenance included.
    """
    from advertisex.cli.common import check_engine, positive_seconds
    from advertisex.collector.server import check_binding, listen

    positive_seconds(interval, "--interval")  # the processor's: checked before it starts
    check_engine(engine)
    settings = _settings(host, port)
    check_binding(settings)  # fail here, in one place, before anything starts
    _check_writable(settings)
    c = settings.collector
    if c.port:  # a port taken already: said here, not by a collector started beside the rest
        listen(c.host, c.port).close()
    base = [sys.executable, "-m", "advertisex.cli.app"]
    # Own sessions: a terminal Ctrl-C reaches only this process, which stops the children in
    # order — the collector first (it seals its segments), then the processor.
    collector = subprocess.Popen(
        [*base, "serve", "--host", c.host, "--port", str(c.port)],
        start_new_session=True,
        preexec_fn=_child_setup(nice=0),
    )
    engine_args = [
        *(["--engine", engine] if engine else []),
        *(["--master", master] if master else []),
    ]
    processor = subprocess.Popen(
        [*base, "process", "--follow", "--interval", str(interval), *engine_args],
        start_new_session=True,
        preexec_fn=_child_setup(nice=10),  # on a small machine, intake latency comes first
    )
    # The monitors and alerting; if they fail, intake and processing go on regardless.
    monitor = subprocess.Popen(
        [*base, "monitor"], start_new_session=True, preexec_fn=_child_setup(nice=10)
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping.is_set() and collector.poll() is None and processor.poll() is None:
        stopping.wait(0.2)
    failed = {
        name: p.returncode
        for name, p in (("collector", collector), ("processor", processor))
        if p.poll()
    }
    for child in (collector, processor, monitor):  # in this order: no segment is left open
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(c.shutdown_grace_seconds + 20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if failed:
        print_message(children_failed(failed))
        raise typer.Exit(1)


def children_failed(failed: dict[str, int]) -> str:
    """What ``up`` says when children it started ended by themselves (name → exit status).
    One killed by a signal said nothing itself: "what it said is above" pointed at nothing.
    """
    import signal

    killed = {name: -status for name, status in failed.items() if status < 0}
    said = [name for name in failed if name not in killed]
    parts = [f"the {' and '.join(said)} exited unexpectedly"] if said else []
    for name, number in killed.items():
        try:
            how = signal.Signals(number).name
        except ValueError:
            how = f"signal {number}"
        why = " (the kernel's out-of-memory killer, or a kill -9)" if how == "SIGKILL" else ""
        parts.append(f"the {name} was killed by {how}{why}")
    then = (
        "what it said is above; fix that, then run advertisex up again"
        if said
        else "nothing acknowledged or committed is lost: run advertisex up again (if it "
        "happens again, check the memory: dmesg names what the out-of-memory killer stopped)"
    )
    return (
        f"[bold red]error:[/] {' and '.join(parts)}, and everything up started was stopped\n"
        f"  → {then}"
    )


def _check_writable(settings: Any) -> None:
    """A copy of a lake (still in place elsewhere) cannot be processed: say so before the
    collector, the processor and the monitors start, not when the processor dies."""
    from advertisex.lake.tables import Lake

    Lake(settings).check_writable()


def _child_setup(nice: int) -> Any:
    """Runs in each child before exec: lower its priority, and die with ``up``.

    PR_SET_PDEATHSIG (Linux) sends the child SIGTERM if ``up`` itself is killed, so a
    SIGKILL'd ``up`` leaves no collector holding the port; the child still shuts down
    gracefully on that SIGTERM.
    """

    from advertisex.util.isolate import die_with_parent

    def setup() -> None:
        if nice:
            os.nice(nice)
        die_with_parent(signal.SIGTERM)

    return setup


def keygen(
    name: str = typer.Option(
        ..., "--name", help="Who will hold the key (e.g. the ad server's name)."
    ),
    sources: str = typer.Option(
        "impressions,clicks,bids",
        "--sources",
        help="Comma-separated sources it may send; add 'postback' for conversion postbacks.",
    ),
    scope: str | None = typer.Option(
        None,
        "--scope",
        help="Make a console / read-API key instead: read (pages, GETs, queries) or admin "
        "(also quarantine replay).",
    ),
) -> None:
    """Print a new collector API key (or console key) and the advertisex.toml entry that stores its hash."""
    from advertisex.collector.access import SCOPES, new_key
    from advertisex.errors import UserInputError

    if not name.strip() or not name.isprintable():
        # Logs and metrics name the holder by it, and the entry below goes into a TOML file:
        # a line break or a control character in it is a mistake, or an attempt.
        raise UserInputError(
            f"--name {name!r} holds a line break or a control character"
            if name.strip()
            else "--name is empty",
            hint="name who will hold the key, e.g. --name ad-server-eu",
        )
    if scope is not None:
        if scope not in ("read", "admin"):
            raise UserInputError(f"unknown scope {scope!r}", hint="use --scope read or admin")
        key, digest = new_key()
        _print_key(
            key,
            f'[[console.keys]]\nname = {_toml_text(name)}\nsha256 = "{digest}"\nscope = "{scope}"',
            "Give the key above to its holder",
        )
        return

    allowed = [s.strip() for s in sources.split(",") if s.strip()]
    unknown = [s for s in allowed if s not in SCOPES]
    if unknown or not allowed:
        raise UserInputError(
            f"unknown sources: {', '.join(unknown) or '(none)'}", hint=f"use {', '.join(SCOPES)}"
        )
    key, digest = new_key()
    entry = "\n".join(
        [
            "[[collector.api_keys]]",
            f"name = {_toml_text(name)}",
            f'sha256 = "{digest}"',
            "sources = [" + ", ".join(f'"{s}"' for s in allowed) + "]",
        ]
    )
    _print_key(key, entry, "Give the key above to the sender")


def _toml_text(text: str) -> str:
    """``text`` (printable) as a TOML basic string: the entry is pasted into
    advertisex.toml, where a name holding a quote broke the file."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _print_key(key: str, entry: str, who: str) -> None:
    sys.stdout.write(f"{key}\n")
    sys.stdout.flush()
    sys.stderr.write(f"{who}; it is not stored anywhere. Add this to advertisex.toml:\n\n{entry}\n")


# ---------------------------------------------------------------------- process --follow
def follow_landing(
    interval: float,
    fmt: Format,
    engine: str | None = None,
    master: str | None = None,
    verbose: bool = False,
) -> None:
    """Body of ``advertisex process --follow``: one line per committed batch until a signal."""
    from advertisex.cli.common import open_platform, open_runner, positive_seconds
    from advertisex.runners.follow import Follower

    positive_seconds(interval, "--interval")
    ax = open_platform(create=True)
    runner = open_runner(ax, engine, master, verbose, decodes=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # second signal: leave now (the commit is atomic anyway)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if fmt is Format.table:
        print_message(
            f"following {literal(ax.settings.landing_dir)} every {interval:g} s; Ctrl-C to stop"
        )
    marts, upkeep = ax.settings.correlation, ax.settings.maintenance
    follower = Follower(
        runner,
        interval=interval,
        stop=stop,
        marts_every=marts.follow_marts_every_seconds if marts.update_marts else None,
        maintain_every=upkeep.every_seconds if upkeep.schedule else None,
        gather=ax.settings.processor.follow_gather_seconds,
    )
    try:
        follower.run(
            lambda batch: _print_batch(batch, fmt),
            _RetryLines(),
            lambda done: _print_marts(done, fmt),
            lambda holder: print_message(
                f"[yellow]another processor is running[/] ({literal(holder)}); waiting for it "
                "to stop …"
            ),
            on_maintain=lambda report: _print_maintenance(report, fmt),
        )
    finally:
        runner.stop()


def _print_batch(batch: Any, fmt: Format) -> None:
    past = getattr(batch, "past_retention", None) or {}
    left = sum(past.values())
    # Accepted, then left out at the commit as retention would take them: said, or the
    # accepted rows missing from the tables look lost.
    expired = f" ({left:,} of days past their table's retention, left out)" if left else ""
    _progress_line(
        fmt,
        {
            "batch_id": batch.batch_id,
            "segments": batch.segments,
            "records_in": batch.records_in,
            "accepted": batch.total("accepted"),
            "quarantined": batch.total("quarantined"),
            "filtered": batch.total("filtered"),
            "duplicates": batch.total("duplicates"),
            "seconds": round(batch.seconds, 3),
            "lag_seconds": round(batch.lag_seconds, 3),
            **({"past_retention": past} if left else {}),
        },
        f"batch {batch.batch_id}: {batch.segments} segment{'s' * (batch.segments != 1)}, "
        f"{batch.records_in:,} record{'s' * (batch.records_in != 1)} → "
        f"{batch.total('accepted'):,} accepted{expired}, "
        f"{batch.total('quarantined'):,} quarantined, {batch.total('filtered'):,} filtered, "
        f"{batch.total('duplicates'):,} duplicates in {batch.seconds:.2f} s "
        f"(lag {batch.lag_seconds:.1f} s)",
    )


def _print_marts(done: Any, fmt: Format) -> None:
    _progress_line(
        fmt,
        {
            "marts": done.mode,
            "clicks": done.clicks,
            "conversions": done.conversions,
            "hours": done.hours,
            "seconds": round(done.seconds, 3),
            **(
                {"recomputed_from": done.recomputed_from.isoformat()}
                if done.recomputed_from
                else {}
            ),
            **({"kept_everything": True} if done.kept_everything else {}),
        },
        f"marts {done.mode}: {done.clicks:,} clicks, {done.conversions:,} conversions, "
        f"{done.hours:,} hours in {done.seconds:.2f} s"
        + (f" ({done.kept_note})" if done.kept_note else ""),
    )


def _print_maintenance(report: Any, fmt: Format) -> None:
    compacted, deleted = report.total("files_compacted"), report.total("files_deleted")
    expired, errors = report.total("snapshots_expired"), [t.table for t in report.tables if t.error]
    _progress_line(
        fmt,
        {
            "maintenance": report.run_id,
            "files_compacted": compacted,
            "snapshots_expired": expired,
            "files_deleted": deleted,
            "skipped": errors,
            "seconds": round(report.seconds, 3),
        },
        f"maintenance: {compacted:,} small files compacted, {expired:,} snapshots expired, "
        f"{deleted:,} files deleted in {report.seconds:.2f} s"
        + (f" (skipped, retried next time: {', '.join(errors)})" if errors else ""),
    )


def _progress_line(fmt: Format, data: dict[str, Any], text: str) -> None:
    """One line of the follow loop: JSON for machines, a timestamped sentence for people."""
    if fmt is not Format.table:
        print_json_line(data)
        return
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} {text}\n")
    sys.stdout.flush()


def print_json_line(data: dict[str, Any]) -> None:
    from advertisex.util import jsonutil

    sys.stdout.write(jsonutil.dumps_str(data) + "\n")
    sys.stdout.flush()


class _RetryLines:
    """The follow loop's "retrying" lines. An error the layers put into words is its message;
    any other is its type and first line, and its traceback saved in a file the line names,
    once per distinct error: a bug every batch met (a typo in a kernel) was retried every
    30 s as a bare message, with no trace anywhere to report."""

    def __init__(self) -> None:
        self._saved: dict[tuple[str, str], str] = {}

    def __call__(self, error: Exception, backoff: float) -> None:
        said = f"[yellow]retrying in {backoff:.0f} s:[/] "
        if isinstance(error, AdvertiseXError):
            print_message(said + literal(error))
            return
        from advertisex.cli.common import saved_trace

        text = str(error).strip().splitlines()
        first = text[0] if text else ""
        key = (type(error).__name__, first)
        if key not in self._saved:
            self._saved[key] = saved_trace(error)
        print_message(
            f"{said}{literal(type(error).__name__)}: {literal(first)} "
            f"(its traceback: {literal(self._saved[key])})"
        )


# ---------------------------------------------------------------------- generate --to
def stream_to(
    url: str,
    *,
    rate: float,
    duration: float,
    via: str,
    api_key: str | None,
    seed: int | None,
    fmt: Format,
) -> None:
    """Body of ``advertisex generate --to URL``: live traffic with a live rate display."""
    from advertisex.errors import UserInputError

    if via not in ("http", "firehose"):
        raise UserInputError(f"unknown --via {via!r}", hint="use --via http or --via firehose")
    if not (math.isfinite(rate) and math.isfinite(duration)) or rate <= 0 or duration <= 0:
        raise UserInputError(
            "--rate and --duration must be finite and positive",
            hint="e.g. --rate 10000 --duration 60",
        )
    if not url.startswith(("http://", "https://")):
        raise UserInputError(
            f"--to {url!r} is not an http(s) URL", hint="e.g. --to http://127.0.0.1:8080"
        )
    from rich.live import Live
    from rich.text import Text

    from advertisex.cli.output import console
    from advertisex.synth.stream import StreamStats, stream, unreachable

    why = unreachable(url)
    if why is not None:
        raise UserInputError(
            f"cannot reach a collector at {url}: {why}",
            hint="is `advertisex serve` running there? does it need --api-key?",
        )

    def status(stats: StreamStats) -> Text:
        return Text(
            f"→ {url} via {via}: {stats.rate:,.0f} events/s (target {rate:,.0f}), {stats.events:,} sent "
            f"in {stats.requests:,} requests, {stats.retries} retries, {stats.failed} failed"
            + (f" — last error: {stats.last_error}" if stats.last_error else "")
        )

    stop = threading.Event()
    with Live(
        Text("starting…"), console=console(stderr=True), refresh_per_second=4, transient=True
    ) as live:
        try:
            stats = stream(
                url, rate=rate, duration=duration, via=via, api_key=api_key, seed=seed or 1,
                on_progress=lambda s: live.update(status(s)), stop=stop,
            )  # fmt: skip
        except KeyboardInterrupt:
            stop.set()
            raise
    console(stderr=True).print(status(stats))
    summary = {
        "url": url, "via": via, "events": stats.events, "requests": stats.requests,
        "events_per_s": round(stats.rate, 1), "retries": stats.retries, "failed": stats.failed,
        "last_error": stats.last_error,
    }  # fmt: skip
    if fmt is Format.json:
        print_json_line(summary)
    if stats.failed and not stats.events:
        raise UserInputError(
            f"nothing was accepted by {url}: {stats.last_error}",
            hint="is `advertisex serve` running there? does it need --api-key?",
        )
