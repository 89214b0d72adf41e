"""Dimensions in the lake: loads, no-op reloads, history, and events joined as of their time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from advertisex import dims
from advertisex.dims import store

pytestmark = pytest.mark.integration

CAMPAIGNS = (
    "campaign_id,advertiser,campaign_name,budget,currency,start_date,end_date\n"
    "cmp-001,Acme,Acme - Launch,1000,USD,2026-11-01,2026-12-31\n"
    "cmp-002,Bolt,Bolt - Always on,2000,EUR,2026-11-01,2026-12-31\n"
)
CREATIVES = "ad_creative_id,campaign_id,format,size\ncr-1,cmp-001,banner,300x250\n"
CHANGE = datetime(2026, 11, 20, tzinfo=UTC)
BEFORE = "2026-11-19T10:00:00Z"
AFTER = "2026-11-21T10:00:00Z"


def test_load_reload_change_and_join_as_of_event_time(tmp_path, open_lake):
    ax = open_lake(tmp_path / "data")
    lake = ax.lake
    assert dims.known_ids(lake) is None
    (tmp_path / "campaigns.csv").write_text(CAMPAIGNS)
    (tmp_path / "creatives.csv").write_text(CREATIVES)

    first = dims.load_file(lake, tmp_path / "campaigns.csv")
    assert (first.kind, first.added, first.is_noop) == ("campaigns", 2, False)
    snapshots = len(list(lake.snapshots("dims.campaigns")))
    again = dims.load_file(lake, tmp_path / "campaigns.csv")
    assert again.is_noop and again.unchanged == 2
    assert len(list(lake.snapshots("dims.campaigns"))) == snapshots  # nothing committed

    known = dims.known_ids(lake)
    assert known is not None and set(known) == {"campaign_id"}
    assert known["campaign_id"].to_pylist() == ["cmp-001", "cmp-002"]

    dims.load_file(lake, tmp_path / "creatives.csv")
    # cr-1 moves to cmp-002 and Acme is renamed, both from CHANGE on.
    (tmp_path / "creatives2.csv").write_text(CREATIVES.replace("cr-1,cmp-001", "cr-1,cmp-002"))
    (tmp_path / "campaigns2.json").write_text(
        '[{"campaign_id": "cmp-001", "advertiser": "Acme Group"}]'
    )
    moved = dims.load_file(lake, tmp_path / "creatives2.csv", effective_from=CHANGE)
    renamed = dims.load_file(lake, tmp_path / "campaigns2.json", effective_from=CHANGE)
    assert (moved.changed, renamed.changed, renamed.versions) == (1, 1, 3)
    assert set(dims.known_ids(lake) or {}) == {"campaign_id", "ad_creative_id"}

    history = store.listing(lake, "campaigns", history=True)
    assert history.num_rows == 3
    earlier = store.listing(lake, "campaigns", datetime(2026, 11, 19, tzinfo=UTC)).to_pylist()
    assert [r["advertiser"] for r in earlier] == ["Acme", "Bolt"]
    current = store.listing(lake, "campaigns").to_pylist()
    assert [r["advertiser"] for r in current] == ["Acme Group", "Bolt"]
    assert current[0]["budget"] == 1000.0  # the JSON file left budget out: kept

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "imps.ndjson").write_text(
        "".join(
            f'{{"impression_id":"{i}","timestamp":"{t}","ad_creative_id":"cr-1",'
            f'"user_id":"u","website":"https://www.site.com/p"}}\n'
            for i, t in (("before", BEFORE), ("after", AFTER))
        )
    )
    (drop / "clicks.csv").write_text(
        "event_id,timestamp,user_id,campaign_id,event_type\n"
        f"k1,{BEFORE},u,cmp-001,click\nk2,{AFTER},u,cmp-001,click\n"
    )
    ax.ingest([str(drop)])
    report = ax.runner.process(now=datetime(2026, 11, 22, tzinfo=UTC))
    assert all(a.balanced for a in report.accounts.values())
    impressions = ax.query(
        "select impression_id, campaign_id, advertiser, site_host from curated.impressions "
        "order by impression_id"
    ).to_pylist()
    assert impressions == [
        {
            "impression_id": "after",
            "campaign_id": "cmp-002",
            "advertiser": "Bolt",
            "site_host": "site.com",
        },
        {
            "impression_id": "before",
            "campaign_id": "cmp-001",
            "advertiser": "Acme",
            "site_host": "site.com",
        },
    ]
    clicks = ax.query("select event_id, advertiser from curated.clicks order by 1").to_pylist()
    assert [c["advertiser"] for c in clicks] == ["Acme", "Acme Group"]
    # The dimension tables are plain SQL tables too.
    count = ax.query("select count(*) as n from dims.creatives").to_pylist()
    assert count == [{"n": 2}]
