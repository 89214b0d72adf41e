"""Progress bars: every long step shows how far it is, how fast it goes and how long is left.

One bar per phase on stderr (stdout stays parseable): the rate in the phase's own unit
(files, steps …) and an ETA once the rate is known. Core code reports progress through a
``(stage, done, total)`` callback; these helpers turn that into bars.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Update = Callable[[str, int, int], None]  # (stage, done, total)


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, unit: str = "files") -> Iterator[Any]:
    """A progress bar on stderr; yields a ``(stage, done, total)`` callback (None when not
    ``enabled``, or when stderr is not a terminal: a bar redrawn in place means nothing in
    a log, and each one left a blank line there). Stages named ``marts: …`` get a bar of
    their own, counted in steps."""
    from advertisex.cli.output import console

    screen = console(stderr=True) if enabled else None
    if screen is None or not screen.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second in the task's unit, e.g. ``12.5 files/s``."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text("")
            shown = f"{speed:,.1f}" if speed < 10 else f"{speed:,.0f}"
            return Text(f"{shown} {task.fields.get('unit', '')}/s", style="progress.data.speed")

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=screen,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            phase = "marts" if stage.startswith("marts") else "main"
            if phase not in tasks:
                for earlier in tasks.values():
                    bar.update(earlier, visible=False)
                unit_of_phase = "steps" if phase == "marts" else unit
                tasks[phase] = bar.add_task(description, total=None, unit=unit_of_phase)
            label = stage if phase == "marts" else f"{description}: {stage}"
            bar.update(tasks[phase], description=label, completed=done, total=total)

        yield update


def across_batches(update: Update | None, files: int) -> Update | None:
    """A runner's per-batch callbacks (``read`` 3 of 10 files of this batch, ``commit`` …)
    as one count over all ``files`` pending, so the rate and the ETA span the whole run."""
    if update is None:
        return None
    finished = 0

    def step(stage: str, done: int, in_batch: int) -> None:
        nonlocal finished
        if stage.startswith("marts"):
            update(stage, done, in_batch)
            return
        position = min(files, finished + (in_batch if stage == "commit" else done))
        update(stage, position, files)
        if stage == "commit":
            finished = position

    return step
