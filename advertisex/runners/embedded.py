"""The embedded runner: the runner template's two engine steps, in this process.

Reading frames the batch's segments on two threads, each decoding in a worker process
under the segment's time and memory budget (``formats.bounded``); the transform runs each source's records through
:func:`advertisex.runners.batch.process_source` (DuckDB, PyArrow and Polars kernels),
sources in ``SOURCE_WAVES`` order, and writes the rows as data files. Planning, the
commit and everything around it are the template's (:mod:`advertisex.runners.runner`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa

from advertisex.errors import BatchCancelled
from advertisex.formats.bounded import DecodeLimits, DecodeRefused
from advertisex.formats.bounded import warm as warm_decoders
from advertisex.formats.decode import concat_frames, frame_segment
from advertisex.landing.zone import Segment
from advertisex.runners.batch import process_source
from advertisex.runners.rules import SOURCE_ORDER
from advertisex.runners.runner import Batch, Framed, Runner, Transformed
from advertisex.util.retry import retrying


@dataclass
class Frames(Framed):
    """The framed records of each readable segment, by segment index."""

    tables: dict[int, pa.Table]


class EmbeddedRunner(Runner[Frames]):
    """Runs the batch kernels in this process."""

    @contextmanager
    def read(self, batch: Batch) -> Iterator[Frames]:
        from concurrent.futures import ThreadPoolExecutor

        limits = DecodeLimits.of(self.settings.processor)  # each segment's decode budget
        if limits.isolated:
            warm_decoders()  # the workers start while the first segments are read

        def work(item: tuple[int, Segment]) -> pa.Table | str:
            index, segment = item
            try:
                data = retrying(lambda: self.landing.read(segment), what=f"reading {segment.name}")
                return frame_segment(index, segment, data, limits, self.cancel)
            except DecodeRefused as refused:  # over its time or memory budget, or crashed
                return str(refused)
            except BatchCancelled:
                raise
            except Exception as error:  # a file that cannot be read at all must not block the rest
                return f"{type(error).__name__}: {error}"

        frames = Frames(records={}, unreadable={}, tables={})
        total = len(batch.segments)
        with ThreadPoolExecutor(max_workers=2) as pool:
            for index, framed in enumerate(pool.map(work, enumerate(batch.segments))):
                if isinstance(framed, str):
                    frames.unreadable[index] = framed
                else:
                    frames.tables[index] = framed
                    frames.records[index] = framed.num_rows
                if batch.progress:
                    batch.progress("read", index + 1, total)
        yield frames

    def transform(self, batch: Batch, framed: Frames) -> Transformed:
        rules = batch.rules
        appends: dict[str, list[pa.Table]] = {}
        accounts = {}
        for source in SOURCE_ORDER:
            indices = [i for i in framed.tables if batch.segments[i].source == source]
            if not indices:
                continue
            self.check_cancel()  # between sources: each is seconds of kernels at most
            frame = concat_frames([framed.tables[i] for i in indices])
            tables, account = process_source(source, frame, batch.lineage, batch.id, rules)
            rules = rules.with_ivt_users(account.ivt_users)
            accounts[source] = account
            for name, table in tables.items():
                appends.setdefault(name, []).append(table)
        merged = {name: pa.concat_tables(parts) for name, parts in appends.items()}
        return Transformed(self.lake.write_files(merged, batch.id), accounts)
