"""Progress bars: one count over a whole run, a rate and an ETA, marts maintenance included."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console

from advertisex.cli.progress import across_batches, progress_bar


def test_batches_count_as_one_run_over_every_pending_file():
    seen: list[tuple[str, int, int]] = []
    step = across_batches(lambda *a: seen.append(a), files=10)
    assert step is not None
    for stage, done, of in [("read", 2, 4), ("read", 4, 4), ("commit", 4, 4), ("read", 3, 6),
                            ("read", 6, 6), ("commit", 6, 6), ("marts: commit", 4, 4)]:  # fmt: skip
        step(stage, done, of)
    assert seen == [
        ("read", 2, 10), ("read", 4, 10), ("commit", 4, 10), ("read", 7, 10),
        ("read", 10, 10), ("commit", 10, 10), ("marts: commit", 4, 4),
    ]  # fmt: skip


def test_the_bar_shows_a_rate_and_an_eta(monkeypatch):
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120)
    monkeypatch.setattr("advertisex.cli.output.console", lambda stderr=False: terminal)
    with progress_bar(True, "process") as update:
        for done in range(1, 6):
            update("read", done, 50)
            time.sleep(0.06)
        # The rate shows at the bar's next refresh, from a thread of rich's own: on a loaded
        # machine none came within the 0.24 s before the marts stage hid this bar.
        deadline = time.monotonic() + 30
        while "files/s" not in screen.getvalue():
            assert time.monotonic() < deadline, "the bar was not refreshed within 30 s"
            time.sleep(0.05)
        update("marts: attribution", 1, 4)
        time.sleep(0.3)  # the bar refreshes ten times a second
    shown = screen.getvalue()
    assert "files/s" in shown and "ETA" in shown and "0:00:" in shown
    assert "marts: attribution" in shown


def test_no_bar_and_no_blank_lines_where_stderr_is_not_a_terminal(monkeypatch):
    log = io.StringIO()
    piped = Console(file=log, force_terminal=False, width=120)
    monkeypatch.setattr("advertisex.cli.output.console", lambda stderr=False: piped)
    with progress_bar(True, "process") as update:
        assert update is None  # the command runs without a callback
    assert log.getvalue() == ""


@pytest.mark.slow
def test_processing_reports_each_step_of_marts_maintenance(ax, seed_samples):
    ax.ingest([str(seed_samples)])
    stages: list[tuple[str, int, int]] = []
    ax.process(lambda stage, done, total: stages.append((stage, done, total)))
    marts = [s for s in stages if s[0].startswith("marts: ")]
    assert marts and marts[-1][1:] == (4, 4) and marts[-1][0] == "marts: commit"
