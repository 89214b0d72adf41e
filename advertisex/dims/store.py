"""The dimension tables in the lake: load a file as new versions, list, snapshot for kernels.

Dimension tables are small, so a change rewrites the table in one copy-on-write
overwrite (one Iceberg commit, no delete files: the query engine keeps reading plain
data files). Unchanged loads commit nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from advertisex.dims.model import Dimensions
from advertisex.dims.read import read_dim_file
from advertisex.dims.scd import as_of, merge
from advertisex.errors import CommitConflictError
from advertisex.model.dims import KINDS
from advertisex.util.timeutil import utcnow

if TYPE_CHECKING:
    from advertisex.lake.tables import Lake


@dataclass
class LoadReport:
    """What one ``dims load`` did."""

    path: str
    kind: str
    format: str
    rows: int
    added: int
    changed: int
    unchanged: int
    effective_from: datetime
    versions: int  # versions kept in the table after the load
    ignored_columns: list[str] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        return self.added == 0 and self.changed == 0


def versions(lake: Lake, kind: str) -> pa.Table:
    """Every version of ``kind`` (campaigns or creatives) kept so far."""
    spec = KINDS[kind]
    return lake.read(spec.table).select(spec.schema.names).cast(spec.schema)


def load_file(
    lake: Lake,
    path: Path,
    kind: str | None = None,
    effective_from: datetime | None = None,
    now: datetime | None = None,
) -> LoadReport:
    """Load a campaigns or creatives file; changed rows become new versions from ``effective_from``."""
    parsed = read_dim_file(path, kind)
    spec = parsed.kind
    lake.refresh()  # merge into the versions as they are now, not as this process last saw them
    loaded_at = now or utcnow()
    effective = effective_from or loaded_at
    before = versions(lake, spec.kind)
    result = merge(
        spec,
        before,
        parsed.rows,
        effective_from=effective,
        loaded_at=loaded_at,
        source_file=path.name,
    )
    if not result.is_noop:
        _overwrite(lake, spec.table, result.versions, path.name)
    return LoadReport(
        str(path),
        spec.kind,
        parsed.format,
        len(parsed.rows),
        result.added,
        result.changed,
        result.unchanged,
        effective,
        result.versions.num_rows,
        parsed.ignored,
    )


def _overwrite(lake: Lake, name: str, data: pa.Table, source: str) -> None:
    from pyiceberg.exceptions import CommitFailedException

    table = lake.table(name)
    properties = {"advertisex.dims-file": source}
    try:
        if table.current_snapshot() is None:
            table.append(data, snapshot_properties=properties)
        else:
            table.overwrite(data, snapshot_properties=properties)
    except CommitFailedException as error:
        raise CommitConflictError(
            f"{name} was changed by another load while this one ran",
            hint="run the load again; it applies on top of the other one",
        ) from error
    finally:
        lake.refresh()


def listing(lake: Lake, kind: str, when: datetime | None = None, history: bool = False) -> pa.Table:
    """Versions of ``kind``: as of ``when`` (default: current), or all of them (``history``)."""
    spec = KINDS[kind]
    table = versions(lake, kind)
    return table if history else as_of(spec, table, when)


# Snapshots are cached by the tables' metadata locations: a batch only re-reads the
# dimensions when a load has committed since the last one.
_cache: dict[tuple[str, ...], Dimensions] = {}


def snapshot(lake: Lake) -> Dimensions | None:
    """Every version of both kinds as Arrow, for the enrichment kernel; None when none loaded."""
    # Never create the tables here: a lake without dimensions stays without them. Nor the
    # catalog: a new lake's first batch makes it beside its first pieces (Lake.open_beside).
    if not lake.catalog_made():
        return None
    tables = {
        kind: lake.table(spec.table) if lake.catalog.table_exists(spec.table) else None
        for kind, spec in KINDS.items()
    }
    key = (
        str(lake.settings.catalog_uri),
        *(t.metadata_location if t is not None else "" for t in tables.values()),
    )
    cached = _cache.get(key)
    if cached is None:
        loaded = {
            kind: versions(lake, kind)
            if table is not None and table.current_snapshot() is not None
            else None
            for kind, table in tables.items()
        }
        cached = Dimensions(campaigns=loaded["campaigns"], creatives=loaded["creatives"])
        _cache.clear()
        _cache[key] = cached
    return None if cached.empty else cached


def known_ids(lake: Lake) -> dict[str, pa.Array] | None:
    """Distinct known ids per loaded kind (``campaign_id``, ``ad_creative_id``), or None."""
    dims = snapshot(lake)
    return dims.known_ids() if dims is not None else None
