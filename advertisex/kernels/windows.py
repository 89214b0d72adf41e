"""Attribution windows: the global defaults and the per-campaign overrides the kernels use.

Kernels see windows as microseconds: a small Arrow table ``campaign_id`` →
``click_us``, ``idh_us`` (impression-id horizon), ``ct_us`` (click-through), ``vt_us``
(view-through), joined to each event by its campaign, with the defaults filling gaps.

>>> w = Windows()
>>> w.click_us, w.view_through_us
(3600000000, 86400000000)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pyarrow as pa

_S = 1_000_000
# Column of a campaign dimension file → Windows field it overrides (seconds).
OVERRIDE_COLUMNS = {
    "click_window_seconds": "click_us",
    "impression_id_horizon_seconds": "impression_id_us",
    "click_through_window_seconds": "click_through_us",
    "view_through_window_seconds": "view_through_us",
}
# Column names in the kernels' per-campaign table, in OVERRIDE_COLUMNS order.
KERNEL_COLUMNS = {"click_us": "click_us", "impression_id_us": "idh_us"}
KERNEL_COLUMNS |= {"click_through_us": "ct_us", "view_through_us": "vt_us"}
CAMPAIGN_WINDOWS = pa.schema(
    [pa.field("campaign_id", pa.string())]
    + [pa.field(c, pa.int64()) for c in KERNEL_COLUMNS.values()]
)


@dataclass(frozen=True)
class Windows:
    """Default windows in microseconds (all inclusive: ``[t - window, t]``)."""

    click_us: int = 3600 * _S
    impression_id_us: int = 86400 * _S
    click_through_us: int = 7 * 86400 * _S
    view_through_us: int = 86400 * _S
    auction_us: int = 3600 * _S

    @classmethod
    def from_seconds(cls, **seconds: int) -> Windows:
        """``Windows.from_seconds(click=60)``: keyword names without the ``_us`` suffix."""
        return cls(**{f"{name}_us": int(value) * _S for name, value in seconds.items()})

    def params(self) -> dict[str, int]:
        """SQL parameters ``$click_us`` … as the kernels name them."""
        return {KERNEL_COLUMNS[f]: getattr(self, f) for f in KERNEL_COLUMNS} | {
            "auction_us": self.auction_us
        }


def campaign_table(overrides: pa.Table | None) -> pa.Table:
    """Per-campaign windows from a dimension table with any OVERRIDE_COLUMNS (seconds).

    Campaigns without an override column get nulls there (the default applies).
    """
    if overrides is None or overrides.num_rows == 0 or "campaign_id" not in overrides.column_names:
        return CAMPAIGN_WINDOWS.empty_table()
    import pyarrow.compute as pc

    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "campaign_id": overrides.column("campaign_id").cast(pa.string())
    }
    for source, field in OVERRIDE_COLUMNS.items():
        name = KERNEL_COLUMNS[field]
        if source in overrides.column_names:
            seconds = overrides.column(source).cast(pa.float64())
            columns[name] = pc.cast(pc.round(pc.multiply(seconds, float(_S))), pa.int64())
        else:
            columns[name] = pa.nulls(overrides.num_rows, pa.int64())
    return pa.table(columns, schema=CAMPAIGN_WINDOWS)


def widest(windows: Windows, campaigns: pa.Table) -> Windows:
    """The largest window of each kind over defaults and overrides (bounds what to re-read)."""
    import pyarrow.compute as pc

    wider = {}
    for field, column in KERNEL_COLUMNS.items():
        top = pc.max(campaigns.column(column)).as_py() if campaigns.num_rows else None
        wider[field] = max(getattr(windows, field), top or 0)
    return replace(windows, **wider)


# Bumped when a matching rule itself changes (2: a conversion's click_ref matches first),
# so marts built under the old rules are rebuilt once.
RULES_VERSION = 2


def fingerprint(windows: Windows, campaigns: pa.Table) -> str:
    """Changes whenever any rule input changes; marts built under another one are rebuilt."""
    rows = sorted(campaigns.to_pylist(), key=lambda r: str(r["campaign_id"]))
    text = repr((RULES_VERSION, windows, rows))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
