"""``advertisex up``: collector and continuous processing together, stopped cleanly."""

from __future__ import annotations

import time
import uuid

import pytest
from collector_helpers import impressions, ndjson, post

import advertisex

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_accepted_event_becomes_queryable_while_up_runs(server_factory) -> None:
    up = server_factory(verb="up", ADVERTISEX_COLLECTOR__SEGMENT_MAX_AGE_SECONDS="0.2")
    marker = f"fresh-{uuid.uuid4().hex[:8]}"
    response = post(
        up.url + "/v1/impressions",
        content=ndjson(impressions(1, marker)),
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200

    ax = advertisex.open(data_dir=up.data_dir)
    sql = f"select count(*) n from curated.impressions where impression_id = '{marker}-0'"
    deadline = time.monotonic() + 60  # arrival is asserted, not speed (see bench/freshness.py)
    found = 0
    while time.monotonic() < deadline and not found:
        try:
            ax.lake.refresh()
            found = ax.query(sql).column("n")[0].as_py()
        except Exception:  # the processor may be creating the tables at this very moment
            found = 0
        time.sleep(0.2)
    assert found == 1, up.log()

    assert up.stop() == 0, up.log()  # SIGTERM: both children stop, the collector seals first
    assert "exited unexpectedly" not in up.log()
    assert "batch" in up.log()  # the follow loop reported its batch
