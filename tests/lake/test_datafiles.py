"""Data files as the runners write them: one per day, ids written plain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from advertisex.lake.datafiles import Footer, write_data_files


def test_a_file_per_day_with_ids_plain_and_repeating_values_in_a_dictionary(
    tmp_path: Path,
) -> None:
    days = [datetime(2026, 11, d, h, tzinfo=UTC) for d in (10, 11) for h in range(3)]
    rows = pa.table(
        {
            "impression_id": [f"i-{n}" for n in range(6)],
            "event_time": pa.array(days, pa.timestamp("us", tz="UTC")),
            "campaign_id": ["cmp-1"] * 6,
            "website": [f"https://news.example/{n}" for n in range(6)],
        }
    )
    written = list(write_data_files("curated.impressions", rows, str(tmp_path), "b", None))
    assert [f.rows for f in written] == [3, 3]
    for file in written:
        column = {
            c.path_in_schema: c.encodings
            for c in (pq.ParquetFile(file.url).metadata.row_group(0).column(i) for i in range(4))
        }
        assert "RLE_DICTIONARY" not in column["impression_id"]  # unique: a dictionary is waste
        assert "RLE_DICTIONARY" not in column["website"]  # a page URL: hardly repeats
        assert "RLE_DICTIONARY" in column["campaign_id"]
        # Ids share their prefixes, times climb by small steps: delta-encoded, not plain.
        assert "DELTA_BYTE_ARRAY" in column["impression_id"]
        assert "DELTA_BINARY_PACKED" in column["event_time"]
        assert "PLAIN" in column["website"]
    back = pa.concat_tables(pq.read_table(file.url) for file in written)
    assert back.select(["impression_id", "event_time"]).equals(
        rows.select(["impression_id", "event_time"])
    )
    prices = pa.table(
        {
            "auction_id": ["a-1", "a-2"],
            "event_time": pa.array(days[:2], pa.timestamp("us", tz="UTC")),
            "exchange": ["x", "x"],
            "floor_price": [0.41, 0.57],
            "bid_price": [1.13, 0.98],
            "ad_targeting": pa.array(
                [[("interest", "sports"), ("segment", "s1")], [("interest", "sports")]],
                pa.map_(pa.string(), pa.string()),
            ),
        }
    )
    (file,) = write_data_files("curated.bid_requests", prices, str(tmp_path), "b", None)
    metadata = pq.ParquetFile(file.url).metadata.row_group(0)
    column = {
        metadata.column(i).path_in_schema: metadata.column(i).encodings
        for i in range(metadata.num_columns)
    }
    assert "RLE_DICTIONARY" in column["exchange"]
    assert "RLE_DICTIONARY" not in column["floor_price"] + column["bid_price"]  # prices vary
    # A map's keys and values repeat (a few targeting keys, their few values): its leaves
    # are dictionary-encoded too, though the writer does not find them by the column's name.
    assert "RLE_DICTIONARY" in column["ad_targeting.key_value.key"]
    assert "RLE_DICTIONARY" in column["ad_targeting.key_value.value"]
    reasons = pa.table(
        {
            "reasons": pa.array([["a:b"], ["a:b", "c"]], pa.list_(pa.string())),
            "ingest_time": pa.array(days[:2], pa.timestamp("us", tz="UTC")),
        }
    )
    (file,) = write_data_files("curated.quarantine", reasons, str(tmp_path), "q", None)
    metadata = pq.ParquetFile(file.url).metadata.row_group(0)
    assert "RLE_DICTIONARY" in metadata.column(0).encodings  # reasons.list.element


def test_a_file_is_committed_from_its_writer_footer_as_pyiceberg_reads_it_back(
    tmp_path: Path,
) -> None:
    """The DataFile made from the writer's own metadata equals pyiceberg's own, made by
    reading the file's footer back: same partition, sizes, counts and bounds."""
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    from advertisex.config import load_settings
    from advertisex.lake.datafiles import data_file
    from advertisex.lake.tables import Lake
    from tests.lake.test_erasure import _clicks

    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    table = lake.table("curated.clicks")
    written = list(
        write_data_files("curated.clicks", _clicks(["a1", "b2"]), table.location(), "b", None)
    )
    assert written and all(f.footer is not None for f in written)
    for file in written:
        read_back = parquet_file_to_data_file(table.io, table.metadata, file.url)
        assert data_file(table, table.metadata, file.url, file.footer) == read_back
        assert (
            file.footer
            and file.footer.size == Path(file.url.removeprefix("file://")).stat().st_size
        )


