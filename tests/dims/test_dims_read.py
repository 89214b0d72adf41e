"""Reading dimension files: every format, the generator's own files, and bad files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from advertisex.dims.read import read_dim_file
from advertisex.errors import UserInputError

CAMPAIGNS_CSV = (
    "campaign_id,advertiser,campaign_name,budget,currency,start_date,end_date\n"
    "cmp-001,Acme,Acme - Launch,99500.0,USD,2026-11-14,2026-11-29\n"
    "cmp-002,Solace,Solace - Retargeting,20300,EUR,2026-10-27,2026-12-30\n"
)


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_the_generators_dimension_files_load_as_they_are(tmp_path):
    from advertisex.synth.clock import Window
    from advertisex.synth.world import build_world

    world = build_world(np.random.default_rng(7), Window(date(2026, 11, 20), 2), 50)
    world.campaigns.write_csv(tmp_path / "campaigns.csv", line_terminator="\n")
    world.creatives.write_csv(tmp_path / "creatives.csv", line_terminator="\n")
    campaigns = read_dim_file(tmp_path / "campaigns.csv")
    creatives = read_dim_file(tmp_path / "creatives.csv")
    assert campaigns.kind.kind == "campaigns" and creatives.kind.kind == "creatives"
    assert len(campaigns.rows) == world.campaigns.height
    assert len(creatives.rows) == world.creatives.height
    assert isinstance(campaigns.rows[0]["start_date"], date)
    assert campaigns.ignored == [] and creatives.ignored == []


def test_csv_with_bom_semicolons_crlf_and_attribution_windows(tmp_path):
    text = (
        "\ufeffCampaign_ID;Advertiser;Budget;Start_Date;Click_Window_Seconds;notes\r\n"
        "cmp-1;Acme;1000;2026-11-01T00:00:00Z;1800;hello\r\n"
    )
    parsed = read_dim_file(_write(tmp_path, "c.csv", text))
    assert parsed.rows == [
        {
            "campaign_id": "cmp-1",
            "advertiser": "Acme",
            "budget": 1000.0,
            "start_date": date(2026, 11, 1),
            "click_window_seconds": 1800,
        }
    ]
    assert parsed.ignored == ["notes"]


def test_json_array_ndjson_and_parquet_read_alike(tmp_path):
    rows = [
        {"ad_creative_id": "cr-1", "campaign_id": "cmp-1", "format": "video", "size": "640x360"},
        {"ad_creative_id": "cr-2", "campaign_id": "cmp-1", "format": "banner", "size": None},
    ]
    import json

    array = read_dim_file(_write(tmp_path, "a.json", json.dumps(rows)))
    lines = read_dim_file(_write(tmp_path, "b.ndjson", "\n".join(json.dumps(r) for r in rows)))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    parquet = read_dim_file(tmp_path / "c.parquet")
    assert (array.format, lines.format, parquet.format) == ("json", "json", "parquet")
    assert array.rows == lines.rows == parquet.rows
    assert array.rows[1]["size"] is None


def test_parquet_with_typed_dates_and_numbers(tmp_path):
    table = pa.table(
        {
            "campaign_id": ["cmp-1"],
            "budget": [123.5],
            "start_date": pa.array([date(2026, 1, 2)], pa.date32()),
            "view_through_window_seconds": [86400],
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    parsed = read_dim_file(tmp_path / "typed.parquet")
    assert parsed.rows[0]["start_date"] == date(2026, 1, 2)
    assert parsed.rows[0]["view_through_window_seconds"] == 86400


@pytest.mark.parametrize(
    ("name", "content", "kind", "message"),
    [
        ("x.csv", "name,budget\nA,1\n", None, "no id column"),
        ("x.csv", "name,budget\nA,1\n", "campaigns", "has no campaign_id column"),
        (
            "x.csv",
            CAMPAIGNS_CSV.replace("2026-11-14", "14/11/2026"),
            None,
            "line 2: start_date '14/11/2026' is not a date",
        ),
        ("x.csv", CAMPAIGNS_CSV.replace("99500.0", "lots"), None, "budget 'lots' is not a number"),
        ("x.csv", CAMPAIGNS_CSV.replace("99500.0", "-5"), None, "must be a finite non-negative"),
        # Infinity, and windows past 100 years (seconds given in microseconds, say): the
        # load failed as a bug (no whole number; an integer past 64 bits in the row hash).
        ("x.csv", CAMPAIGNS_CSV.replace("99500.0", "inf"), None, "must be a finite non-negative"),
        (
            "x.csv",
            "campaign_id,click_window_seconds\ncmp-1,100000000000000000000\n",
            None,
            "line 2: click_window_seconds '100000000000000000000' is longer than a window can be",
        ),
        (
            "x.csv",
            "campaign_id,view_through_window_seconds\ncmp-1,inf\n",
            None,
            "must be a non-negative whole number of seconds",
        ),
        ("x.csv", CAMPAIGNS_CSV.replace("cmp-002", "cmp-001"), None, "cmp-001 repeats line 2"),
        ("x.csv", CAMPAIGNS_CSV.replace("cmp-002", ""), None, "line 3: campaign_id is empty"),
        (
            "x.csv",
            CAMPAIGNS_CSV + "cmp-9,too,many,1,USD,2026-01-01,2026-01-02,extra\n",
            None,
            "line 4: 8 fields",
        ),
        ("x.csv", "", None, "holds no rows"),
        ("x.json", '[{"campaign_id": "a"}, 3]', None, "expected a JSON object"),
        ("x.json", '{"campaign_id": "a"}\n{broken\n', None, "line 2: not valid JSON"),
        ("x.parquet", "campaign_id\ncmp\n", None, "is not a Parquet file"),
        ("x.csv", "campaign_id\ncmp\n", "ads", "unknown dimension kind"),
    ],
)
def test_bad_files_say_what_to_fix(tmp_path, name, content, kind, message):
    with pytest.raises(UserInputError) as caught:
        read_dim_file(_write(tmp_path, name, content), kind)
    assert message in str(caught.value)
    assert caught.value.hint


def test_many_problems_are_listed_together(tmp_path):
    rows = "".join(f"cmp-{i},A,N,x{i},USD,2026-01-01,2026-01-02\n" for i in range(9))
    with pytest.raises(UserInputError) as caught:
        read_dim_file(_write(tmp_path, "c.csv", CAMPAIGNS_CSV.splitlines()[0] + "\n" + rows))
    assert "and 4 more" in str(caught.value)


def test_a_missing_file(tmp_path):
    with pytest.raises(UserInputError, match="cannot read"):
        read_dim_file(tmp_path / "nope.csv")


def test_a_column_named_twice_is_refused_not_taken_last(tmp_path):
    """``campaign_id,campaign_id`` loaded the second id, and ``name`` beside
    ``campaign_name`` one of the two, without a word."""
    twice = _write(tmp_path, "twice.csv", "campaign_id,campaign_id\ncmp-1,cmp-2\n")
    with pytest.raises(UserInputError, match="the header names campaign_id twice"):
        read_dim_file(twice)
    for name, content in (
        ("alias.csv", "campaign_id,name,campaign_name\ncmp-1,a,b\n"),
        ("alias.json", '[{"campaign_id": "cmp-1", "name": "a", "Campaign Name": "b"}]'),
    ):
        with pytest.raises(UserInputError, match=r"line [12]: ") as error:
            read_dim_file(_write(tmp_path, name, content))
        assert "campaign_name given under two names" in error.value.message
