"""Frame landing segments' bytes with the decoder of their source.

Bytes come off the landing zone, are un-gzipped when needed, framed to Arrow, and
tagged with the segment they came from. A segment is anything with a ``source`` and a
landing-relative ``name`` (:class:`advertisex.landing.zone.Segment` is one): decoders
know formats, not where files live.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
import pyarrow as pa

from advertisex.formats.avrofmt import frame_avro
from advertisex.formats.bounded import DecodeLimits, Decoder, decode_bounded, decode_bounded_each
from advertisex.formats.bounded import gunzip_if_needed as gunzip_if_needed  # re-exported
from advertisex.formats.csvfmt import frame_csv
from advertisex.formats.framing import FRAME_ERROR, Bytes
from advertisex.formats.jsonfmt import frame_json
from advertisex.formats.jsonrecords import frame_json_bids, frame_json_clicks
from advertisex.util.mapped import MappedFile


class Segment(Protocol):
    """What a decoder needs to know of a landing segment."""

    @property
    def source(self) -> str: ...

    @property
    def name(self) -> str: ...


class _Weighed(Protocol):
    @property
    def size(self) -> int: ...


S = TypeVar("S", bound=_Weighed)


# (source, container format) → decoder. The format comes from the segment's extension;
# every source may arrive as JSON objects (the Firehose API sends nothing else).
DECODERS: dict[tuple[str, str], Decoder] = {
    ("impressions", "json"): frame_json,
    ("clicks", "csv"): frame_csv,
    ("clicks", "json"): frame_json_clicks,
    ("bids", "avro"): frame_avro,
    ("bids", "json"): frame_json_bids,
}
_FORMAT_BY_EXTENSION = {
    "ndjson": "json",
    "json": "json",
    "jsonl": "json",
    "csv": "csv",
    "tsv": "csv",
    "avro": "avro",
}
_DEFAULT_FORMAT = {"impressions": "json", "clicks": "csv", "bids": "avro"}


def container_format(segment: Segment) -> str:
    """``json``, ``csv`` or ``avro``: how a segment's records are written (its extension,
    else its source's usual format)."""
    base = segment.name.rsplit("/", 1)[-1]
    extension = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    return _FORMAT_BY_EXTENSION.get(extension, _DEFAULT_FORMAT[segment.source])


def decoder_for(segment: Segment) -> Decoder:
    fmt = container_format(segment)
    return DECODERS.get(
        (segment.source, fmt), DECODERS[(segment.source, _DEFAULT_FORMAT[segment.source])]
    )


def frame_segment(
    index: int,
    segment: Segment,
    data: Bytes | MappedFile,
    limits: DecodeLimits | None = None,
    cancel: threading.Event | None = None,
) -> pa.Table:
    """Frame one segment's bytes; ``segment`` (its index in the batch) tags every row.

    With ``limits``, decoding runs in a worker under its time and memory budget, and a
    segment that overruns raises :class:`~advertisex.formats.bounded.DecodeRefused`.
    Rows carry the small integer, not the file name: lineage columns are joined on
    once, at the end, for the rows that are kept.
    """
    return _tagged(decode_bounded(decoder_for(segment), data, limits, cancel), index)


def _tagged(frame: pa.Table, index: int) -> pa.Table:
    return frame.append_column("segment", pa.array(np.full(frame.num_rows, index, dtype=np.int32)))


def frame_segments(
    segments: Sequence[tuple[int, Segment, Bytes | MappedFile]],
    limits: DecodeLimits | None = None,
    cancel: threading.Event | None = None,
) -> list[pa.Table | Exception]:
    """Frame each ``(index, segment, bytes)`` as :func:`frame_segment` does, in order: a
    segment that could not be framed gives the exception in its place
    (:class:`~advertisex.errors.BatchCancelled` is raised). Several go to one decoder
    worker together (:func:`~advertisex.formats.bounded.decode_bounded_each`): plan them
    with :func:`framing_groups`, small segments read as ``bytes``."""
    jobs = [(decoder_for(segment), data) for _, segment, data in segments]
    framed = decode_bounded_each(jobs, limits, cancel)
    return [
        _tagged(frame, index) if isinstance(frame, pa.Table) else frame
        for (index, _, _), frame in zip(segments, framed, strict=True)
    ]


