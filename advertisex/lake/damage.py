"""Data files a table references that its storage lost or damaged, and how to get their
rows back.

A table's metadata names each of its data files, but the storage underneath can still
lose one: an operator's ``rm``, a restore or copy that left files out or cut them short,
a failing disk. Every read of the table then fails on that file — a query, the dedupe
lookups of the next batch, the marts — in the reader's own words (DuckDB's "No files
found", Arrow's "Parquet magic bytes not found"), which said nothing of what happened or
what to do. :func:`explained` turns such a failure into :class:`LakeDamagedError`, which
names the files and the way back:

* a file a batch wrote (its name begins with the batch's id) holds that batch's rows
  only, and the landing zone keeps the batch's segments: ``advertisex replay`` of their
  landing days drops the file without reading it and processes the segments again;
* the marts are computed from the curated tables: ``advertisex report refresh --rebuild``;
* anything else (a compacted file, the ops tables) comes back from a backup of the lake.

A file is damaged when it is missing or its size is not the one its table recorded
(cut short, or written over): a look at each file's size, no data read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from advertisex.errors import AdvertiseXError, CommitConflictError, LakeDamagedError
from advertisex.model.schemas import TABLES

if TYPE_CHECKING:
    from advertisex.config import ScaleSettings
    from advertisex.lake.tables import Lake


@dataclass(frozen=True)
class DamagedFile:
    """A data file of ``table``'s current snapshot that cannot be read whole."""

    table: str
    url: str
    problem: str  # "missing", or its size against the recorded one


# A batch's data files are named ``<batch id>-<16 hex digits>.parquet``, and a batch id
# ends in 12 hex digits of a digest (``runners.runner.batch_id_for``, a quarantine
# replay's ``replay-<time>-<digest>``); compaction's, erasure's and the marts' files begin
# with a word and a time instead.
_BATCH_FILE = re.compile(r"(?P<batch>.+-[0-9a-f]{12})-[0-9a-f]{16}\.parquet")


def batch_of(url: str) -> str | None:
    """The batch whose rows, and only whose rows, the data file at ``url`` holds: the id
    its name begins with (None for a file of compaction, erasure or the marts).

    >>> batch_of("/w/curated/impressions/data/d=1/20261207T030935569857Z-33d078383d6c-d644c072c1e842c3.parquet")
    '20261207T030935569857Z-33d078383d6c'
    >>> batch_of("/w/curated/impressions/data/d=1/compacted-d644c072c1e842c3.parquet") is None
    True
    >>> batch_of("/w/marts/campaign_hourly/data/d=1/marts-20261207T030407-78aed778c87f4a70.parquet") is None
    True
    """
    found = _BATCH_FILE.fullmatch(url.rsplit("/", 1)[-1])
    return found.group("batch") if found else None


def batch_bounds(table: Any, data_file: Any) -> tuple[str, str] | None:
    """The least and greatest ``batch_id`` a data file holds, from its manifest entry (no
    file opened); None where the entry has no whole bounds (a file written before they
    were kept, or a table without the column)."""
    from pyiceberg.conversions import from_bytes

    try:
        field = table.schema().find_field("batch_id")
    except ValueError:
        return None
    lower = (data_file.lower_bounds or {}).get(field.field_id)
    upper = (data_file.upper_bounds or {}).get(field.field_id)
    if lower is None or upper is None:
        return None
    return str(from_bytes(field.field_type, lower)), str(from_bytes(field.field_type, upper))


def known_batches(lake: Lake) -> set[str]:
    """Every batch that wrote rows (``ops.batches``: landing batches and quarantine replays)."""
    rows = lake.read("ops.batches", fields=("batch_id",))
    return {b for b in rows.column("batch_id").to_pylist() if b is not None}


def batches_in(files: Iterable[Any], scale: ScaleSettings | None) -> set[str]:
    """:func:`known_batches` from the data files of ``ops.batches`` (manifest ``DataFile``s)
    a caller listed anyway: a batch's own file holds its rows only, as its name says, and is
    not opened; only the others (compaction's, a quarantine replay's) are read, their
    ``batch_id`` column alone. (The scan read every file: one a batch on an unmaintained
    lake, 0.2–0.6 s of a one-day replay on a month's.)"""
    import pyarrow.parquet as pq

    from advertisex.util import storage

    found: set[str] = set()
    for data_file in files:
        owner = batch_of(data_file.file_path)
        if owner is not None:
            found.add(owner)
            continue
        filesystem, path = storage.resolve(data_file.file_path, scale)
        ids = pq.read_table(path, columns=["batch_id"], filesystem=filesystem)
        found.update(b for b in ids.column("batch_id").to_pylist() if b is not None)
    return found


def within(bounds: tuple[str, str], known: set[str]) -> set[str]:
    """The known batches a file of ``bounds`` may hold rows of.

    >>> sorted(within(("b", "d"), {"a", "b", "c", "d", "e"}))
    ['b', 'c', 'd']
    """
    low, high = bounds
    return {b for b in known if low <= b <= high}


