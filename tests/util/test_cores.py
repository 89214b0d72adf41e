"""The cores a process may use: its affinity, and its control groups' CPU quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from advertisex.util import cores
from advertisex.util.cores import cgroup_cpu_quota, usable_cores


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        # docker run --cpus 1.5 on cgroup v2: its group is the root of what it sees.
        ({"proc": "0::/\n", "fs/cpu.max": "150000 100000\n"}, 1.5),
        # A systemd service with CPUQuota=100% in a slice of three cores' time: the smallest
        # quota along the group's parents counts.
        (
            {
                "proc": "0::/system.slice/adx.service\n",
                "fs/cpu.max": "max 100000\n",
                "fs/system.slice/cpu.max": "300000 100000\n",
                "fs/system.slice/adx.service/cpu.max": "100000 100000\n",
            },
            1.0,
        ),
        # Kubernetes' limits.cpu: 2 on cgroup v1, read from the cpu controller's hierarchy,
        # its group's path not visible inside.
        (
            {
                "proc": "4:memory:/kubepods/pod1/c1\n2:cpu,cpuacct:/kubepods/pod1/c1\n",
                "fs/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
                "fs/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            2.0,
        ),
    ],
    ids=["v2-container", "v2-systemd-parents", "v1-kubernetes"],
)
def test_a_quota_is_read(tmp_path: Path, files: dict[str, str], quota: float) -> None:
    _tree(tmp_path, files)
    assert cgroup_cpu_quota(tmp_path / "proc", tmp_path / "fs") == quota


@pytest.mark.parametrize(
    "files",
    [
        {"proc": "0::/\n", "fs/cpu.max": "max 100000\n"},  # v2, no quota
        {
            "proc": "1:cpu:/\n",
            "fs/cpu/cpu.cfs_quota_us": "-1\n",
            "fs/cpu/cpu.cfs_period_us": "100000\n",
        },
        {"proc": "0::/\n"},  # no cpu controller enabled: no cpu.max
        {"fs/cpu.max": "100000 100000\n"},  # no membership to read (not Linux)
        {"proc": "0::/\n", "fs/cpu.max": "garbled\n"},
    ],
    ids=["v2-max", "v1-unlimited", "v2-no-controller", "no-proc", "garbled"],
)
def test_no_quota_is_none(tmp_path: Path, files: dict[str, str]) -> None:
    _tree(tmp_path, files)
    assert cgroup_cpu_quota(tmp_path / "proc", tmp_path / "fs") is None


def test_usable_cores_are_the_affinity_bounded_by_the_quota_rounded_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _: set(range(32)))
    for quota, expected in ((None, 32), (2.0, 2), (1.5, 2), (0.5, 1), (64.0, 32)):
        monkeypatch.setattr(cores, "_quota", lambda q=quota: q)
        assert usable_cores() == expected, quota


def test_arrows_threads_are_fitted_to_the_quota_and_never_grown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyarrow as pa

    before = pa.cpu_count()
    monkeypatch.setattr(cores.os, "sched_getaffinity", lambda _: set(range(before + 4)))
    try:
        monkeypatch.setattr(cores, "_quota", lambda: 1.0)
        assert cores.fit_arrow_threads() == 1 == pa.cpu_count()
        monkeypatch.setattr(cores, "_quota", lambda: None)
        assert cores.fit_arrow_threads() == 1  # more cores than its pool: left as set
    finally:
        pa.set_cpu_count(before)
