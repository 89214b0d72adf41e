"""The post-commit hook: how those who watch the processor hear of its batches.

A runner calls each of its hooks after every batch it committed and for every landing
file it moved aside as unreadable. The monitor's processor metrics are one such hook
(:class:`advertisex.monitor.metrics.ProcessorMetrics`); the runner never imports the
monitor — whoever builds a runner (``advertisex.api``, the CLI) hands it its hooks. A hook must not raise: the batch it hears of is already committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from advertisex.landing.zone import Segment
    from advertisex.runners.batch import SourceAccount


class CommitHook(Protocol):
    def batch_committed(
        self,
        accounts: Mapping[str, SourceAccount],
        seconds: float,
        segments: Sequence[Segment],
        newest: Mapping[str, pa.Table],
    ) -> None:
        """A batch committed: its accounting per source, how long it took, the segments
        it consumed, and per table the rows whose ``event_time`` says how fresh it is."""

    def segment_unreadable(self, segment: Segment, reason: str) -> None:
        """A landing file could not be read at all and was moved aside."""