# A segment of at most this many bytes is framed together with its small neighbours, in
# groups of at most GROUP_BYTES and GROUP_SEGMENTS; a bigger one alone, mapped.
SMALL_SEGMENT_BYTES = 64 << 10
GROUP_BYTES = 1 << 20
GROUP_SEGMENTS = 256


def framing_groups(segments: Sequence[tuple[int, S]]) -> list[list[tuple[int, S]]]:
    """``segments`` (indexed, each with a ``size``) cut into the groups
    :func:`frame_segments` frames at once: runs of consecutive small segments, a big one alone.

    >>> from types import SimpleNamespace as S
    >>> sizes = [10, 20, 100_000, 30, 40]
    >>> [[i for i, _ in g] for g in framing_groups([(i, S(size=n)) for i, n in enumerate(sizes)])]
    [[0, 1], [2], [3, 4]]
    """
    groups: list[list[tuple[int, S]]] = []
    weight = 0
    for indexed in segments:
        size = indexed[1].size
        small = size <= SMALL_SEGMENT_BYTES
        last = groups[-1] if groups else None
        if (
            small
            and last is not None
            and last[-1][1].size <= SMALL_SEGMENT_BYTES
            and len(last) < GROUP_SEGMENTS
            and weight + size <= GROUP_BYTES
        ):
            last.append(indexed)
            weight += size
        else:
            groups.append([indexed])
            weight = size
    return groups


def concat_frames(frames: list[pa.Table]) -> pa.Table:
    """Concatenate framed segments of one source, reconciling column types that differ.

    Segments of one source can come from different decoders — bids as Avro with a
    timestamp-millis ``timestamp`` beside bids sent as JSON with text timestamps — so a
    column whose type differs between frames is turned into text everywhere (every
    accepted timestamp form is parsed from text by the standardize kernel).
    """
    import pyarrow.compute as pc

    if len(frames) == 1:
        return frames[0]
    types: dict[str, set[pa.DataType]] = {}
    for frame in frames:
        for f in frame.schema:
            types.setdefault(f.name, set()).add(f.type)
    mixed = {name for name, seen in types.items() if len(seen) > 1 and not _all_text(seen)}
    if mixed:
        aligned = []
        for frame in frames:
            for name in mixed & set(frame.column_names):
                column = frame.column(name)
                if pa.types.is_timestamp(column.type):
                    text = pc.strftime(
                        column, format="%Y-%m-%dT%H:%M:%SZ"
                    )  # %S carries the fraction
                else:
                    text = column.cast(pa.string())
                frame = frame.set_column(frame.schema.get_field_index(name), name, text)
            aligned.append(frame)
        frames = aligned
    table = pa.concat_tables(frames, promote_options="permissive")
    if table.num_rows < len(frames) * SMALL_FRAME_ROWS:
        # Many small segments (a collector's at low traffic, a backlog of them): a chunk
        # each made every kernel's loop over chunks run once a segment.
        table = table.combine_chunks()
    return table


# Frames of fewer rows than this on average are joined into one chunk a column.
SMALL_FRAME_ROWS = 4096


def _all_text(types: set[pa.DataType]) -> bool:
    return all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
        for t in types
    )


def damage_of(frame: pa.Table) -> str | None:
    """Why a segment's frame ends in bytes it could not decode past some damage (its
    ``gzip_damaged`` or ``avro_unreadable`` record's framing error); None when it does not."""
    import pyarrow.compute as pc

    from advertisex.model.reasons import DAMAGE_REASONS

    errors = frame.column(FRAME_ERROR)
    if errors.null_count == len(errors):
        return None
    damage = pc.match_substring_regex(errors, f"^(?:{'|'.join(DAMAGE_REASONS)}):")
    damaged = errors.filter(pc.fill_null(damage, False))
    return damaged[0].as_py() if len(damaged) else None
