"""truth.json tells the truth: its counts equal an independent re-reading of the files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from synth_recount import START, Recount, is_bot_agent

from advertisex.errors import UserInputError
from advertisex.synth import FaultConfig, generate

SOURCE_TABLES = {
    "impressions": ["impressions"],
    "clicks": ["clicks", "conversions"],
    "bids": ["bid_requests"],
}


def test_truth_json_is_the_returned_dict(faulty_run: tuple[Path, dict[str, Any]]) -> None:
    out, truth = faulty_run
    text = (out / "truth.json").read_bytes()
    assert orjson.loads(text) == truth
    assert text == orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def test_record_count_is_within_one_percent(faulty_run: tuple[Path, dict[str, Any]]) -> None:
    _, truth = faulty_run
    total = sum(source["records"] for source in truth["sources"].values())
    assert total == truth["ground_truth"]["records_total"]
    assert abs(total - truth["events"]) <= 0.01 * truth["events"]


def test_accounting_invariants_hold(faulty_run: tuple[Path, dict[str, Any]]) -> None:
    _, truth = faulty_run
    for source, tables in SOURCE_TABLES.items():
        summary = truth["sources"][source]
        fed = [truth["tables"][name] for name in tables]
        assert summary["records"] == summary["malformed"] + sum(
            t["unique"] + t["duplicates"] + t["conflicts"] for t in fed
        )
        assert summary["duplicates"] == sum(t["duplicates"] for t in fed)
        assert summary["conflicts"] == sum(t["conflicts"] for t in fed)
    for table in truth["tables"].values():
        assert table["unique_human"] == table["unique"] - table["bots"]
    assert truth["quarantine"] == sum(s["malformed"] for s in truth["sources"].values())


def test_every_fault_kind_is_present(faulty_run: tuple[Path, dict[str, Any]]) -> None:
    _, truth = faulty_run
    for source in ("impressions", "bids"):
        for key in ("malformed", "duplicates", "conflicts"):
            assert truth["sources"][source][key] > 0, (source, key)
    for table in ("impressions", "bid_requests", "clicks"):
        assert truth["tables"][table]["late"] > 0
    assert truth["tables"]["impressions"]["bots"] > 0


def test_source_counts_match_the_files(
    faulty_run: tuple[Path, dict[str, Any]], faulty_recount: Recount
) -> None:
    out, truth = faulty_run
    for source, tables in SOURCE_TABLES.items():
        summary = truth["sources"][source]
        assert faulty_recount.records[source] == summary["records"], source
        assert faulty_recount.malformed[source] == summary["malformed"], source
        assert sum(faulty_recount.tables[t].duplicates for t in tables) == summary["duplicates"]
        assert sum(faulty_recount.tables[t].conflicts for t in tables) == summary["conflicts"]
        listed = sorted(str(p.relative_to(out)) for p in (out / source).iterdir())
        assert summary["files"] == listed
        assert len(listed) == 24 * truth["days"]


def test_table_counts_match_the_files(
    faulty_run: tuple[Path, dict[str, Any]], faulty_recount: Recount
) -> None:
    _, truth = faulty_run
    bot_users = set(truth["ground_truth"]["bot_user_ids"])
    for name, expected in truth["tables"].items():
        table = faulty_recount.tables[name]
        if name == "impressions":
            bots = sum(is_bot_agent(row["user_agent"]) for row in table.rows.values())
        else:
            bots = sum(row["user_id"] in bot_users for row in table.rows.values())
        assert {
            "unique": len(table.rows),
            "unique_human": len(table.rows) - bots,
            "bots": bots,
            "late": table.late,
            "duplicates": table.duplicates,
            "conflicts": table.conflicts,
        } == expected, name


def test_malformed_records_are_distinct_from_everything(faulty_recount: Recount) -> None:
    lines = faulty_recount.malformed_lines
    assert len(set(lines)) == len(lines)
    valid = set(faulty_recount.tables["impressions"].payloads.values())
    assert not valid.intersection(lines)


def test_campaign_days_match_the_files(
    faulty_run: tuple[Path, dict[str, Any]], faulty_recount: Recount
) -> None:
    _, truth = faulty_run
    expected: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"impressions": 0, "clicks": 0, "conversions": 0, "spend": 0, "users": set()}
    )
    for row in faulty_recount.tables["impressions"].rows.values():
        cell = expected[(row["campaign_id"], row["time"].date().isoformat())]
        cell["impressions"] += 1
        cell["spend"] += round(row["cost"] * 1_000_000)
        cell["users"].add(row["user_id"])
    for name in ("clicks", "conversions"):
        for row in faulty_recount.tables[name].rows.values():
            expected[(row["campaign_id"], row["time"].date().isoformat())][name] += 1
    rows = truth["ground_truth"]["campaign_days"]
    assert len(rows) == len(expected)
    for row in rows:
        cell = expected[(row["campaign_id"], row["day"])]
        assert row["impressions"] == cell["impressions"]
        assert row["clicks"] == cell["clicks"]
        assert row["conversions"] == cell["conversions"]
        assert row["users"] == len(cell["users"])
        assert round(row["spend"] * 1_000_000) == cell["spend"]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def snapshot(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    kwargs: dict[str, Any] = {"events": 20_000, "start": START, "faults": FaultConfig.demo()}
    generate(tmp_path / "a", seed=5, **kwargs)
    generate(tmp_path / "b", seed=5, **kwargs)
    generate(tmp_path / "c", seed=6, **kwargs)
    first, again, other = (snapshot(tmp_path / n) for n in "abc")
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith((".avro", ".json")))


def test_every_event_carries_its_own_users_id_and_address() -> None:
    """Impressions and bid requests take their user's id and IPv4 address from the world's
    per-user texts (humans, then the bots after them): each row's are its user's."""
    import numpy as np

    from advertisex.synth.bids import make_bids
    from advertisex.synth.clock import Window
    from advertisex.synth.impressions import make_impressions
    from advertisex.synth.world import build_world

    rng = np.random.default_rng(3)
    window = Window(START, 1)
    world = build_world(rng, window, 1_000)
    impressions = make_impressions(rng, world, window, 20_000, bot_rate=0.05)
    users = impressions["_user"].to_numpy()
    assert (users >= world.n_users).any() and (users < world.n_users).any()  # bots and people
    octets = np.concatenate([world.user_octets, world.bot_octets])
    assert impressions["ip"].to_list() == [".".join(map(str, octets[u])) for u in users]
    n = world.n_users  # bots have an id space of their own, whatever the world's size
    ids = [f"u-{u:07d}" if u < n else f"u-b{u - n:06d}" for u in users]
    assert impressions["user_id"].to_list() == ids
    impressions, bids = make_bids(rng, world, window, impressions, 5_000)
    won = impressions.filter(impressions["auction_id"].is_not_null())
    by_auction = dict(zip(bids["auction_id"].to_list(), bids["user_id"].to_list(), strict=True))
    assert [by_auction[a] for a in won["auction_id"].to_list()] == won["user_id"].to_list()
    assert all(u.startswith("u-") and len(u) == 9 for u in bids["user_id"].to_list())


def test_rerun_into_same_folder_removes_stale_hours(tmp_path: Path) -> None:
    generate(tmp_path, events=2_000, seed=1, start=START, days=2)
    truth = generate(tmp_path, events=2_000, seed=1, start=START, days=1)
    for source in ("impressions", "clicks", "bids"):
        assert len(list((tmp_path / source).iterdir())) == 24
        assert len(truth["sources"][source]["files"]) == 24


def test_zero_events_writes_empty_but_valid_files(tmp_path: Path) -> None:
    truth = generate(tmp_path, events=0, seed=1, start=START, faults=FaultConfig.demo())
    assert truth["ground_truth"]["records_total"] == 0
    assert all(t["unique"] == 0 for t in truth["tables"].values())
    assert (tmp_path / "clicks" / "clicks-20261120-00.csv").read_text().count("\n") == 1


def test_each_traffic_file_is_told_once_it_is_written(tmp_path: Path) -> None:
    told: list[tuple[Path, int]] = []
    truth = generate(
        tmp_path,
        events=2_000,
        seed=1,
        start=START,
        faults=FaultConfig.demo(),
        on_file=lambda path: told.append((path, path.stat().st_size)),
    )
    files = [tmp_path / f for s in truth["sources"].values() for f in s["files"]]
    assert sorted(p for p, _ in told) == sorted(files)  # each once, no dims, no truth.json
    assert all(size == path.stat().st_size for path, size in told)  # whole when told


def test_each_source_is_written_on_a_thread_of_its_own(tmp_path: Path) -> None:
    """Impressions, clicks and bids are written side by side (polars, zlib and the disk work
    outside the GIL), the same bytes as one after the other."""
    import threading

    by_source: dict[str, set[str]] = defaultdict(set)
    generate(
        tmp_path,
        events=2_000,
        seed=1,
        start=START,
        faults=FaultConfig.demo(),
        on_file=lambda path: by_source[path.parent.name].add(threading.current_thread().name),
    )
    threads = [by_source[s] for s in ("impressions", "clicks", "bids")]
    assert all(len(t) == 1 for t in threads)
    # Impressions on the calling thread, clicks and bids on the pool's. Not necessarily two
    # pool threads: a source this small can be done before the next is handed over, and
    # the pool then reuses its idle thread (it failed a run that way).
    assert by_source["impressions"] == {threading.current_thread().name}
    assert threading.current_thread().name not in by_source["clicks"] | by_source["bids"]


@pytest.mark.parametrize(
    "kwargs",
    [{"events": -1}, {"events": 10, "seed": -3}, {"events": 10, "days": 0}],
)
def test_bad_arguments_say_what_to_do(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"seed": 1, "start": START, **kwargs}
    with pytest.raises(UserInputError) as caught:
        generate(tmp_path, **arguments)
    assert caught.value.hint


def test_unwritable_output_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserInputError, match="cannot write"):
        generate(blocker / "out", events=10, seed=1, start=START)


def test_a_campaign_launched_after_the_dims_export(tmp_path: Path) -> None:
    import polars as pl

    truth = generate(
        tmp_path, events=5000, seed=3, start=START, faults=FaultConfig(new_campaign=True)
    )
    exported = pl.read_csv(tmp_path / "dims" / "campaigns.csv")
    added = pl.read_csv(tmp_path / "dims" / "campaigns-new.csv")
    assert "cmp-021" not in exported["campaign_id"].to_list() and exported.height == 20
    assert added["campaign_id"].to_list() == ["cmp-021"]
    landed = pl.concat(
        [pl.read_ndjson(f) for f in sorted((tmp_path / "impressions").glob("*.ndjson"))],
        how="diagonal_relaxed",
    )
    launched = truth["ground_truth"]["new_campaign"]
    assert launched["campaign_id"] == "cmp-021" and launched["records"]["impressions"] > 0
    assert (landed["campaign_id"] == "cmp-021").sum() == launched["records"]["impressions"]
    # Without the fault: the same run has no such campaign, and no stale file is left.
    truth = generate(tmp_path, events=5000, seed=3, start=START)
    assert truth["ground_truth"]["new_campaign"] is None
    assert not (tmp_path / "dims" / "campaigns-new.csv").exists()
