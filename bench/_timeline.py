"""Where a command's cores go, phase by phase: the CPU of its process tree read from
``/proc`` every ``interval`` seconds (each thread of the command, each child process) and
the machine's idle time from ``/proc/stat``, so an idle core shows up as idle and another
program's use of it as neither.

    with Sampler(pid) as sampler: ...          # samples on a thread until the block ends
    print_phases(sampler.samples, phases, interval)

Threads are named as the kernel knows them: Python threads all carry the command's name
(Python 3.11 does not name them), so they are told apart by id, the main thread as
``main``; native pools keep their own names (``polars-0``, ``tokio-rt-worker`` …).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    at: float  # seconds since the sampler started
    threads: dict[tuple[int, int], tuple[str, float]]  # (pid, tid) → (name, CPU seconds)
    idle: float  # the machine's idle seconds (every core, iowait included) so far


@dataclass
class Sampler:
    """Samples the tree rooted at ``pid`` on a thread, every ``interval`` seconds."""

    pid: int
    interval: float = 0.05
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(
                Sample(time.perf_counter() - self._started, tree_cpu(self.pid), machine_idle())
            )
            self._stop.wait(self.interval)


def tree_cpu(root: int) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds of every thread of ``root`` and its descendants, by (pid, tid)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = _read(f"/proc/{entry}/stat")
            except OSError:
                continue
            children[int(stat[stat.rfind(")") + 2 :].split()[1])].append(int(entry))
    found: dict[tuple[int, int], tuple[str, float]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            process = _read(f"/proc/{pid}/comm").strip()
            for tid in os.listdir(f"/proc/{pid}/task"):
                stat = _read(f"/proc/{pid}/task/{tid}/stat")
                fields = stat[stat.rfind(")") + 2 :].split()
                name = stat[stat.find("(") + 1 : stat.rfind(")")]
                if pid != root:
                    name = f"{process}[{pid}]/{name}"
                elif name == process:
                    name = "main" if int(tid) == pid else f"thread+{int(tid) - pid}"
                found[(pid, int(tid))] = (name, (int(fields[11]) + int(fields[12])) / TICK)
        except OSError:  # ended meanwhile
            continue
    return found


def machine_idle() -> float:
    fields = _read("/proc/stat").split("\n", 1)[0].split()[1:]
    return (int(fields[3]) + int(fields[4])) / TICK


def _read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def print_phases(
    samples: list[Sample], phases: list[tuple[str, float, float]], top: int = 4
) -> None:
    """Per phase (name, start, end in the samples' seconds): cores the tree used, cores the
    machine left idle, and the threads that used most."""
    print(f"    {'phase':<20} {'wall':>6} {'cores used':>11} {'idle':>6}   busiest threads (cores)")
    for name, start, end in phases:
        inside = [s for s in samples if start <= s.at <= end]
        if len(inside) < 2:
            print(f"    {name:<20} {end - start:5.2f}s  (too short to sample)")
            continue
        span = inside[-1].at - inside[0].at
        spent: dict[str, float] = defaultdict(float)
        for before, after in itertools.pairwise(inside):
            for key, (thread, cpu) in after.threads.items():  # a new thread: all of its CPU
                spent[thread] += cpu - before.threads.get(key, (thread, 0.0))[1]
        used = sum(spent.values()) / span
        idle = (inside[-1].idle - inside[0].idle) / span
        busiest = sorted(spent.items(), key=lambda item: -item[1])[:top]
        names = ", ".join(f"{thread} {cpu / span:.2f}" for thread, cpu in busiest if cpu > 0)
        print(f"    {name:<20} {end - start:5.2f}s {used:10.2f} {idle:6.2f}   {names}")
