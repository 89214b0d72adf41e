"""Decode a landing segment under a time and a memory budget, so no input can stall a batch.

Every decoder is native code reading bytes that a producer chose. One may spin forever
(polars-avro on an Avro block with a stray byte after its records) or inflate a small file
into gigabytes (a gzip or deflate bomb); neither can be interrupted inside the process it
runs in. So segments are decoded in worker processes (:mod:`advertisex.util.isolate`):
a decoder that overruns its time, outgrows its memory or crashes is stopped, and the
segment is refused with :class:`DecodeRefused` — the caller sets it aside with that
reason while the rest of the batch goes on.

Avro gets a second chance before that: the fast path (polars-avro) is given a fifth of
the time budget, and if it overruns, the record-by-record salvage path (fastavro) reads
the same bytes in a fresh worker with the whole budget, so a container that trips one
library loses nothing.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

import pyarrow as pa

from advertisex.errors import BatchCancelled
from advertisex.formats.framing import Bytes, starts_with
from advertisex.formats.inflate import GZIP_MAGIC, GZIP_WBITS, MAX_INFLATION, inflate_limit
from advertisex.formats.preload import DECODER_PRELOAD
from advertisex.util.isolate import Budget, BudgetExceeded, WorkerPool, shared_pool, takes_views
from advertisex.util.mapped import FileChanged, MappedFile, view_of

if TYPE_CHECKING:
    from advertisex.config import ProcessorSettings

Decoder = Callable[[Bytes], pa.Table]
R = TypeVar("R")

_FAST_SHARE = 0.2  # of the time budget, for the Avro fast path before the salvage path
# Decoding may take this many times a segment's size in memory (at least the floor): far
# above real data (Arrow holds JSON in about 2-3× its text, gzip shrinks it 5-15×).
_MEMORY_PER_BYTE = 64
_MEMORY_FLOOR = 1 << 30
DECODE_WORKERS = 2  # this machine's cores
# A group of small segments' fixed time budget at most (DecodeLimits.group_budget): a few
# hundred of them frame in well under a second.
_GROUP_SECONDS = 5.0


@dataclass(frozen=True)
class DecodeLimits:
    """How long and how much memory decoding one segment may take (``processor.decode_*``)."""

    seconds: float = 30.0
    seconds_per_mib: float = 2.0
    memory_bytes: int = 4 << 30
    isolated: bool = True  # False: decode in this process, unbounded (no worker start-up)

    @classmethod
    def of(cls, processor: ProcessorSettings) -> DecodeLimits:
        return cls(
            seconds=processor.decode_seconds,
            seconds_per_mib=processor.decode_seconds_per_mib,
            memory_bytes=processor.decode_memory_bytes,
            isolated=processor.decode_isolated,
        )

    def budget(self, size: int, share: float = 1.0) -> Budget:
        """A segment of ``size`` bytes: its share of the time budget, and memory up to
        ``_MEMORY_PER_BYTE`` times its size (at least ``_MEMORY_FLOOR``), never more than
        ``memory_bytes`` — so a small file that swells a thousandfold (a decompression bomb)
        is stopped at a gigabyte, not at the whole budget."""
        seconds = (self.seconds + self.seconds_per_mib * size / (1 << 20)) * share
        memory = min(self.memory_bytes, max(_MEMORY_FLOOR, _MEMORY_PER_BYTE * size))
        return Budget(seconds=seconds, memory_bytes=memory)

    def group_budget(self, size: int, share: float = 1.0) -> Budget:
        """A group of small segments of ``size`` bytes together (:func:`decode_bounded_each`):
        as :meth:`budget`, its fixed seconds at most :data:`_GROUP_SECONDS`. A group that
        overruns is framed again a segment at a time, each under its own budget, so a
        spinning decoder among small segments costs its batch that much more, not a second
        whole budget (a poison Avro beside small bid files: its fast path's 6 s twice)."""
        seconds = (
            min(self.seconds, _GROUP_SECONDS) + self.seconds_per_mib * size / (1 << 20)
        ) * share
        return Budget(seconds=seconds, memory_bytes=self.budget(size).memory_bytes)


class DecodeRefused(Exception):
    """A segment the decoders could not read within their budget: ``code`` says how.

    ``decode_timeout``, ``decode_memory`` or ``decoder_crashed``; ``message`` is for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a decoder worker, re-raised here
        return (DecodeRefused, (self.code, self.message))


_CODES = {"time": "decode_timeout", "memory": "decode_memory", "crash": "decoder_crashed"}
DECODE_REFUSALS = frozenset(_CODES.values())


def decode_bounded(
    decoder: Decoder,
    data: Bytes | MappedFile,
    limits: DecodeLimits | None,
    cancel: threading.Event | None = None,
) -> pa.Table:
    """``decoder`` over ``data`` (un-gzipped first when it is gzip), within ``limits``;
    ``cancel`` being set stops it at once (:class:`~advertisex.errors.BatchCancelled`).

    ``decoder`` must be a module-level function (workers import it by name). A mapped file
    goes to the worker by its name (the worker maps the same pages), bytes through the pipe.
    """
    if limits is None or not limits.isolated:
        return gunzip_and_decode(decoder, view_of(data))
    from advertisex.formats.avrofmt import frame_avro, salvage_avro

    pool = decode_pool()
    fallback = salvage_avro if decoder is frame_avro else None
    try:
        budget = limits.budget(len(data), _FAST_SHARE if fallback else 1.0)
        try:
            framed = pool.run(budget, decode_for_handoff, decoder, data, cancel=cancel)
        except FileChanged:  # renamed over since it was mapped here: send this mapping's bytes
            data = bytes(view_of(data))
            framed = pool.run(budget, decode_for_handoff, decoder, data, cancel=cancel)
        return framed.over(view_of(data)) if isinstance(framed, TextViews) else framed
    except BudgetExceeded as breach:
        if fallback is None or breach.kind in ("memory", "cancelled"):
            raise _refused(breach) from None
    try:
        budget = limits.budget(len(data))
        try:
            return pool.run(budget, gunzip_and_decode, fallback, data, cancel=cancel)
        except FileChanged:
            return pool.run(
                budget, gunzip_and_decode, fallback, bytes(view_of(data)), cancel=cancel
            )
    except BudgetExceeded as breach:
        raise _refused(breach) from None


def decode_bounded_each(
    jobs: Sequence[tuple[Decoder, Bytes | MappedFile]],
    limits: DecodeLimits | None,
    cancel: threading.Event | None = None,
) -> list[pa.Table | Exception]:
    """Each ``(decoder, data)`` of ``jobs`` as :func:`decode_bounded` gives it, in order: a
    frame, or the exception that framing it raised (:class:`DecodeRefused` among them) in
    its place; ``cancel`` being set raises :class:`~advertisex.errors.BatchCancelled`.

    For small segments (a collector's at low traffic, a backlog of them): they go to one
    decoder worker in one job, under one budget for their bytes together, where a job each
    cost a round trip through the pipe and the worker's bookkeeping — most of what framing
    a segment of a few dozen records cost (≈ 1 ms). When that job fails as a whole (a
    decoder overran the budget, outgrew the memory or crashed the worker), each is framed
    again in a job of its own, so the one that did it is named and the others are kept.
    A job alone is :func:`decode_bounded`'s (a mapped file goes to the worker by name);
    several travel as bytes.
    """
    from advertisex.formats.avrofmt import frame_avro

    decoders = [decoder for decoder, _ in jobs]
    if limits is None or not limits.isolated:  # in this process: a mapped file is not copied
        views = [view_of(data) for _, data in jobs]
        together = _avro_together(decoders, views)
        if together is not None:
            return together
        return [
            _or_error(gunzip_and_decode, decoder, data)
            for decoder, data in zip(decoders, views, strict=True)
        ]
    if len(jobs) == 1:
        return [_bounded_or_error(decoders[0], jobs[0][1], limits, cancel)]
    datas = [bytes(view_of(data)) for _, data in jobs]
    size = sum(len(data) for data in datas)
    share = _FAST_SHARE if any(decoder is frame_avro for decoder in decoders) else 1.0
    try:
        answers = decode_pool().run(
            limits.group_budget(size, share),
            decode_each_for_handoff,
            decoders,
            datas,
            cancel=cancel,
        )
    except BudgetExceeded as breach:
        if breach.kind == "cancelled":
            raise _refused(breach) from None
        answers = None
    except Exception:  # the answer did not come back whole (an exception that did not pickle)
        answers = None
    if answers is None:
        return [
            _bounded_or_error(decoder, data, limits, cancel)
            for decoder, data in zip(decoders, datas, strict=True)
        ]
    if isinstance(answers, Packed):
        return answers.frames()
    return [
        answer.over(data) if isinstance(answer, TextViews) else answer
        for answer, data in zip(answers, datas, strict=True)
    ]


def _bounded_or_error(
    decoder: Decoder,
    data: Bytes | MappedFile,
    limits: DecodeLimits,
    cancel: threading.Event | None,
) -> pa.Table | Exception:
    try:
        return decode_bounded(decoder, data, limits, cancel)
    except BatchCancelled:
        raise
    except Exception as error:
        return error


def _or_error(fn: Callable[..., R], *args: Any) -> R | Exception:
    """``fn(*args)``, or the exception it raised (a frame, or why there is none)."""
    try:
        return fn(*args)
    except Exception as error:
        return error


def decode_each_for_handoff(
    decoders: list[Decoder], datas: list[bytes]
) -> list[pa.Table | TextViews | Exception] | Packed:
    """:func:`decode_for_handoff` over each of ``datas`` in a worker (for
    :func:`decode_bounded_each`): an exception in the place of a frame that failed, and
    frames that are all tables of one schema handed back as one (:class:`Packed`)."""
    together = _avro_together(decoders, datas)
    answers: list[pa.Table | TextViews | Exception] = (
        [*together]
        if together is not None
        else [
            _or_error(decode_for_handoff, decoder, data)
            for decoder, data in zip(decoders, datas, strict=True)
        ]
    )
    return Packed.of(answers) or answers


def _avro_together(
    decoders: list[Decoder], datas: Sequence[Bytes]
) -> list[pa.Table | Exception] | None:
    """Avro containers framed together (``avrofmt.frame_avro_each``: containers of one
    schema read in one call, the same frames), each un-gzipped first; None unless every
    one of two or more is Avro."""
    from advertisex.formats.avrofmt import frame_avro, frame_avro_each

    if len(datas) < 2 or any(decoder is not frame_avro for decoder in decoders):
        return None
    # Each one's frame when it is framed alone (a bomb's refusal, a damaged stream's frame),
    # or its inflated bytes to frame with the others.
    unzipped: list[Bytes | pa.Table | Exception] = []
    for data in datas:
        try:
            inflated, damage = gunzip_if_needed(data, inflate_limit(len(data)))
        except Exception as error:  # a bomb (decode_memory): this one alone is refused
            unzipped.append(error)
            continue
        if damage is None:
            unzipped.append(inflated)
        else:
            unzipped.append(_or_error(_decoded, frame_avro, inflated, data, damage))
    framed = iter(frame_avro_each([u for u in unzipped if isinstance(u, Bytes)]))
    return [next(framed) if isinstance(u, Bytes) else u for u in unzipped]


@dataclass(frozen=True)
class Packed:
    """Frames of one schema handed back from a worker as one table and each one's rows: a
    table pickled costs ≈ 0.5 ms on its way (its schema, a buffer each column), about as
    much as framing a small Avro segment's records."""

    table: pa.Table
    rows: list[int]

    @staticmethod
    def of(answers: list[pa.Table | TextViews | Exception]) -> Packed | None:
        tables = [answer for answer in answers if isinstance(answer, pa.Table)]
        if len(tables) < 2 or len(tables) < len(answers):
            return None
        schema = tables[0].schema
        if any(not table.schema.equals(schema) for table in tables[1:]):
            return None
        # One chunk a column: pickled, a chunk costs as much as a table of its own.
        joined = pa.concat_tables(tables).combine_chunks()
        return Packed(joined, [table.num_rows for table in tables])

    def frames(self) -> list[pa.Table | Exception]:
        """The frames as they were made (slices of the one table)."""
        frames: list[pa.Table | Exception] = []
        start = 0
        for rows in self.rows:
            frames.append(self.table.slice(start, rows))
            start += rows
        return frames


def _refused(breach: BudgetExceeded) -> Exception:
    if breach.kind == "cancelled":
        return BatchCancelled("the batch was stopped while decoding; nothing was committed")
    return DecodeRefused(_CODES[breach.kind], breach.message)


def decode_pool() -> WorkerPool:
    """The process's pool of decoder workers (two: this machine's cores), started on first use."""
    return shared_pool(DECODE_WORKERS, DECODER_PRELOAD, warm_worker)


def warm_worker() -> None:
    """A decoder worker's first decodes started what the modules it imported start lazily —
    a DuckDB database, the compiled helpers' library, ISA-L's inflate, modules imported on
    first use (the first bid segment of a batch took 0.20 s against 0.03-0.04 for the next,
    on the batch's critical path while the worker had waited idle for it). A record of each
    format, decoded as soon as the worker is up, starts them before a segment comes.

    The Avro record is one the compiled reader reads (its timestamp a field named
    ``timestamp``, as in the bids' schema): one it refused went to polars-avro, and every
    worker imported polars for it — 0.2 s of CPU and 32 MiB each at every command's start,
    beside the command's own imports on the other core."""
    import io

    import fastavro

    from advertisex.formats.avrofmt import frame_avro
    from advertisex.formats.jsonfmt import frame_json

    # An escape the native scanner leaves to DuckDB: its database starts here, not on the
    # first segment with such a line.
    frame_json(b'{"a": "\\u00e9"}\n')
    schema = {
        "type": "record",
        "name": "Warm",
        "fields": [
            {"name": "a", "type": ["null", "string"]},
            {
                "name": "timestamp",
                "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            },
            {"name": "m", "type": ["null", {"type": "map", "values": "string"}]},
        ],
    }
    container = io.BytesIO()
    record = {"a": "x", "timestamp": 0, "m": {"k": "v"}}
    fastavro.writer(container, schema, [record], codec="deflate")
    frame_avro(container.getvalue())


def warm() -> None:
    """Start the decoder workers now, in the background, so the first batch does not wait."""
    decode_pool().warm()


def shed() -> None:
    """Stop the idle decoder workers (work without decoding comes: the marts' build)."""
    decode_pool().shed()


@dataclass(frozen=True)
class TextViews:
    """A frame whose ``raw`` texts are slices of the segment's own bytes, handed back by
    a decoder worker as those slices' offsets (4 bytes a record) instead of the texts: the
    caller has the bytes already, and pickling a segment's text back through the pipe cost
    both processes about as much as framing it. :meth:`over` rebuilds the frame."""

    rest: pa.Table  # the frame without its raw column
    position: int  # where the raw column was
    offsets: bytes  # int32 offsets of the texts into the segment's bytes, one more than rows

    @staticmethod
    def of(frame: pa.Table, data: Bytes) -> TextViews | pa.Table:
        """The views of ``frame`` when its raw texts are slices of ``data`` (the JSON
        framer's lines are, when no line needed re-framing), else ``frame`` as it is."""
        import numpy as np

        from advertisex.formats.framing import RAW

        if RAW not in frame.column_names or frame.num_rows == 0:
            return frame
        raw = frame.column(RAW)
        if raw.num_chunks != 1 or raw.type != pa.string() or raw.null_count:
            return frame
        chunk = raw.chunk(0)
        values = chunk.buffers()[2]
        if values is None or values.address != pa.py_buffer(data).address:
            return frame
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int32)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1]
        if offsets[-1] > len(data):
            return frame
        position = frame.schema.get_field_index(RAW)
        return TextViews(frame.remove_column(position), position, offsets.tobytes())

    def over(self, data: Bytes) -> pa.Table:
        """The frame, its raw texts sliced from ``data`` (the bytes the worker framed)."""
        from advertisex.formats.framing import RAW

        rows = self.rest.num_rows
        raw = pa.StringArray.from_buffers(rows, pa.py_buffer(self.offsets), pa.py_buffer(data))
        return self.rest.add_column(self.position, RAW, raw)


@takes_views
def decode_for_handoff(decoder: Decoder, data: Bytes) -> pa.Table | TextViews:
    """:func:`gunzip_and_decode` in a worker: the frame, or its :class:`TextViews` when its
    texts are slices of ``data`` as it was sent (not un-gzipped)."""
    frame = gunzip_and_decode(decoder, data)
    return TextViews.of(frame, data)


@takes_views
def gunzip_and_decode(decoder: Decoder, data: Bytes) -> pa.Table:
    """``decoder`` over ``data`` un-gzipped; a damaged gzip stream's readable part is framed
    and the rest stands as one more record (:func:`with_gzip_damage`)."""
    inflated, damage = gunzip_if_needed(data, inflate_limit(len(data)))
    return _decoded(decoder, inflated, data, damage)


def _decoded(decoder: Decoder, inflated: Bytes, data: Bytes, damage: GzipDamage | None) -> pa.Table:
    """``decoder`` over the ``inflated`` bytes of ``data``, and the record of its damage."""
    frame = decoder(inflated)
    return frame if damage is None else with_gzip_damage(frame, data, damage)


@dataclass(frozen=True)
class GzipDamage:
    """Where a gzip stream stopped being readable: ``at`` is the first compressed byte whose
    output is not in the inflated bytes."""

    at: int
    message: str


@overload
def gunzip_if_needed(data: bytes, limit: int | None = None) -> tuple[bytes, GzipDamage | None]: ...
@overload
def gunzip_if_needed(data: Bytes, limit: int | None = None) -> tuple[Bytes, GzipDamage | None]: ...
def gunzip_if_needed(data: Bytes, limit: int | None = None) -> tuple[Bytes, GzipDamage | None]:
    """Decompressed bytes (or the input), and where a damaged stream stopped being readable
    (:class:`GzipDamage`); more than ``limit`` bytes inflated is refused (``decode_memory``),
    never allocated.

    A member that fails its checks (a corrupt deflate stream, a wrong CRC) gives nothing:
    a flipped bit inflates to plausible text for hundreds of records before zlib notices,
    and none of it can be told from the real records. A member cut short gives what it
    inflated (nothing in it is known to be wrong; a record cut in half fails on its own).
    Bytes after the last member that are not zeros (which gzip pads with) are damage too.
    """
    if not starts_with(data, GZIP_MAGIC):
        return data, None
    out: list[bytes] = []
    size, rest = 0, data
    while starts_with(rest, GZIP_MAGIC):  # one gzip member after another, as gzip allows
        at = len(data) - len(rest)
        inflater = zlib.decompressobj(GZIP_WBITS)
        room = limit - size + 1 if limit is not None else 0
        try:
            part = inflater.decompress(rest, room)
        except zlib.error as error:
            damage = f"the gzip member at byte {at:,} is corrupt ({error}): nothing in it is kept"
            return b"".join(out), GzipDamage(at, damage)
        size += len(part)
        out.append(part)
        if limit is not None and (size > limit or inflater.unconsumed_tail):
            raise DecodeRefused(
                "decode_memory",
                f"the gzip stream inflates past {limit:,} bytes, {MAX_INFLATION} times its "
                f"{len(data):,}: a decompression bomb, or a file to split",
            )
        if not inflater.eof:
            damage = (
                f"the gzip stream is cut short after {len(data):,} bytes: the records it held "
                "up to there were read"
            )
            return b"".join(out), GzipDamage(len(data), damage)
        rest = inflater.unused_data
    if bytes(rest).strip(b"\0"):
        at = len(data) - len(rest)
        damage = (
            f"{len(rest):,} bytes after the end of the gzip stream (at byte {at:,}) are not gzip"
        )
        return b"".join(out), GzipDamage(at, damage)
    return b"".join(out), None


def with_gzip_damage(frame: pa.Table, data: Bytes, damage: GzipDamage) -> pa.Table:
    """``frame`` with one more record standing for the bytes of ``data`` from ``damage.at``
    on (``gzip_damaged``; its raw text is those bytes in base64, as ``avro_unreadable``'s),
    after the frame's last position: every other column null."""
    import base64

    import pyarrow.compute as pc

    from advertisex.formats.framing import FRAME_ERROR, POSITION, RAW, UNDECODED

    last = pc.max(frame.column(POSITION)).as_py() if frame.num_rows else None
    values = {
        RAW: UNDECODED + base64.b64encode(view_of(data)[damage.at :]).decode(),
        POSITION: (last or 0) + 1,
        FRAME_ERROR: f"gzip_damaged: {damage.message}",
    }
    row = pa.table(
        {
            field.name: pa.array([values[field.name]], field.type)
            if field.name in values
            else pa.nulls(1, field.type)
            for field in frame.schema
        },
        schema=frame.schema,
    )
    return pa.concat_tables([frame, row])
