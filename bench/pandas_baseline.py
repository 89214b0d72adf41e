"""The straightforward pandas implementation of the batch pipeline, for the ratio.

Same input files and the same steps a data engineer would write by hand: parse each
format (pandas read_json / read_csv, fastavro for Avro), normalize timestamps to UTC,
drop rows missing required fields, dedupe by event id, write day-partitioned Parquet.
It does less than AdvertiseX (no quarantine with raw text, no reasons, no atomic
commit, no cross-batch dedupe) — it is the floor of what "hand-assembled" means.

Usage: python bench/pandas_baseline.py INPUT_DIR OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import fastavro
import pandas as pd


def _timestamps(series: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    as_ms = pd.to_datetime(numeric, unit="ms", utc=True, errors="coerce")
    as_text = pd.to_datetime(
        series.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601"
    )
    return as_ms.fillna(as_text)


def _write(df: pd.DataFrame, out: Path, name: str) -> None:
    df = df.assign(event_date=df["event_time"].dt.date.astype(str))
    df.to_parquet(out / name, partition_cols=["event_date"], index=False)


def run(source: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    frames = []
    for f in sorted((source / "impressions").glob("*.ndjson")):
        lines = [line for line in f.read_text().splitlines() if line.strip()]
        total += len(lines)
        good = []
        for line in lines:  # a malformed line must not take its file down
            try:
                good.append(pd.io.json.ujson_loads(line))
            except ValueError:
                pass
        frames.append(pd.DataFrame([g for g in good if isinstance(g, dict)]))
    imps = pd.concat(frames, ignore_index=True)
    imps["event_time"] = _timestamps(imps["timestamp"].astype(str))
    imps = imps.dropna(subset=["event_time", "user_id", "ad_creative_id", "website"])
    imps = imps.drop_duplicates("impression_id")
    _write(imps.drop(columns=["timestamp"]), out, "impressions")

    clicks = []
    for f in sorted((source / "clicks").glob("*.csv")):
        df = pd.read_csv(f, dtype=str, on_bad_lines="skip")
        total += len(df)
        clicks.append(df)
    cl = pd.concat(clicks, ignore_index=True)
    cl["event_time"] = _timestamps(cl["timestamp"])
    cl = cl.dropna(subset=["event_time", "user_id", "campaign_id"]).drop_duplicates("event_id")
    _write(cl[cl.event_type == "click"].drop(columns=["timestamp"]), out, "clicks")
    _write(cl[cl.event_type == "conversion"].drop(columns=["timestamp"]), out, "conversions")

    bids = []
    for f in sorted((source / "bids").glob("*.avro")):
        with open(f, "rb") as handle:
            records = list(fastavro.reader(handle))
        total += len(records)
        bids.append(pd.DataFrame(records))
    bd = pd.concat(bids, ignore_index=True)
    bd["event_time"] = pd.to_datetime(bd["timestamp"], utc=True)
    bd = bd.dropna(subset=["auction_id", "user_id", "event_time"]).drop_duplicates(
        ["exchange", "auction_id"]
    )
    bd["ad_targeting"] = bd["ad_targeting"].map(lambda m: m if isinstance(m, dict) else {})
    _write(bd.drop(columns=["timestamp", "ad_targeting"]), out, "bid_requests")
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", type=Path, help="a folder of impressions/, clicks/, ... files")
    parser.add_argument("output", type=Path, help="where the Parquet tables go")
    args = parser.parse_args()
    started = time.perf_counter()
    n = run(args.input, args.output)
    print(f"pandas {n} records {time.perf_counter() - started:.2f} s")