def test_columns_without_statistics_have_no_metrics_and_an_older_table_is_told_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A column the table keeps no statistics for (TableSpec.statistics) has neither
    Parquet statistics nor manifest metrics, and pyiceberg is told so by the table's
    properties: no warning, and the kept columns' bounds and null counts are all there.
    A table created before (without those properties) gets them when it is opened."""
    import logging

    from advertisex.config import load_settings
    from advertisex.lake.datafiles import add_files
    from advertisex.lake.tables import Lake
    from advertisex.model.schemas import TABLES
    from tests.lake.test_erasure import _clicks

    settings = load_settings(data_dir=tmp_path, correlation={"update_marts": False})
    table = Lake(settings).table("curated.clicks")
    without = TABLES["curated.clicks"].without_statistics()
    assert {f"write.metadata.metrics.column.{c}" for c in without} <= set(table.properties)
    with table.transaction() as tx:  # as an older AdvertiseX created it
        tx.remove_properties(*(f"write.metadata.metrics.column.{c}" for c in without))
    table = Lake(settings).table("curated.clicks")
    assert all(
        table.properties.get(f"write.metadata.metrics.column.{c}") == "none" for c in without
    )

    written = list(
        write_data_files("curated.clicks", _clicks(["a1", "b2"]), table.location(), "b", None)
    )
    with caplog.at_level(logging.WARNING, logger="pyiceberg"):
        (data_file,) = add_files(
            table, [f.url for f in written], {}, {f.url: f.footer for f in written if f.footer}
        )
    assert not [r for r in caplog.records if "statistics" in r.getMessage()]
    ids = {f.name: f.field_id for f in table.schema().fields}
    for name in without:
        assert (
            ids[name] not in data_file.lower_bounds and ids[name] not in data_file.null_value_counts
        )
    for name in ("event_time", "campaign_id", "user_id", "ingest_time"):
        assert ids[name] in data_file.lower_bounds and ids[name] in data_file.upper_bounds
    assert ids["extras"] in data_file.null_value_counts  # what an erasure skips files by


def test_the_files_columns_are_checked_against_the_table_once_per_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every micro-batch commits files of the same columns: pyiceberg's check of a file's
    columns against the table (≈ 15 ms a file) runs once per table schema, again when the
    schema changes, and a file whose columns do not fit is still refused every time."""
    import pyiceberg.io.pyarrow as pyiceberg_arrow
    from pyiceberg.types import StringType

    from advertisex.config import load_settings
    from advertisex.lake.datafiles import data_file
    from advertisex.lake.tables import Lake
    from tests.lake.test_erasure import _clicks

    checked: list[object] = []
    check = pyiceberg_arrow._check_pyarrow_schema_compatible

    def counted(*args: Any, **kwargs: Any) -> None:
        checked.append(args)
        check(*args, **kwargs)

    monkeypatch.setattr(pyiceberg_arrow, "_check_pyarrow_schema_compatible", counted)
    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    table = lake.table("curated.clicks")

    def commit_files(ids: list[str]) -> None:
        for file in write_data_files("curated.clicks", _clicks(ids), table.location(), "b", None):
            data_file(table, table.metadata, file.url, file.footer)

    commit_files(["a1", "b2"])
    commit_files(["c3"])
    assert len(checked) == 1
    with table.update_schema() as update:
        update.add_column("note", StringType())
    table = lake.table("curated.clicks")
    commit_files(["d4"])
    assert len(checked) == 2  # a new schema: checked again

    alien = tmp_path / "alien.parquet"
    pq.write_table(pa.table({"click_id": [1]}), alien)  # an int where the table has a string
    footer = Footer(pq.ParquetFile(alien).metadata, alien.stat().st_size)
    for _ in range(2):
        with pytest.raises(ValueError):
            data_file(table, table.metadata, str(alien), footer)


