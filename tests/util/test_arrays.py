"""Arrow helpers the kernels share: the labels of the conditions that hold, as SQL lists them."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.util import engine
from advertisex.util.arrays import LABEL_LISTS, labels_where

_CONDITION = st.lists(st.sampled_from([True, False, None]), min_size=5, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    conditions=st.lists(_CONDITION, min_size=1, max_size=6),
    own=st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=5, max_size=5),
)
def test_labels_are_those_the_engine_lists(conditions: list[list[bool | None]], own: list) -> None:
    """The standardize kernels listed each record's reasons in SQL, ``list_filter`` over a
    ``CASE WHEN`` per reason: the Arrow listing gives the same lists, in the same order, a
    null condition holding nowhere, a per-row label (a framing error's code) included."""
    columns = {f"c{j}": pa.array(values, pa.bool_()) for j, values in enumerate(conditions)}
    table = pa.table({**columns, "own": pa.array(own, pa.string())})
    items = ", ".join(
        ["CASE WHEN c0 THEN own END"]
        + [f"CASE WHEN c{j} THEN 'r{j}' END" for j in range(1, len(conditions))]
    )
    expected = engine.run(
        f"SELECT list_filter([{items}], lambda r: r IS NOT NULL) AS reasons FROM t", t=table
    ).column("reasons")
    held = [(columns["c0"], table.column("own"))]
    held += [(columns[f"c{j}"], f"r{j}") for j in range(1, len(conditions))]
    listed = labels_where(held, 5)
    assert listed.type == LABEL_LISTS == expected.type
    assert listed.to_pylist() == expected.to_pylist()
