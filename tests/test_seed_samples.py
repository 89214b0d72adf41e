"""The AWS reference's own sample files land with every one of their 300 records accounted for."""

import pytest

pytestmark = pytest.mark.integration


def test_seed_samples_land_exactly_as_the_readme_says(ax, seed_samples):
    results = ax.ingest([str(seed_samples)])
    landed = {r.source for r in results if r.status == "landed"}
    assert landed == {"impressions", "clicks", "bids"}
    report = ax.process()
    accounts = report.accounts
    assert accounts["impressions"].records_in == 100 and accounts["impressions"].accepted == 100
    assert accounts["clicks"].records_in == 100 and accounts["clicks"].accepted == 100
    assert accounts["bids"].records_in == 100
    assert (accounts["bids"].accepted, accounts["bids"].duplicates) == (44, 56)
    assert sum(a.records_in for a in accounts.values()) == 300
    assert all(a.balanced for a in accounts.values())

    counts = ax.query(
        "select (select count(*) from curated.impressions) i, (select count(*) from curated.clicks) c,"
        " (select count(*) from curated.conversions) v, (select count(*) from curated.bid_requests) b,"
        " (select count(*) from curated.quarantine) q"
    ).to_pylist()[0]
    assert counts == {"i": 100, "c": 50, "v": 50, "b": 44, "q": 0}
    ids = ax.query(
        "select count(distinct impression_id) n, min(impression_id) m from curated.impressions"
    )
    assert ids.column("n")[0].as_py() == 100 and ids.column("m")[0].as_py().startswith("fp-")
    batches = ax.query("select sum(records_in) n from ops.batches").column("n")[0].as_py()
    assert batches == 300

    # Running again, and ingesting again, changes nothing.
    assert all(r.status in ("already", "skipped") for r in ax.ingest([str(seed_samples)]))
    assert ax.process().records_in == 0
    assert ax.query("select count(*) n from curated.bid_requests").column("n")[0].as_py() == 44