def test_a_write_that_fails_leaves_no_open_writer_to_fail_again_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk is one StorageError: the torn writer is not left for its finalizer,
    which would close it, fail to collect a footer and print a traceback at collection."""
    import errno
    import gc
    import io
    import sys

    from advertisex.errors import StorageError
    from advertisex.util import storage

    class FullDisk(io.RawIOBase):
        """Takes the file's first write (Parquet's magic bytes), then is full."""

        written = 0

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            if self.written:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written = len(data)
            return len(data)

    class Filesystem:
        def create_dir(self, path: str, recursive: bool = False) -> None:
            pass

        def open_output_stream(self, path: str) -> Any:
            return FullDisk()

        def delete_file(self, path: str) -> None:
            pass

    monkeypatch.setattr(storage, "resolve", lambda url, scale: (Filesystem(), url))
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    at = datetime(2026, 11, 10, tzinfo=UTC)
    rows = pa.table(
        {
            "impression_id": [f"i-{n}" for n in range(1000)],
            "event_time": pa.array([at] * 1000, pa.timestamp("us", tz="UTC")),
        }
    )
    with pytest.raises(StorageError, match="No space left"):
        list(write_data_files("curated.impressions", rows, str(tmp_path), "b", None))
    gc.collect()
    assert not unraisable, [u.exc_value for u in unraisable]


def test_few_valued_columns_reach_the_writer_as_dictionaries_and_read_back_as_text(
    tmp_path: Path,
) -> None:
    """A curated table's few-valued text columns (``TableSpec.few_values``) are gathered as
    dictionary codes and handed to the Parquet writer so (its own dictionary encoding, done
    once): the file holds them dictionary-encoded with their statistics, every reader gets
    the table's own types back, and the commit's metrics are those pyiceberg reads back."""
    import numpy as np
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    from advertisex.config import load_settings
    from advertisex.lake.datafiles import data_file
    from advertisex.lake.tables import Lake, _conform
    from advertisex.model.schemas import TABLES
    from advertisex.runners.batch import accepted_rows

    spec = TABLES["curated.clicks"]
    at = pa.array(
        [datetime(2026, 11, 10, h, tzinfo=UTC) for h in (3, 1, 2)],
        spec.schema.field("event_time").type,
    )
    standardized = pa.table(
        {
            "event_id": ["e-1", "e-2", "e-3"],
            "event_time": at,
            "user_id": ["u-1", "u-2", "u-1"],
            "campaign_id": ["cmp-2", "cmp-1", "cmp-2"],
            "ad_creative_id": ["cr-1", None, "cr-1"],
            "advertiser": ["adv-1", "adv-1", None],
            "payload_hash": ["x1", "x2", "x3"],
            "segment": pa.array([7, 7, 9], pa.int32()),
            "source_position": [1, 2, 1],
        }
    )
    lineage = pa.table(
        {
            "segment": pa.array([9, 7], pa.int32()),
            "source_file": ["clicks/b.csv", "clicks/a.csv"],
            "ingest_time": pa.array([at[0], at[1]], at.type),
        }
    )
    rows = accepted_rows("curated.clicks", standardized, np.ones(3, dtype=bool), lineage, "b-1")
    assert spec.few_values and all(
        pa.types.is_dictionary(rows.schema.field(c).type) for c in spec.few_values
    )
    # Sorted by campaign and time: e-2 (segment 7), e-3 (segment 9), e-1 (segment 7).
    assert rows.column("event_id").to_pylist() == ["e-2", "e-3", "e-1"]
    assert rows.column("source_file").to_pylist() == [
        "clicks/a.csv",
        "clicks/b.csv",
        "clicks/a.csv",
    ]
    assert rows.column("batch_id").to_pylist() == ["b-1"] * 3
    assert rows.column("campaign_id").to_pylist() == ["cmp-1", "cmp-2", "cmp-2"]  # sorted
    conformed = _conform(rows, spec.schema)
    assert conformed.schema.equals(rows.schema)  # kept encoded on the way to the writer

    lake = Lake(load_settings(data_dir=tmp_path, correlation={"update_marts": False}))
    table = lake.table("curated.clicks")
    (file,) = write_data_files("curated.clicks", conformed, table.location(), "b", None)
    back = pq.read_table(file.url)
    assert [f.type for f in back.schema] == [f.type for f in spec.schema]
    assert back.equals(conformed.cast(spec.schema))
    metadata = pq.ParquetFile(file.url).metadata.row_group(0)
    without = set(spec.without_statistics())
    assert {"event_id", "payload_hash", "source_position"} <= without
    assert not without & {"event_time", "campaign_id", "user_id", "ingest_time", "extras"}
    for i in range(metadata.num_columns):
        column = metadata.column(i)
        # Statistics only where the table keeps them (TableSpec.statistics).
        assert column.is_stats_set == (column.path_in_schema not in without), column.path_in_schema
        if column.path_in_schema in spec.few_values:
            assert "RLE_DICTIONARY" in column.encodings
    assert metadata.column(spec.schema.get_field_index("campaign_id")).statistics.min == "cmp-1"
    assert data_file(table, table.metadata, file.url, file.footer) == parquet_file_to_data_file(
        table.io, table.metadata, file.url
    )


def test_each_days_file_holds_the_dictionary_of_its_own_rows(tmp_path: Path) -> None:
    """A batch's rows of one day keep the batch's whole dictionary (a backfill of 730
    days: the names of all its 38,025 segments in every day's file, 480 KB of 515 KB);
    each file's dictionary holds the values of its rows only."""
    segments = [f"impressions/2026-11-10/00/segment-{n:05d}.ndjson" for n in range(3_000)]
    days = [datetime(2026, 11, d, h, tzinfo=UTC) for d in (10, 11) for h in range(3)]
    source = pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 2_999, None, 2_999]), segments)
    rows = pa.table(
        {
            "impression_id": [f"i-{n}" for n in range(6)],
            "event_time": pa.array(days, pa.timestamp("us", tz="UTC")),
            "source_file": source,
        }
    )
    written = list(write_data_files("curated.impressions", rows, str(tmp_path), "b", None))
    read = [pq.read_table(f.url, read_dictionary=["source_file"]) for f in written]
    assert [r.column("source_file").chunk(0).dictionary.to_pylist() for r in read] == [
        segments[:2],
        segments[2_999:],
    ]
    assert [r.column("source_file").to_pylist() for r in read] == [
        [segments[0], segments[1], segments[0]],
        [segments[2_999], None, segments[2_999]],
    ]
    assert all(f.footer is not None and f.footer.size < 20_000 for f in written)


