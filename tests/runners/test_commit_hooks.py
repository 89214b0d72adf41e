"""The post-commit hook: a runner tells whoever it was handed of each commit and of each
unreadable file, without knowing who listens (the monitor's metrics are one listener)."""

from __future__ import annotations

from typing import Any

import pytest

from advertisex.formats.decode import DECODERS
from advertisex.runners.embedded import EmbeddedRunner

pytestmark = pytest.mark.integration

GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[dict[str, Any], list[str], list[str]]] = []
        self.unreadable: list[tuple[str, str]] = []

    def batch_committed(self, accounts, seconds, segments, newest) -> None:  # type: ignore[no-untyped-def]
        assert seconds >= 0
        self.batches.append((dict(accounts), [s.name for s in segments], sorted(newest)))

    def segment_unreadable(self, segment, reason) -> None:  # type: ignore[no-untyped-def]
        self.unreadable.append((segment.name, reason))


def exploding_decoder(data: bytes):  # type: ignore[no-untyped-def]
    """Module-level: decoder workers import it by name."""
    raise ValueError("no")


def test_a_runner_tells_its_hooks_of_commits_and_unreadable_files(ax, monkeypatch) -> None:
    good = ax.landing.write_segment("impressions", GOOD, label="good")
    bad = ax.landing.write_segment("clicks", b"timestamp,user_id\n", label="bad")
    monkeypatch.setitem(DECODERS, ("clicks", "csv"), exploding_decoder)
    recorder = Recorder()
    EmbeddedRunner(ax.settings, ax.lake, ax.landing, hooks=[recorder]).process()

    assert recorder.unreadable == [(bad.name, "ValueError: no")]
    [(accounts, segments, tables)] = recorder.batches
    assert accounts["impressions"].accepted == 1
    assert segments == [good.name]
    assert "curated.impressions" in tables
    # Nobody listening: nothing recorded, nothing written for the monitor.
    assert not (ax.settings.data_dir / "monitor" / "processor.prom").exists()


def test_the_platform_hands_its_runner_the_processor_metrics(ax) -> None:
    from advertisex.monitor.metrics import ProcessorMetrics

    assert any(isinstance(hook, ProcessorMetrics) for hook in ax.runner.hooks)


def test_the_marts_are_brought_up_to_date_without_idle_decoder_workers(
    ax: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle decoder workers (0.2-0.4 GiB of the process tree) are stopped before the marts'
    build, which decodes nothing; not when the marts are not kept."""
    from advertisex.runners import embedded

    shed: list[int] = []
    monkeypatch.setattr(embedded, "shed_decoders", lambda: shed.append(1))
    ax.runner.update_marts()
    assert shed == [1]
    off = ax.settings.model_copy(
        update={"correlation": ax.settings.correlation.model_copy(update={"update_marts": False})}
    )
    embedded.EmbeddedRunner(off, ax.lake, ax.landing).update_marts()
    assert shed == [1]
