"""Run CLI verbs in-process (fast) or as a real subprocess (the console entry point)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Result = tuple[int, str, str]  # exit code, stdout, stderr
# Marts are another stage's business; keeping them out makes these tests several times faster.
NO_MARTS = {"ADVERTISEX_CORRELATION__UPDATE_MARTS": "false"}


@pytest.fixture(scope="session")
def open_lake() -> Callable[..., Any]:
    """``open_lake(data_dir, **overrides)``: a platform that leaves the marts alone."""

    def open_platform(data_dir: Path, **overrides: Any) -> Any:
        import advertisex

        return advertisex.open(data_dir=data_dir, correlation={"update_marts": False}, **overrides)

    return open_platform


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """``cli(data_dir, *args, **env)``: ``advertisex ARGS`` in this process, via ``main()``."""

    def invoke(data_dir: Path, *args: str, **env: str) -> Result:
        from advertisex.cli.app import main

        monkeypatch.setenv("ADVERTISEX_DATA_DIR", str(data_dir))
        for name, value in NO_MARTS.items():
            monkeypatch.setenv(name, value)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(sys, "argv", ["advertisex", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        finally:
            for name in env:
                monkeypatch.delenv(name)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def run_subprocess() -> Callable[..., Result]:
    """``run_subprocess(data_dir, *args, **env)``: ``advertisex ARGS`` as its own process."""
    return _run_subprocess


def _run_subprocess(data_dir: Path, *args: str, **env: str) -> Result:
    environment = dict(
        os.environ, ADVERTISEX_DATA_DIR=str(data_dir), COLUMNS="200", **NO_MARTS, **env
    )
    result = subprocess.run(
        [sys.executable, "-m", "advertisex.cli.app", *args],
        capture_output=True,
        text=True,
        env=environment,
    )
    return result.returncode, result.stdout, result.stderr


HOLD_LOCK = (
    "import sys, time; from pathlib import Path; from advertisex.runners.lock import processor_lock\n"
    "with processor_lock(Path(sys.argv[1])):\n"
    "    print('held', flush=True); time.sleep(60)\n"
)


@pytest.fixture
def lock_holder() -> Any:
    """``lock_holder(data_dir)``: another process holding the lake's processor lock (its
    Popen); killed at the end of the test."""
    started: list[subprocess.Popen[str]] = []

    def hold(data_dir: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(data_dir)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def in_fresh_interpreter(argv: list[str], env: dict[str, str] | None = None) -> Any:
    """``advertisex argv…`` run in a fresh interpreter (pytest's own has pandas loaded):
    the finished process, whose stderr's last line says whether pandas was loaded when the
    command ended (``True`` / ``False``); a failing command exits with its own code."""
    script = (
        "import sys\n"
        "from advertisex.cli.app import main\n"
        f"sys.argv = {['advertisex', *argv]!r}\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "print('pandas' in sys.modules, file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
