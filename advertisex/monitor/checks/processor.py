"""Is the processor working? A follower that fails every pass, or hangs in one.

A follower retries a failed pass forever (a daemon outlives one bad pass), so without
this check a processor failing on every pass — a table it cannot write, a file the
storage lost — shows only as a growing backlog until ``IngestDelayHigh`` (15 min, and
5 min of ``for``). The follower writes its health where the monitor reads it
(``util.health``); the gatherer hands it over only while the follower runs, so a
follower stopped or killed, and a cron-style ``process`` run, are never judged here.
"""

from __future__ import annotations

import pyarrow.compute as pc

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.flow import duration
from advertisex.monitor.model import Finding, Observations


def processor(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """``ProcessorFailing``: every pass failed for longer than ``processor_failing_seconds``
    while segments wait. ``ProcessorStuck``: no pass ended and no batch committed for
    ``processor_stuck_seconds`` beyond the follower's own longest sleep (a hung pass)."""
    health = obs.processor
    if health is None:
        return []
    who = f"the processor (pid {health.pid} on {health.host})"
    findings = []
    pending = int(pc.sum(obs.arrivals.column("pending")).as_py() or 0)
    if health.failures and health.failing_since is not None and pending:
        failing = (obs.now - health.failing_since).total_seconds()
        if failing > cfg.processor_failing_seconds:
            since = (
                f"last success {health.last_success:%Y-%m-%d %H:%M:%S} UTC"
                if health.last_success
                else "no success since it started"
            )
            todo = f" → {health.hint}" if health.hint else ""
            findings.append(
                Finding(
                    "ProcessorFailing",
                    {},
                    "critical",
                    f"{who} has failed every pass for {duration(failing)} ({health.failures} "
                    f"in a row, {since}) while {pending:,} landing segment(s) wait. Last "
                    f"error: {health.error}{todo}. See advertisex status and the processor's "
                    "output (advertisex up prints it), fix the cause: the next pass picks the "
                    "segments up",
                    failing,
                    float(cfg.processor_failing_seconds),
                )
            )
    quiet = (obs.now - health.updated).total_seconds()
    limit = cfg.processor_stuck_seconds + health.max_wait_seconds
    if health.pid_checked and quiet > limit:
        findings.append(
            Finding(
                "ProcessorStuck",
                {},
                "critical",
                f"{who} has neither ended a pass nor committed a batch for {duration(quiet)} "
                f"(bound {duration(limit)}): a pass is hung. See what it is doing in its "
                f"output, then stop it (kill {health.pid}: a batch not committed is redone) and "
                "start it again",
                quiet,
                limit,
            )
        )
    return findings