def damaged_files(lake: Lake, names: Iterable[str] | None = None) -> list[DamagedFile]:
    """The damaged files of the current state of ``names`` (default: every table of the
    lake), as the catalog has them now: a metadata file that is gone (the table's, its
    current snapshot's manifest list or a manifest listed there), else its data files.
    Tables not created yet have none."""
    from pyiceberg.exceptions import NoSuchTableError

    from advertisex.lake.history import live_files

    files: list[tuple[str, str, int]] = []
    lost: list[DamagedFile] = []
    for name in names if names is not None else TABLES:
        try:
            table = lake.catalog.load_table(name)  # fresh metadata, and never created here
        except NoSuchTableError:
            continue
        except FileNotFoundError as error:  # the file the catalog points to
            lost.append(DamagedFile(name, _missing_path(error), "missing"))
            continue
        missing = _missing_metadata(table, lake.settings.scale)
        if missing is not None:
            lost.append(DamagedFile(name, missing, "missing"))
            continue
        files.extend((name, f.file_path, f.file_size_in_bytes) for f in live_files(table))
    return lost + damaged_among(files, lake.settings.scale)


def _missing_metadata(table: Any, scale: ScaleSettings | None) -> str | None:
    """The first file of ``table``'s current snapshot's metadata (its manifest list, the
    manifests listed) that is gone, or None."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return None
    listed = [snapshot.manifest_list]
    if not damaged_among([("", snapshot.manifest_list, -1)], scale, sizes=False):
        listed = [m.manifest_path for m in snapshot.manifests(table.io)]
    gone = damaged_among([("", path, -1) for path in listed], scale, sizes=False)
    return gone[0].url if gone else None


def _missing_path(error: FileNotFoundError) -> str:
    """The path a ``FileNotFoundError`` names: Python's own keep it, pyarrow's quote it."""
    if error.filename:
        return str(error.filename)
    quoted = re.search(r"'([^']+)'", str(error))
    return quoted.group(1) if quoted else "its metadata file"


def damaged_among(
    files: Iterable[tuple[str, str, int]], scale: ScaleSettings | None, sizes: bool = True
) -> list[DamagedFile]:
    """Of ``files`` — (table, URL or path, the size its table recorded) — those missing
    or of another size (``sizes``; else missing only): one look-up call for each kind of
    storage (an object store's run in parallel), no data read."""
    from advertisex.util import storage

    by_kind: dict[str, tuple[Any, list[tuple[str, str, int, str]]]] = {}
    for name, url, size in files:
        filesystem, path = storage.resolve(url, scale)
        by_kind.setdefault(filesystem.type_name, (filesystem, []))[1].append(
            (name, url, size, path)
        )
    found = []
    for filesystem, listed in by_kind.values():
        infos = _looked_up(filesystem, listed)
        for info, (name, url, size, _) in zip(infos, listed, strict=True):
            problem = _problem(info, size if sizes else info.size)
            if problem is not None:
                found.append(DamagedFile(name, url, problem))
    return found


# From how many files of a table an object store's listing beats a HEAD request per file:
# a LIST answers up to a thousand objects, and costs what about 12 HEADs do.
LIST_FROM = 13


def _looked_up(filesystem: Any, listed: list[tuple[str, str, int, str]]) -> list[Any]:
    """A FileInfo for each of ``listed``'s paths. On a local disk one ``stat`` each. An
    object store's ``get_file_info`` of paths is a HEAD request per file: the monitor's
    look at every current data file each minute was thousands of requests a minute on a
    lake of a year, so a table with :data:`LIST_FROM` files or more is listed instead —
    its files' common prefix, paged through (a request per thousand objects)."""
    import os.path

    import pyarrow.fs as pafs

    if filesystem.type_name == "local":
        return list(filesystem.get_file_info([path for *_, path in listed]))
    tables: dict[str, list[str]] = {}
    for name, _, _, path in listed:
        tables.setdefault(name, []).append(path)
    known: dict[str, Any] = {}
    for paths in tables.values():
        prefix = os.path.commonpath(paths) if len(paths) >= LIST_FROM else ""
        if "/" not in prefix or prefix in paths:  # too few, or a bucket's whole: one by one
            known.update(zip(paths, filesystem.get_file_info(paths), strict=True))
            continue
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        seen = {info.path: info for info in filesystem.get_file_info(selector)}
        for path in paths:
            known[path] = seen.get(path) or pafs.FileInfo(path, pafs.FileType.NotFound)
    return [known[path] for *_, path in listed]


def _owners(lake: Lake, damaged: DamagedFile, known: Callable[[], set[str]]) -> set[str] | None:
    """The batches whose rows a damaged data file holds, where replaying them rebuilds it:
    the one its name says, or — a compacted file — every batch its ``batch_id`` bounds
    reach (of ``known()``, read once for all the files), when each of them came from the
    landing zone (a quarantine replay's rows did not). None: only a backup brings it back."""
    owner = batch_of(damaged.url)
    if owner is not None:
        return {owner}
    if _metadata(damaged) or damaged.table.startswith("marts."):
        return None
    try:
        from advertisex.lake.history import live_files

        table = lake.catalog.load_table(damaged.table)
        data_file = next(f for f in live_files(table) if f.file_path == damaged.url)
        bounds = batch_bounds(table, data_file)
        if bounds is None:
            return None
        found = within(bounds, known())
        landed = {mark.batch_id for mark in lake.marks_of_batches(found).values()}
        return found if found and found <= landed else None
    except Exception:  # the metadata or ops.batches unreadable too: a backup it is
        return None


def _metadata(damaged: DamagedFile) -> bool:
    return "/metadata/" in damaged.url or not damaged.url.endswith(".parquet")


def _problem(info: Any, recorded: int) -> str | None:
    import pyarrow.fs as pafs

    if info.type == pafs.FileType.NotFound:
        return "missing"
    if info.type != pafs.FileType.File:
        return "not a file"
    if info.size != recorded:
        return f"{info.size:,} bytes where the table recorded {recorded:,}"
    return None


def damage_error(lake: Lake, damaged: list[DamagedFile]) -> LakeDamagedError:
    """What the user is told of ``damaged`` (not empty): which files, and the way back."""
    shown = "; ".join(
        f"{d.table}: {d.url.removeprefix('file://')} ({d.problem})" for d in damaged[:3]
    )
    more = f"; and {len(damaged) - 3} more" if len(damaged) > 3 else ""
    kinds = {"metadata" if _metadata(d) else "data" for d in damaged}
    word = f"{kinds.pop()} file" if len(kinds) == 1 else "file"
    count = f"{len(damaged)} {word}s" if len(damaged) > 1 else f"a {word}"
    return LakeDamagedError(
        f"{count} the lake's tables reference cannot be read (lost or damaged outside "
        f"advertisex): {shown}{more}",
        hint=_way_back(lake, damaged),
    )


def _way_back(lake: Lake, damaged: list[DamagedFile]) -> str:
    from advertisex.landing.zone import landing_day

    ways = []
    known = functools.cache(lambda: known_batches(lake))
    owners = {d.url: _owners(lake, d, known) for d in damaged}
    batches = {b for found in owners.values() if found for b in found}
    if batches:
        days = sorted(
            day
            for day in (landing_day(name) for name in lake.marks_of_batches(batches))
            if day is not None
        )
        if days:
            whose = "its" if len(damaged) == 1 else "their"
            ways.append(
                f"rebuild {whose} rows from the landing zone: "
                f"advertisex replay --from {days[0]:%Y-%m-%d} --to {days[-1]:%Y-%m-%d}"
            )
        else:  # their segments are gone from the ledger: only a backup helps
            owners = dict.fromkeys(owners, None)
    if any(d.table.startswith("marts.") for d in damaged):
        ways.append("recompute the marts: advertisex report refresh --rebuild")
    if any(_metadata(d) for d in damaged):
        # A table's metadata says which files hold its rows: without it no replay knows
        # what to take out, and rows since the last readable version would be lost.
        ways.append(
            "restore the tables' metadata folders from a backup of the lake (Iceberg cannot "
            "read a table whose metadata is gone)"
        )
        damaged = [d for d in damaged if not _metadata(d)]
    if any(not owners[d.url] and not d.table.startswith("marts.") for d in damaged):
        which = "the others" if ways else "it" if len(damaged) == 1 else "them"
        ways.append(f"restore {which} from a backup of the lake")
    return "; ".join(ways)


# Errors a read of a lost or damaged file ends in: the OS's, Arrow's, DuckDB's.
def _is_read_failure(error: BaseException) -> bool:
    import pyarrow as pa

    if isinstance(error, OSError | pa.ArrowInvalid):  # FileNotFoundError is an OSError
        return True
    module = type(error).__module__ or ""
    return module.startswith(("duckdb", "_duckdb")) and type(error).__name__ in (
        "IOException",
        "InvalidInputException",
    )


def _causes(error: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def may_be_damage(error: BaseException) -> bool:
    """Whether a lost or damaged file may be behind ``error`` (without looking at the lake):
    a read failed, and no layer said what went wrong in its own words — but for a lost race,
    which is how a lost file looks to a reader (``lake.tables._files_still_there``)."""
    if isinstance(error, AdvertiseXError) and not isinstance(error, CommitConflictError):
        return False
    return any(_is_read_failure(cause) for cause in _causes(error))


def explained(
    lake: Lake, error: BaseException, names: Iterable[str] | None = None
) -> LakeDamagedError | None:
    """``error`` told as :class:`LakeDamagedError` when a read failure is behind it and a
    table of ``lake`` (of ``names``) has damaged files now; else None (the error is
    something else: a file of a snapshot expired meanwhile, say). Never raises: it runs
    while another error is being reported."""
    if isinstance(error, LakeDamagedError):
        return error
    if not may_be_damage(error):
        return None
    try:
        damaged = damaged_files(lake, names)
        return damage_error(lake, damaged) if damaged else None
    except Exception:  # the metadata itself may be what is gone: say what was said before
        return None
