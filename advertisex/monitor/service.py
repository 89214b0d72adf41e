"""The monitor: observe → evaluate monitors → advance alerts → record history → notify.

>>> import advertisex
>>> from advertisex.monitor.service import Monitor
>>> monitor = Monitor.open(advertisex.open())             # doctest: +SKIP
>>> result = monitor.evaluate()                            # doctest: +SKIP
>>> [f.alertname for f in result.findings]                 # doctest: +SKIP

Every collaborator is injectable — where observations come from, the clock, the alert
history sink, the notifiers — so a simulation drives the very same object a day at a
time. ``run`` loops until its stop event is set; notifications are delivered by the
outbox thread and never slow an evaluation down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from advertisex.config import MonitorSettings
from advertisex.model.alerts import ALERTS, ALERTS_TABLE
from advertisex.monitor.alerts import AlertEngine, Transition
from advertisex.monitor.checks import HOURLY, MONITORS, evaluate
from advertisex.monitor.model import Finding, Observations
from advertisex.monitor.notify.base import Notifier, make_notifier
from advertisex.monitor.notify.delivery import Delivery
from advertisex.monitor.state import StateStore
from advertisex.util import jsonutil
from advertisex.util.timeutil import Clock, utcnow

if TYPE_CHECKING:
    from advertisex.config import Settings
    from advertisex.lake.tables import Lake

log = logging.getLogger("advertisex.monitor")
CONTINUOUS = frozenset(MONITORS) - HOURLY
History = Callable[[list[Transition]], None]


class Platform(Protocol):
    """What the monitor watches: settings and lake (``advertisex.api.AdvertiseX`` is one)."""

    settings: Settings

    @property
    def lake(self) -> Lake: ...


@dataclass
class Evaluation:
    """One evaluation's outcome."""

    observations: Observations
    findings: list[Finding]
    transitions: list[Transition]
    messages: list[dict[str, Any]]
    errors: dict[str, str] = field(default_factory=dict)


