"""``advertisex dims load|list``: a real subprocess for the entry point, the rest in-process."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_load_list_and_errors(tmp_path, cli, run_subprocess):
    data = tmp_path / "data"
    campaigns = tmp_path / "campaigns.csv"
    campaigns.write_text(
        "campaign_id,advertiser,budget,start_date\ncmp-1,Acme,100,2026-11-01\ncmp-2,Bolt,5,2026-11-02\n"
    )
    code, out, err = run_subprocess(data, "dims", "load", str(campaigns), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["added"] == 2

    code, out, err = cli(data, "dims", "load", str(campaigns))
    assert code == 0 and "no change" in err and "campaigns.csv" in out

    changed = tmp_path / "changed.csv"
    changed.write_text("campaign_id,budget\ncmp-1,250\n")
    code, out, _ = cli(
        data, "dims", "load", str(changed), "--effective-from", "2026-11-20", "-f", "json"
    )
    assert json.loads(out)["changed"] == 1

    _, out, _ = cli(data, "dims", "list", "--as-of", "2026-11-10", "--format", "json")
    assert [r["budget"] for r in json.loads(out)] == [100.0, 5.0]
    _, out, _ = cli(data, "dims", "list", "--history", "--format", "csv")
    assert out.count("cmp-1") == 2
    _, out, err = cli(data, "dims", "list", "--kind", "creatives")
    assert out == "" and "no creatives loaded yet" in err  # words, not an empty frame

    bad = tmp_path / "bad.csv"
    bad.write_text("campaign_id,start_date\ncmp-3,31/12/2026\n")
    code, _, err = run_subprocess(data, "dims", "load", str(bad))
    assert code == 2
    assert "line 2: start_date '31/12/2026' is not a date" in err
    assert "Traceback" not in err
    code, _, err = cli(data, "dims", "load", str(campaigns), "--effective-from", "soon")
    assert code == 2 and "is not an ISO-8601 instant" in err
    code, _, err = cli(data, "dims", "list", "--kind", "ads")
    assert code == 2 and "unknown dimension kind" in err
