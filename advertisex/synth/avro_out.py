"""Bid requests as Avro object-container files.

Encoding record by record with fastavro costs ~25 µs a record here, so records are
encoded by polars-avro's Rust writer (uncompressed, into memory) and its data blocks are
then re-framed by fastavro's ``Writer.write_block`` under the writer schema we promise:
the canonical ``bid_request.avsc`` with a two-way ``timestamp`` union. Avro's binary
encoding carries no names, so the blocks are valid under that schema as long as field
order and types agree, which ``_check_same_layout`` verifies for every file. fastavro
compresses each block with ``deflate`` and writes a sync marker derived from the seed,
so files are byte-identical across runs.
"""

from __future__ import annotations

import hashlib
import io
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advertisex.util import jsonutil

if TYPE_CHECKING:
    import numpy as np
    import polars as pl
    import pyarrow as pa

MALFORMED_KINDS = ["null_user_id", "null_auction_id", "null_timestamp"]
STRING_FIELDS = [
    "auction_id",
    "user_id",
    "exchange",
    "site_domain",
    "device_type",
    "country",
    "campaign_id",
    "ad_creative_id",
]


@cache
def writer_schema() -> dict[str, Any]:
    """The canonical bid-request schema with ``timestamp`` as ``["null", timestamp-millis]``.

    polars-avro (the pipeline's fast reader) can't read the canonical 3-way union.
    """
    text = resources.files("advertisex.model").joinpath("bid_request.avsc").read_text()
    schema: dict[str, Any] = jsonutil.loads(text)
    for field in schema["fields"]:
        if field["name"] == "timestamp":
            field["type"] = ["null", {"type": "long", "logicalType": "timestamp-millis"}]
    return schema


def conflicting_bids(rng: np.random.Generator, frame: pl.DataFrame) -> pl.DataFrame:
    """Same exchange and auction id, different floor price: a re-sent, re-priced request."""
    import numpy as np
    import polars as pl

    floor = frame["floor_price"].to_numpy()
    changed = np.round(floor * rng.uniform(1.05, 1.3, len(frame)) + 0.01, 4)
    return frame.with_columns(floor_price=pl.Series(changed))


def malformed_bids(rng: np.random.Generator, templates: pl.DataFrame) -> pl.DataFrame:
    """Template rows with one required field (user, auction id or timestamp) nulled."""
    import polars as pl

    kind = pl.Series(rng.integers(0, len(MALFORMED_KINDS), len(templates)))
    return templates.with_columns(
        user_id=pl.when(kind == 0).then(None).otherwise("user_id"),
        auction_id=pl.when(kind == 1).then(None).otherwise("auction_id"),
        event_ms=pl.when(kind == 2).then(None).otherwise("event_ms"),
    )


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    """Arrow table with the writer schema's field order and types."""
    import numpy as np
    import pyarrow as pa

    n = len(frame)
    # Targeting map with non-nullable values, so the Avro type is {"map": "string"}:
    # entries interleave age, gender, interests of row 0, then row 1, and so on.
    map_type = pa.map_(pa.string(), pa.field("value", pa.string(), nullable=False))
    entry_keys = ["age", "gender", "interests"]
    keys = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(3, dtype=np.int8), n)), pa.array(entry_keys)
    ).cast(pa.string())
    stacked = pa.concat_arrays([frame[key].to_arrow().cast(pa.string()) for key in entry_keys])
    interleave = (np.arange(3)[None, :] * n + np.arange(n)[:, None]).reshape(-1)
    targeting = pa.MapArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
        keys,
        stacked.take(pa.array(interleave)),
        type=map_type,
    )
    columns = {name: frame[name].to_arrow().cast(pa.string()) for name in STRING_FIELDS}
    columns["timestamp"] = frame["event_ms"].to_arrow().cast(pa.timestamp("ms", tz="UTC"))
    columns["floor_price"] = frame["floor_price"].to_arrow().cast(pa.float64())
    columns["bid_price"] = frame["bid_price"].to_arrow().cast(pa.float64())
    columns["ad_targeting"] = targeting
    order = [field["name"] for field in writer_schema()["fields"]]
    return pa.table({name: columns[name] for name in order})


# zlib's level for the bid files' deflate blocks. 1: 2.5x faster than the default for
# ~20 % larger files (these are test data); 0: stored blocks, still the deflate codec, which
# writes and inflates ≈ 6x and 3x faster again for files ≈ 3x the size (the demo's choice).
DEFLATE_LEVEL = 1


def write_avro_file(
    path: Path, table: pa.Table, sync_marker: bytes, level: int = DEFLATE_LEVEL
) -> None:
    """One deflate-compressed container holding ``table``'s rows in order (``level``:
    zlib's, 0 to 9)."""
    import fastavro
    from fastavro.write import Writer

    # polars-avro's public writer takes polars frames, whose map values are always
    # nullable; its Arrow-level sink keeps the non-nullable values of our map type.
    from polars_avro._avro_rs import AvroBuffSink

    encoded = io.BytesIO()
    sink = AvroBuffSink(encoded, table, None)
    if table.num_rows:
        sink.write(table)
    sink.close()
    encoded.seek(0)
    blocks = fastavro.block_reader(encoded)
    encoded_schema = blocks.writer_schema
    assert isinstance(encoded_schema, dict)  # a record schema, as polars-avro writes
    _check_same_layout(encoded_schema)
    with path.open("wb") as out:
        writer = Writer(
            out, writer_schema(), codec="deflate", sync_marker=sync_marker, compression_level=level
        )
        for block in blocks:
            writer.write_block(block)
        writer.flush()


def _check_same_layout(encoded_schema: dict[str, Any]) -> None:
    """Fail loudly if polars-avro ever encodes fields in another order or type."""

    def layout(schema: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            (field["name"], jsonutil.dumps_str(field["type"], sort_keys=True))
            for field in schema["fields"]
        ]

    if layout(encoded_schema) != layout(writer_schema()):
        raise RuntimeError(
            "polars-avro encoded bid requests with an unexpected layout: "
            f"{layout(encoded_schema)}; expected {layout(writer_schema())}"
        )


def sync_marker(seed: int, hour: int) -> bytes:
    """16 bytes unique per file and run, but reproducible (fastavro's default is random)."""
    return hashlib.blake2b(f"advertisex-synth:{seed}:{hour}".encode(), digest_size=16).digest()