class Monitor:
    def __init__(
        self,
        cfg: MonitorSettings,
        observe: Callable[[], Observations],
        *,
        store: StateStore | None = None,
        notifiers: dict[str, Notifier] | None = None,
        history: History | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.cfg = cfg
        self.observe = observe
        self.store = store or StateStore(None)
        self.engine = AlertEngine(cfg, self.store)
        if notifiers is None:
            notifiers = {name: make_notifier(name, ch) for name, ch in cfg.channels.items()}
        self.delivery = Delivery(self.store, notifiers, cfg, clock)
        self.history = history or (lambda transitions: None)
        self.clock = clock
        # Hourly monitors judge complete hours: run them once per newly settled hour.
        self._hourly: tuple[datetime, list[Finding], dict[str, str]] | None = None

    @classmethod
    def open(cls, ax: Platform, clock: Clock = utcnow) -> Monitor:
        """The monitor of a platform: lake observations, state under the data directory."""
        from advertisex.monitor.gather import Gatherer

        settings = ax.settings
        store = StateStore(settings.data_dir / "monitor" / "state.db")
        gatherer = Gatherer(settings, ax.lake, clock, store)
        return cls(
            settings.monitor,
            gatherer.observe,
            store=store,
            history=lake_history(ax.lake),
            clock=clock,
        )

    def evaluate(self) -> Evaluation:
        """Evaluate once; queued notifications are sent by :meth:`run` or ``delivery.drain``."""
        from advertisex.monitor import metrics

        obs = self.observe()
        findings, errors = evaluate(obs, self.cfg, CONTINUOUS)
        settled = obs.settled(timedelta(seconds=self.cfg.settle_seconds))
        if self._hourly is None or self._hourly[0] != settled:
            self._hourly = (settled, *evaluate(obs, self.cfg, HOURLY))
        findings = findings + self._hourly[1]
        errors = {**errors, **self._hourly[2]}
        findings += [
            Finding(
                "MonitorFailed",
                {"monitor": name},
                "warning",
                f"the {name} monitor failed: {error}",
            )
            for name, error in errors.items()
        ]
        transitions, messages = self._alert(findings, obs.now)
        metrics.record_observations(obs, self.firing())
        return Evaluation(obs, findings, transitions, messages, errors)

    def blind(self, why: str) -> list[Transition]:
        """An evaluation that could not observe the lake (its storage unreadable: a bucket
        down, a disk gone): ``MonitorFailed`` {monitor="observe"} says the monitor is blind,
        through the same alerting as any other alert — a bucket down for an hour alerted
        nobody, where the monitor is the one meant to tell. Every other alert is held as
        it was (nothing is known to have cleared); the next evaluation that sees resolves
        this one. The state changes."""
        now = self.clock()
        held = [
            Finding(
                alert["alertname"],
                {k: v for k, v in alert["labels"].items() if k not in ("alertname", "severity")},
                alert["severity"],
                alert["summary"],
                alert.get("value"),
                alert.get("threshold"),
            )
            for alert in self.firing()
            if alert.get("labels", {}).get("monitor") != BLIND["monitor"]
        ]
        summary = f"the monitor cannot observe the lake: {why}"
        blind = Finding("MonitorFailed", dict(BLIND), "critical", summary)
        return self._alert([*held, blind], now)[0]

    def _alert(
        self, findings: list[Finding], now: datetime
    ) -> tuple[list[Transition], list[dict[str, Any]]]:
        """Advance the alerts to ``findings``, record the changes in ``ops.alerts`` and queue
        the messages; (state changes, messages)."""
        transitions, messages = self.engine.update(findings, now)
        if transitions:
            try:
                self.history(transitions)
            except Exception as error:  # history is for people; alerting goes on without it
                said = _said(error)  # the lake may be what cannot be read: one line then
                if said is None:
                    log.exception("could not write ops.alerts")
                else:
                    log.warning("could not write ops.alerts: %s", said)
        for message in messages:
            self.delivery.submit(message)
        return transitions, messages

    def _tell_blind(self, why: str) -> None:
        try:
            self.blind(why)
        except Exception:  # the state store unreachable too: the log line above stays
            log.exception("could not raise the monitor's own alert")

    def firing(self) -> list[dict[str, Any]]:
        """Current alerts (pending and firing) from the state store."""
        return sorted(self.store.load("alerts").values(), key=lambda a: a["fingerprint"])

    def run(
        self,
        stop: threading.Event,
        interval: float | None = None,
        on_evaluation: Callable[[Evaluation], None] | None = None,
    ) -> None:
        """Evaluate every ``interval`` seconds until ``stop`` is set; deliver in the background."""
        self.delivery.start()
        try:
            while not stop.is_set():
                try:
                    result = self.evaluate()
                    if on_evaluation:
                        on_evaluation(result)
                except Exception as error:  # a monitor daemon outlives one bad evaluation
                    said = _said(error)
                    if said is None:  # a bug: its traceback is the report
                        log.exception("monitor evaluation failed; trying again next interval")
                    else:
                        log.error("monitor evaluation failed: %s; trying again next interval", said)
                        self._tell_blind(said)
                stop.wait(interval or self.cfg.interval_seconds)
        finally:
            self.delivery.stop()


# The labels of the alert that says the monitor cannot observe the lake (Monitor.blind).
BLIND = {"monitor": "observe"}


def _said(error: Exception) -> str | None:
    """One line for an evaluation that failed for a reason not the monitor's: an object
    store or disk that cannot be reached or read (PyArrow's S3 file system raises a bare
    ``OSError``), or an error of ours that says what to do. A bucket down for an hour
    logged a 30-line traceback every minute. None for anything else (a bug)."""
    from advertisex.errors import AdvertiseXError
    from advertisex.util.health import error_line

    if isinstance(error, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return None  # a path that is not there: ours to explain, or a bug
    if not isinstance(error, AdvertiseXError | OSError):
        return None
    said = error_line(error)
    hint = said["hint"] or (
        "the storage could not be reached or read: check that it is up and reachable "
        "(scale.landing, scale.warehouse, scale.s3_endpoint)"
    )
    return f"{said['error']} ({hint})"


def transitions_table(transitions: list[Transition]) -> pa.Table:
    """State changes as ``ops.alerts`` rows."""
    rows = [
        {
            "at": t.at,
            "alertname": t.alert["alertname"],
            "state": t.state,
            "severity": t.alert["severity"],
            "source": t.alert["labels"].get("source"),
            "labels": jsonutil.dumps_str(t.alert["labels"], sort_keys=True),
            "fingerprint": t.alert["fingerprint"],
            "active_since": datetime.fromisoformat(t.alert["active_since"]),
            "value": t.alert.get("value"),
            "threshold": t.alert.get("threshold"),
            "summary": t.alert["summary"],
        }
        for t in transitions
    ]
    return pa.Table.from_pylist(rows, schema=ALERTS)


def lake_history(lake: Any) -> History:
    """Append state changes to ``ops.alerts`` (one small Iceberg commit per evaluation)."""

    def write(transitions: list[Transition]) -> None:
        from advertisex.util.retry import retrying

        def append() -> None:
            lake.refresh()  # another writer (a `monitor --once`, maintenance) may have committed
            lake.commit_batch({ALERTS_TABLE: transitions_table(transitions)}, [], {})

        retrying(append, what="writing ops.alerts")  # a lost race is retried, not dropped

    return write
