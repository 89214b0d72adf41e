"""Campaign and creative dimensions, kept as slowly-changing-dimension type 2 tables.

``dims.campaigns`` and ``dims.creatives`` hold every version of every row with its
``valid_from`` / ``valid_to``; events join the version true at their event time.

>>> import advertisex
>>> ax = advertisex.open(data_dir="/tmp/adx")                    # doctest: +SKIP
>>> from advertisex import dims
>>> dims.load_file(ax.lake, Path("dims/campaigns.csv")).added    # doctest: +SKIP
20
>>> dims.known_ids(ax.lake)["campaign_id"][:2]                   # doctest: +SKIP

The tables' schemas live in :mod:`advertisex.model.dims`; imports here are deferred so
that importing the package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from advertisex.dims.model import Dimensions
    from advertisex.dims.store import LoadReport
    from advertisex.lake.tables import Lake


def load_file(lake: Lake, path: Any, **options: Any) -> LoadReport:
    """Load a campaigns or creatives file (see :func:`advertisex.dims.store.load_file`)."""
    from pathlib import Path

    from advertisex.dims import store

    return store.load_file(lake, Path(path), **options)


def snapshot(lake: Lake) -> Dimensions | None:
    """Every dimension version as Arrow, for kernels; None when no dimensions are loaded."""
    from advertisex.dims import store

    return store.snapshot(lake)


def known_ids(lake: Lake) -> dict[str, pa.Array] | None:
    """Known ids per loaded kind, e.g. ``{"campaign_id": <array>, "ad_creative_id": <array>}``.

    A kind never loaded is absent from the dict; None when no dimensions are loaded, so
    validation flags ``unknown_campaign`` / ``unknown_creative`` only once they are.
    """
    from advertisex.dims import store

    return store.known_ids(lake)
