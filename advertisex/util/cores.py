"""How many CPU cores this process may run on.

Two things bound it: the cores it may be scheduled on (its affinity: ``taskset -c 0`` gives
one) and the CPU time its control groups allow (a container's ``docker run --cpus 2``,
Kubernetes' ``limits.cpu: 2``, systemd's ``CPUQuota=200%``). A container sees every core
of its host in its affinity, so counting those alone, a collector on a 32-core node under a
two-CPU limit would start 32 workers: sixteen times the memory, all throttled to two cores.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may run on: its affinity, no more than its control groups'
    CPU quota (rounded up), at least one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def fit_arrow_threads() -> int:
    """Arrow's pool of compute threads (Parquet reads, multi-threaded kernels) made no bigger
    than :func:`usable_cores`: Arrow sizes it by the host's cores, which in a container
    under a CPU limit are many more than it may use. Its size now."""
    import pyarrow as pa

    cores = usable_cores()
    if pa.cpu_count() > cores:
        pa.set_cpu_count(cores)
    return int(pa.cpu_count())


@functools.cache
def _quota() -> float | None:
    """This process's :func:`cgroup_cpu_quota`, read once (quotas are set when a container or
    a service starts)."""
    return cgroup_cpu_quota()


def cgroup_cpu_quota(
    membership: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> float | None:
    """The CPUs this process's control groups allow it (quota / period: 1.5 is one and a
    half cores' time), the smallest along its groups and their parents; None when none
    sets a quota, or where there are no control groups.

    ``membership`` lists the process's groups (``/proc/self/cgroup``); ``root`` is where
    the hierarchies are mounted. Version 2 (one hierarchy, ``cpu.max``) and version 1 (the
    ``cpu`` controller's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``) are both read. A
    group's path may not exist as such where the container sees only its own part of the
    tree: then the part it sees, from the mount down, is what counts.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and not controllers:  # version 2
            quotas += _along(root, path, _v2_quota)
        elif "cpu" in controllers.split(","):  # version 1, the cpu controller's hierarchy
            mount = root / controllers
            if not mount.is_dir():
                mount = root / "cpu"
            quotas += _along(mount, path, _v1_quota)
    return min(quotas) if quotas else None


def _along(mount: Path, path: str, quota_of: Callable[[Path], float | None]) -> list[float]:
    """The quotas set on the group at ``path`` under ``mount`` and on its parents, as far
    as they are there to read."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    found = []
    for depth in range(len(parts), -1, -1):
        group = mount.joinpath(*parts[:depth])
        if group.is_dir() and (quota := quota_of(group)) is not None:
            found.append(quota)
    return found


def _v2_quota(group: Path) -> float | None:
    """``cpu.max``: ``max 100000`` (none) or ``<quota> <period>`` in microseconds."""
    try:
        quota, period = (group / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(group: Path) -> float | None:
    """``cpu.cfs_quota_us`` (-1: none) over ``cpu.cfs_period_us``."""
    try:
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