def test_the_writer_encodes_about_a_page_of_rows_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Narrow rows go to the encoders many thousands at a time (Arrow's 1,024 made the
    writer check each page ≈ 30 times); wide ones no more than a page's worth at a time."""
    batches: list[int] = []
    writer = pq.ParquetWriter

    class Recording(writer):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            batches.append(kwargs["write_batch_size"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pq, "ParquetWriter", Recording)
    at = pa.array([datetime(2026, 11, 10, tzinfo=UTC)] * 5000, pa.timestamp("us", tz="UTC"))
    narrow = pa.table({"impression_id": [f"i-{n}" for n in range(5000)], "event_time": at})
    wide = pa.table({"raw": ["x" * 5000] * 5000, "ingest_time": at})
    (ids,) = write_data_files("curated.impressions", narrow, str(tmp_path / "n"), "n", None)
    (raw,) = write_data_files("curated.quarantine", wide, str(tmp_path / "w"), "w", None)
    assert batches[0] >= 16384
    assert batches[1] == 1024
    assert pq.read_table(ids.url).equals(narrow)  # the same rows as ever
    assert pq.read_table(raw.url).column("raw").equals(wide.column("raw"))


def test_a_map_handed_over_with_coded_keys_and_values_reads_back_as_texts(
    tmp_path: Path,
) -> None:
    """Targeting maps come with their keys and values as codes (``runners.batch
    .gather_maps``): the file holds the same map of texts, dictionary-encoded, without an
    Arrow schema that would hand the codes back to a reader."""
    import pyarrow.compute as pc

    from advertisex.lake.tables import _conform
    from advertisex.model.schemas import TABLES

    maps = pa.array(
        [[("age", "18-24"), ("gender", None)], None, [], [("age", "25-34")]],
        pa.map_(pa.string(), pa.string()),
    )
    coded = pa.MapArray.from_arrays(
        maps.offsets,
        pc.dictionary_encode(maps.keys),
        pc.dictionary_encode(maps.items),
        mask=maps.is_null(),
    )
    at = pa.array([datetime(2026, 11, 10, tzinfo=UTC)] * 4, pa.timestamp("us", tz="UTC"))
    rows = pa.table({"auction_id": ["a", "b", "c", "d"], "event_time": at, "ad_targeting": coded})
    schema = TABLES["curated.bid_requests"].schema
    conformed = _conform(rows, pa.schema([schema.field(n) for n in rows.column_names]))
    assert conformed.schema.field("ad_targeting").type == coded.type  # not decoded first
    (file,) = write_data_files("curated.bid_requests", conformed, str(tmp_path), "b", None)
    back = pq.read_table(file.url)
    assert back.schema.field("ad_targeting").type == maps.type
    assert back.column("ad_targeting").to_pylist() == maps.to_pylist()
    metadata = pq.ParquetFile(file.url).metadata.row_group(0)
    encodings = {
        metadata.column(i).path_in_schema: metadata.column(i).encodings
        for i in range(metadata.num_columns)
    }
    assert "RLE_DICTIONARY" in encodings["ad_targeting.key_value.key"]
    assert "RLE_DICTIONARY" in encodings["ad_targeting.key_value.value"]


def test_each_days_file_holds_the_targeting_values_of_its_own_rows(tmp_path: Path) -> None:
    """A piece's targeting maps come with their values coded over the piece's dictionary:
    each day's file holds the values its own maps use, as for the other coded columns."""
    import uuid

    import pyarrow.compute as pc

    texts = [uuid.uuid4().hex for _ in range(3_000)]  # values that zstd cannot shrink
    days = [datetime(2026, 11, d, h, tzinfo=UTC) for d in (10, 11) for h in range(3)]
    values = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2, 2_999, 5, 2_999]), texts)
    maps = pa.MapArray.from_arrays(
        pa.array(range(7), pa.int32()), pc.dictionary_encode(pa.array(["k"] * 6)), values
    )
    rows = pa.table(
        {
            "auction_id": [f"a-{n}" for n in range(6)],
            "event_time": pa.array(days, pa.timestamp("us", tz="UTC")),
            "ad_targeting": maps,
        }
    )
    written = list(write_data_files("curated.bid_requests", rows, str(tmp_path), "b", None))
    read = [pq.read_table(f.url).column("ad_targeting").to_pylist() for f in written]
    assert read == [
        [[("k", texts[0])], [("k", texts[1])], [("k", texts[2])]],
        [[("k", texts[2_999])], [("k", texts[5])], [("k", texts[2_999])]],
    ]
    assert all(f.footer is not None and f.footer.size < 20_000 for f in written)
