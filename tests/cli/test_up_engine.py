"""``advertisex up --engine spark``: the follower it starts runs on the engine asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from advertisex.cli import serve


class _Child:
    """A child process that has already exited cleanly (``up`` then stops at once)."""

    started: list[list[str]] = []

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        self.started.append(args)

    def poll(self) -> int:
        return 0


@pytest.mark.parametrize(
    ("engine", "master", "passed"),
    [
        ("spark", "local[2]", ["--engine", "spark", "--master", "local[2]"]),
        (None, None, []),  # scale.engine decides, as for `process`
    ],
)
def test_up_passes_the_engine_to_its_processor(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    engine: str | None,
    master: str | None,
    passed: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_Child, "started", [])
    monkeypatch.setattr(serve.subprocess, "Popen", _Child)
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)
    monkeypatch.setattr("advertisex.collector.server.check_binding", lambda settings: None)
    serve.up(host=None, port=0, interval=0.5, engine=engine, master=master)
    (processor,) = [args for args in _Child.started if "process" in args]
    assert processor[processor.index("process") :] == [
        "process",
        "--follow",
        "--interval",
        "0.5",
        *passed,
    ]
