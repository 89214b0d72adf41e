"""Slowly changing dimensions, type 2: merge a loaded file into the versions kept so far.

Pure: the versions table and the file's rows in, the new versions table out. Rules:

- a key seen for the first time gets one version valid from the beginning of time
  (events that arrived before their campaign was loaded still find it);
- a key whose attributes changed has its current version closed at ``effective_from``
  and a new version opened there;
- a key whose attributes are unchanged, or that the file does not mention, is left
  alone (a load is an upsert: files may be partial, and nothing is ever deleted);
- a file that leaves out an attribute column keeps that attribute's current value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from advertisex.errors import UserInputError
from advertisex.model.dims import DimKind
from advertisex.util import jsonutil

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MergeResult:
    versions: pa.Table  # every version after the merge, sorted by key and valid_from
    added: int  # keys seen for the first time
    changed: int  # keys that got a new version
    unchanged: int  # keys in the file whose attributes were already current

    @property
    def is_noop(self) -> bool:
        return self.added == 0 and self.changed == 0


def row_hash(spec: DimKind, row: dict[str, Any]) -> str:
    """Fingerprint of a version's attributes (not its key or validity)."""
    values = {name: row.get(name) for name in spec.attributes}
    text = jsonutil.dumps(values, sort_keys=True)
    return hashlib.md5(text, usedforsecurity=False).hexdigest()[:16]


def merge(
    spec: DimKind,
    versions: pa.Table,
    rows: list[dict[str, Any]],
    *,
    effective_from: datetime,
    loaded_at: datetime,
    source_file: str,
) -> MergeResult:
    """Apply a file's ``rows`` (key + provided attributes) to ``versions`` of ``spec``."""
    existing = versions.to_pylist()
    current = {v[spec.key]: v for v in existing if v["valid_to"] is None}
    new_versions: list[dict[str, Any]] = []
    added = changed = unchanged = 0
    too_early: list[str] = []
    for row in rows:
        key = row[spec.key]
        before = current.get(key)
        attributes = {name: (before or {}).get(name) for name in spec.attributes}
        attributes.update({k: v for k, v in row.items() if k != spec.key})
        digest = row_hash(spec, attributes)
        if before is not None and before["row_hash"] == digest:
            unchanged += 1
            continue
        if before is None:
            start = BEGINNING
            added += 1
        else:
            if effective_from <= before["valid_from"]:
                too_early.append(f"{key} (current since {before['valid_from'].isoformat()})")
                continue
            before["valid_to"] = effective_from
            start = effective_from
            changed += 1
        new_versions.append(
            {
                spec.key: key,
                **attributes,
                "row_hash": digest,
                "valid_from": start,
                "valid_to": None,
                "loaded_at": loaded_at,
                "source_file": source_file,
            }
        )
    if too_early:
        raise UserInputError(
            f"--effective-from {effective_from.isoformat()} is not after the current version of "
            + ", ".join(too_early[:5])
            + (f" and {len(too_early) - 5} more" if len(too_early) > 5 else ""),
            hint="a change takes effect after the version it replaces began; "
            "pass a later --effective-from (default: now)",
        )
    merged = existing + new_versions
    merged.sort(key=lambda v: (v[spec.key], v["valid_from"]))
    table = pa.Table.from_pylist(merged, schema=spec.schema)
    return MergeResult(table, added, changed, unchanged)


def as_of(spec: DimKind, versions: pa.Table, when: datetime | None) -> pa.Table:
    """The version of each key true at ``when`` (the current ones when ``when`` is None)."""
    import pyarrow.compute as pc

    if when is None:
        mask = pc.is_null(versions.column("valid_to"))
    else:
        instant = pa.scalar(when, type=versions.schema.field("valid_from").type)
        started = pc.less_equal(versions.column("valid_from"), instant)
        not_ended = pc.or_kleene(
            pc.is_null(versions.column("valid_to")),
            pc.greater(versions.column("valid_to"), instant),
        )
        mask = pc.and_kleene(started, not_ended)
    return versions.filter(mask).sort_by([(spec.key, "ascending")])
