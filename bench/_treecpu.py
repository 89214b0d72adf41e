"""CPU seconds of a process tree by kind, sampled in a thread: the JVM, the Python workers
under it, and the Python driver (with any other process not under the JVM).

    sampler = TreeCpu(pid).start()
    ... sampler.mark("read") ...
    sampler.stop(); sampler.spans() → {"read": {"jvm": …, "workers": …, "driver": …}, …}

A process's CPU is its last sample (every ``interval`` s): what one that ends between two
samples did since the last is lost, so read the figures as a floor (Spark reuses its
Python workers, which live as long as the session).
"""

from __future__ import annotations

import threading
import time

KINDS = ("jvm", "workers", "driver")


class TreeCpu:
    """Samples the CPU of ``pid`` and its descendants; ``mark`` closes a span."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.seen: dict[int, tuple[str, float]] = {}  # pid → (kind, CPU seconds)
        self.samples: list[tuple[float, dict[str, float]]] = []  # (monotonic time, totals)
        self.marks: list[tuple[str, dict[str, float]]] = [("start", self.sample())]
        self.times: list[float] = [time.monotonic()]  # when each mark was taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeCpu:
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return self.sample()

    def mark(self, name: str) -> None:
        """Close the span that ends now, named ``name``."""
        self.marks.append((name, self.sample()))
        self.times.append(time.monotonic())

    def spans(self) -> dict[str, dict[str, float]]:
        """CPU seconds per kind of the spans between marks (and since the last mark: "end"),
        and their wall-clock seconds ("wall"), summed over the spans of one name (one per
        batch)."""
        marks = [*self.marks, ("end", self.sample())]
        times = [*self.times, time.monotonic()]
        spans: dict[str, dict[str, float]] = {}
        for (_, before), (name, now), began, ended in zip(
            marks, marks[1:], times, times[1:], strict=False
        ):
            span = spans.setdefault(name, dict.fromkeys((*KINDS, "wall"), 0.0))
            for kind in KINDS:
                span[kind] = round(span[kind] + now[kind] - before[kind], 2)
            span["wall"] = round(span["wall"] + ended - began, 2)
        return spans

    def at(self, moment: float) -> dict[str, float]:
        """The totals of the last sample taken at or before ``moment`` (time.monotonic)."""
        earlier = [totals for when, totals in self.samples if when <= moment]
        return earlier[-1] if earlier else dict.fromkeys(KINDS, 0.0)

    def sample(self) -> dict[str, float]:
        import psutil

        try:
            tree = self.root.children(recursive=True)
        except psutil.Error:
            tree = []
        jvms = set()
        for proc in [self.root, *tree]:
            try:
                name = proc.name()
                times = proc.cpu_times()
                ancestors = {p.pid for p in proc.parents()}
            except psutil.Error:
                continue
            if self.seen.get(proc.pid, ("",))[0] == "workers":
                kind = "workers"  # still, once its JVM is gone (the session stopped)
            elif name == "java":  # (the JVM's first sample may still be the forked Python)
                kind = "jvm"
            elif ancestors & jvms or any(self.seen.get(a, ("",))[0] == "jvm" for a in ancestors):
                kind = "workers"
            else:
                kind = "driver"
            if kind == "jvm":
                jvms.add(proc.pid)
            self.seen[proc.pid] = (kind, times.user + times.system)
        totals = dict.fromkeys(KINDS, 0.0)
        for kind, seconds in self.seen.values():
            totals[kind] += seconds
        self.samples.append((time.monotonic(), totals))
        return totals

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
