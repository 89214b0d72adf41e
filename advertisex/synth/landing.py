"""Cut each source's records into one file per hour of arrival, in arrival order.

Every hour of the window gets a file, empty or not, so a consumer sees a gap-free
sequence. Within a file, records are ordered by ``(arrival, seq)``; see ``schedule``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from advertisex.synth.avro_out import DEFLATE_LEVEL, sync_marker, to_arrow, write_avro_file
from advertisex.synth.clock import Window

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

EXTENSIONS = {"impressions": "ndjson", "clicks": "csv", "bids": "avro"}
ORDER = ["_hour", "_arrival", "_seq"]


def relative_path(source: str, window: Window, hour: int) -> str:
    """``impressions/impressions-20261120-13.ndjson`` for window hour ``hour``."""
    return f"{source}/{source}-{window.hour_label(hour)}.{EXTENSIONS[source]}"


def _bounds(ordered: pl.DataFrame, window: Window) -> np.ndarray:
    """Row offsets where each hour starts in ``ordered`` (plus the end)."""
    import numpy as np

    return np.searchsorted(ordered["_hour"].to_numpy(), np.arange(window.hours + 1))


def write_text_source(
    out_dir: Path,
    source: str,
    window: Window,
    landed: pl.DataFrame,
    header: str | None,
    on_file: Callable[[Path], None],
) -> list[str]:
    """Write ``landed["line"]`` to hourly text files; returns their relative paths.
    ``on_file`` is told of each file once it is written."""
    ordered = landed.select(*ORDER, "line").sort(ORDER)
    # Polars writes each hour's lines, a newline after each, straight from its own buffers
    # (the CSV writer with no quoting writes a one-column value as it is). Building the
    # text first (every line + "\n", then one Arrow buffer for slicing) made two fresh
    # copies of the whole source: for the demo's 240 MB of impressions ≈ 110 k page faults
    # more, 0.2-0.6 s of system time and 0.4 GB more peak memory in the generator.
    lines = ordered.select("line")
    head = (header + "\n").encode("utf-8") if header is not None else b""
    bounds = _bounds(ordered, window)
    files = []
    for hour in range(window.hours):
        relative = relative_path(source, window, hour)
        start, end = int(bounds[hour]), int(bounds[hour + 1])
        with (out_dir / relative).open("wb") as out:
            out.write(head)
            if end > start:
                lines.slice(start, end - start).write_csv(
                    out, include_header=False, quote_style="never", line_terminator="\n"
                )
        files.append(relative)
        on_file(out_dir / relative)
    return files


def write_bid_source(
    out_dir: Path,
    window: Window,
    landed: pl.DataFrame,
    seed: int,
    on_file: Callable[[Path], None],
    level: int = DEFLATE_LEVEL,
) -> list[str]:
    """Write bid requests to hourly Avro container files (deflate at zlib's ``level``);
    returns their relative paths."""
    ordered = landed.sort(ORDER)
    table = to_arrow(ordered)
    bounds = _bounds(ordered, window)
    files = []
    for hour in range(window.hours):
        chunk = table.slice(int(bounds[hour]), int(bounds[hour + 1] - bounds[hour]))
        relative = relative_path("bids", window, hour)
        write_avro_file(out_dir / relative, chunk, sync_marker(seed, hour), level)
        files.append(relative)
        on_file(out_dir / relative)
    return files


def remove_stale_files(out_dir: Path, keep: set[str]) -> None:
    """Delete hourly files an earlier run left behind (e.g. with another window).

    Only files named like ours, inside our source folders, are touched.
    """
    for source, extension in sorted(EXTENSIONS.items()):
        folder = out_dir / source
        for path in sorted(folder.glob(f"{source}-*.{extension}")):
            if f"{source}/{path.name}" not in keep:
                path.unlink()
