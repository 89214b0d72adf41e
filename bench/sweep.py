"""Every CLI option and every numeric setting fed values past what it holds: what comes back.

Walks the app's leaf commands (as ``tests/cli/test_no_traceback.py`` does, so a new verb or
option is swept too) and the settings' numbers (``advertisex.config.Settings``), and runs
each command with each option, or a verb that reads each setting with it, set to each of a
list of hostile values: negative, zero, NaN, infinities, 1e308, integers past 64 bits,
the calendar's ends, impossible dates, empty, blank and 5,000-character texts, path
climbs, SQL and format strings. A small lake (2,000 generated events, ingested and
processed) is there to reach past "there is no lake". Prints every invocation that ended in a
traceback or the catch-all's "this is a bug" line, exited with a code other than 0, 1, 2
or 130, failed without an ``error:`` line, or printed Click's usage panel (BAD, with its
stderr's end), and every one that ran longer than ``--hang-seconds`` without finishing
(HUNG: a server or loop the values let start — not a fault in itself, listed to be looked
at).

Each invocation runs in this process's own interpreter, one after the other in a driver
process (``--driver``) that is started again after a hang; generated files go to a
temporary folder, the working directory included.

With ``--records`` the values go into the records instead: every field of each source's
contract (``advertisex.model.contracts``: impressions as NDJSON, bids as JSON lines,
clicks and conversions as CSV) set to each value — as JSON of every type and as raw
number tokens past what a double holds — one record per field and value beside a
generated day of traffic; then ``ingest``, ``process`` (every source's accounting must
balance), every report, ``monitor --once``, ``maintain``, ``report refresh`` and
``forget`` of a user, each checked as above.

    python bench/sweep.py [--only "report campaigns" --only ingest] [--no-settings]
    python bench/sweep.py --records
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.cli_verbs
from _args import positive_seconds

from advertisex.util.jsonutil import dumps_str, loads
from tests.cli_verbs import arguments, leaf_commands

HERE = Path(__file__).resolve().parent
BUG = "this is a bug in advertisex"

VALUES = [
    "-1", "0", "nan", "inf", "-inf", "1e308", "99999999999999999999",
    "-99999999999999999999", "0.0000001", "0000-01-01", "9999-12-31", "10000-01-01",
    "2026-02-30", "2026-11-20T25:00", "", " ", "x" * 5000, "../../../../etc/passwd",
    "'; drop table x; --", "%s%n{0}", "\u202e?", "-", "--", "1,2", "@", "*",
]  # fmt: skip
SETTING_VALUES = ["-1", "0", "nan", "inf", "1e308", "99999999999999999999"]
# A verb that reads each settings section, run with its setting set to each value.
SECTION_VERBS = {
    "PROCESSOR": ["replay", "--from", "2020-01-01"],
    "CORRELATION": ["replay", "--from", "2020-01-01"],
    "MONITOR": ["monitor", "--once"],
    "MAINTENANCE": ["maintain"],
    "CONSOLE": ["query", "select 1"],
}


def leaf_options() -> list[tuple[tuple[str, ...], str]]:
    """(verb, option) of every leaf command's options and arguments but flags and
    ``--format`` (a choice: parsing refuses what is not one)."""
    found = []
    for verb, command in leaf_commands():
        for param in command.params:
            if param.param_type_name == "option" and (param.is_flag or "--format" in param.opts):
                continue
            name = param.opts[0] if param.param_type_name == "option" else f"ARG:{param.name}"
            found.append((verb, name))
    return found


def numeric_settings() -> list[str]:
    """The environment variable of every int or float setting, nested sections walked."""
    import typing

    from pydantic import BaseModel

    from advertisex.config import Settings

    found = []

    def walk(model: type[BaseModel], prefix: list[str]) -> None:
        for name, info in model.model_fields.items():
            kinds = [a for a in typing.get_args(info.annotation) or (info.annotation,) if a]
            kind = next((a for a in kinds if a is not type(None)), info.annotation)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, [*prefix, name])
            elif kind in (int, float):
                found.append("ADVERTISEX_" + "__".join(p.upper() for p in [*prefix, name]))

    walk(Settings, [])
    return found


def with_value(base: list[str], option: str, value: str) -> list[str]:
    """``base`` arguments with ``option`` (or the first positional argument) set to ``value``."""
    args = list(base)
    if option.startswith("ARG:"):
        positional = [
            i
            for i, a in enumerate(args)
            if not a.startswith("-") and (i == 0 or not args[i - 1].startswith("-"))
        ]
        if positional:
            args[positional[0]] = value
        else:
            args.append(value)
    elif option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


def invocations(work: Path, only: set[str], settings: bool, port: str) -> list[dict[str, Any]]:
    """Every (argv, environment) to run; ``port``: one taken, for the servers' base arguments."""
    todo: list[dict[str, Any]] = []
    for verb, option in leaf_options():
        if only and " ".join(verb) not in only:
            continue
        for value in VALUES:
            argv = [*verb, *with_value(arguments(verb, work, int(port)), option, value)]
            todo.append({"argv": argv, "env": {}})
    if settings and not only:
        for variable in numeric_settings():
            verb = SECTION_VERBS.get(variable.split("__")[0].removeprefix("ADVERTISEX_"))
            if verb is not None:
                todo += [{"argv": verb, "env": {variable: v}} for v in SETTING_VALUES]
    return todo


def drive() -> None:
    """The driver: runs the invocations on stdin from ``SWEEP_FROM`` to ``SWEEP_TO``, saying
    START and END of each (and BAD with what it printed)."""
    from advertisex.cli.app import main

    todo = loads(sys.stdin.read())
    ours = {k for k in os.environ if k.startswith("ADVERTISEX_")}
    first, last = int(os.environ["SWEEP_FROM"]), int(os.environ["SWEEP_TO"])
    for i, item in enumerate(todo[first:last], first):
        print(f"START {i}", flush=True)
        for name in [k for k in os.environ if k.startswith("ADVERTISEX_") and k not in ours]:
            del os.environ[name]
        os.environ.update(item["env"])
        sys.argv = ["advertisex", *item["argv"]]
        out, err, code = io.StringIO(), io.StringIO(), 0
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException as escaped:  # what the CLI let through is the finding
            code = -1
            err.write(f"escaped the CLI: {type(escaped).__name__}: {escaped}")
        said = err.getvalue()
        bad = (
            "Traceback" in said
            or BUG in said
            or code not in (0, 1, 2, 130)
            or (code != 0 and not any(w in said for w in ("error:", "interrupted")))
            or "Usage:" in said  # Click's boxed panel, not the project's error line
        )
        print(f"END {i} {code}", flush=True)
        if bad:
            print("BAD " + dumps_str({"i": i, "code": code, "stderr": said[-1500:]}), flush=True)


def sweep(todo: list[dict[str, Any]], env: dict[str, str], cwd: Path, hang: float) -> None:
    bad: list[dict[str, Any]] = []
    hung: list[int] = []
    started = time.perf_counter()
    at = 0
    while at < len(todo):
        # A verb's invocations in one driver; a server's each in its own (one that served
        # on, or left its handlers behind, must not be blamed on the next).
        end = at + 1
        while end < len(todo) and _group(todo[end]) == _group(todo[at]) is not None:
            end += 1
        driver = subprocess.Popen(
            [sys.executable, __file__, "--driver"],
            cwd=cwd,
            env={**env, "SWEEP_FROM": str(at), "SWEEP_TO": str(end)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert driver.stdin is not None and driver.stdout is not None
        driver.stdin.write(dumps_str(todo))
        driver.stdin.close()
        waiting = selectors.DefaultSelector()
        waiting.register(driver.stdout, selectors.EVENT_READ)
        current, last = at, time.monotonic()
        while True:
            if not waiting.select(timeout=1):
                if time.monotonic() - last > hang:  # this one runs on: the next driver goes on
                    hung.append(current)
                    print(f"HUNG {' '.join(todo[current]['argv'])[:160]}", flush=True)
                    driver.kill()
                    driver.wait()
                    at = current + 1
                    break
                continue
            line = driver.stdout.readline()
            if not line:  # the driver ended: its items done, or it died (counted as BAD)
                driver.wait()
                if driver.returncode:
                    bad.append({"i": current, "code": driver.returncode, "stderr": "driver died"})
                    print(f"BAD  the driver died in {' '.join(todo[current]['argv'])[:160]}")
                at = max(end, current + 1)
                break
            last = time.monotonic()
            if line.startswith("START"):
                current = int(line.split()[1])
            elif line.startswith("BAD"):
                found = loads(line[4:])
                bad.append(found)
                item = todo[found["i"]]
                shown = " ".join(a if len(a) < 60 else f"{a[:20]}…({len(a)})" for a in item["argv"])
                print(f"BAD  {shown} {item['env'] or ''} → exit {found['code']}", flush=True)
                print("     " + found["stderr"].strip()[-600:].replace("\n", "\n     "), flush=True)
    seconds = time.perf_counter() - started
    print(
        f"\n{len(todo):,} invocations in {seconds:.0f} s: {len(bad)} BAD, {len(hung)} HUNG "
        "(a server or loop the values let start)"
    )


# What a JSON field is set to in --records (besides VALUES' texts): every JSON type, and
# numbers at and past the ends of a double and of 64 bits.
JSON_VALUES: list[Any] = [
    1e308, -1e308, -0.0, 0, -1, 2**63, 1.5, 5e-324, True, False, None, [], {},
    {"a": {"b": [1, 2]}}, 253402300800, -62135596801, "\u0000", "NaN", "Infinity",
    "2026-12-05T00:14:18.188+99:00",
]  # fmt: skip
RAW_NUMBERS = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "1" * 400,
    str(10**25),
    str(2**64),
    str(-(2**64)),
    "[" * 5000 + "]" * 5000,
    "01",
]  # fmt: skip  (as written, not through the encoder: past 64 bits or not JSON at all)


def hostile_records(gen: Path, out: Path) -> tuple[list[tuple[str, Path]], str]:
    """(source, file) of records with each contract field set to each hostile value, one
    record per field and value, built from the generated set's first record of each kind;
    and the user of those records (one to forget)."""
    import csv
    import io

    from advertisex.model.contracts import BID_FIELDS, CLICK_FIELDS, IMPRESSION_FIELDS

    impression = loads(next(f for f in sorted((gen / "impressions").iterdir())).read_bytes()
                       .split(b"\n", 1)[0])  # fmt: skip
    rows = [r for f in sorted((gen / "clicks").iterdir()) for r in csv.DictReader(f.open())]
    click = next(r for r in rows if r["event_type"] == "click")
    conversion = next(
        (r for r in rows if r["event_type"] == "conversion"),
        {**click, "event_type": "conversion", "conversion_type": "purchase",
         "conversion_value": "10.0", "currency": "USD"},
    )  # fmt: skip
    bid = {
        "auction_id": "a-0", "timestamp": impression["timestamp"],
        "user_id": impression["user_id"], "exchange": "x", "site_domain": "news.example",
        "device_type": "mobile", "country": "US", "floor_price": 0.5, "ad_targeting": {},
        "bid_price": 1.2, "campaign_id": impression["campaign_id"],
        "ad_creative_id": impression["ad_creative_id"],
    }  # fmt: skip
    texts = [v for v in VALUES if len(v) < 1000] + ["x" * 100_000]

    def json_lines(base: dict[str, Any], fields: tuple[str, ...], key: str) -> str:
        lines = []
        for field in fields:
            for k, value in enumerate([*JSON_VALUES, *texts, *RAW_NUMBERS]):
                record = {**base, key: f"{key}-{field}-{k}"}
                raw = k >= len(JSON_VALUES) + len(texts)
                record[field] = "@RAW@" if raw else value
                line = dumps_str(record)
                lines.append(line.replace('"@RAW@"', value) if raw else line)
        return "\n".join(lines) + "\n"

    files = []
    for source, base, fields, key, name in (
        ("impressions", impression, IMPRESSION_FIELDS, "impression_id", "impressions.ndjson"),
        ("bids", bid, BID_FIELDS, "auction_id", "bids.json"),
    ):
        (out / name).write_text(json_lines(base, fields, key))
        files.append((source, out / name))
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(click))
    writer.writeheader()
    for base in (click, conversion):
        for field in [f for f in CLICK_FIELDS if f in base]:
            for k, value in enumerate(texts):
                writer.writerow(
                    {**base, field: value, "event_id": f"e-{base['event_type']}-{field}-{k}"}
                )
    (out / "clicks.csv").write_text(table.getvalue())
    files.append(("clicks", out / "clicks.csv"))
    return files, impression["user_id"]


def sweep_records(work: Path, env: dict[str, str]) -> None:
    """--records: hostile records through ingest, process and every verb after them."""
    cli = [sys.executable, "-m", "advertisex.cli.app"]
    out = work / "records"
    out.mkdir()
    bad = 0

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        nonlocal bad
        done = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, cwd=work)
        wrong = (
            "Traceback" in done.stderr
            or BUG in done.stderr
            or done.returncode not in (0, 2)
            or (done.returncode and "error:" not in done.stderr)
        )
        bad += wrong
        print(f"{'BAD ' if wrong else 'ok  '} {' '.join(args)[:90]} → exit {done.returncode}")
        if wrong:
            print("     " + done.stderr.strip()[-800:].replace("\n", "\n     "))
        return done

    gen = work / "events"
    files, user = hostile_records(gen, out)
    for source, path in files:
        run("ingest", str(path), "--source", source)
    done = run("process", "--format", "json")
    if done.returncode == 0:
        for account in loads(done.stdout)["sources"]:
            balanced = account["balanced"]
            bad += not balanced
            print(f"     {account['source']:<12} {account['records_in']:>6,} in: "
                  f"{account['accepted']:,} accepted, {account['quarantined']:,} quarantined, "
                  f"{account['duplicates']:,} duplicates — {'balanced' if balanced else 'NOT BALANCED'}")  # fmt: skip
    for verb in (
        ["report", "campaigns"], ["report", "hourly"], ["report", "bids"], ["report", "funnel"],
        ["report", "users"], ["monitor", "--once"], ["quarantine", "list"],
        ["quarantine", "show", "--limit", "5"], ["status"], ["maintain"], ["report", "refresh"],
        ["forget", "--user-id", user], ["process"],
    ):  # fmt: skip
        run(*verb)
    print(f"\n{len(files)} files of hostile records: {bad} BAD")


SERVERS = {"serve", "up", "console"}


def _group(item: dict[str, Any]) -> str | None:
    """Invocations of one group run in one driver: a verb's (settings by their variable's
    section), a server's each alone (None)."""
    verb = item["argv"][0]
    if verb in SERVERS:
        return None
    return verb if not item["env"] else next(iter(item["env"])).split("__")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", default=[], help='a verb, e.g. "report bids"')
    parser.add_argument("--no-settings", action="store_true", help="options only")
    parser.add_argument("--hang-seconds", type=positive_seconds, default=8.0)
    parser.add_argument("--records", action="store_true", help="hostile values in the records")
    args = parser.parse_args()
    if args.driver:
        drive()
        return
    work = Path(tempfile.mkdtemp(prefix="adx-sweep-"))
    try:
        env = {
            **os.environ,
            "ADVERTISEX_DATA_DIR": str(work / "data"),
            "COLUMNS": "200",
            "PYTHONPATH": str(HERE.parent),
        }
        cli = [sys.executable, "-m", "advertisex.cli.app"]
        events = ["generate", "--out", str(work / "events"), "--events", "2000", "--seed", "1"]
        for verb in (events, ["ingest", str(work / "events")], ["process"]):
            subprocess.run([*cli, *verb], env=env, capture_output=True, check=True)
        (work / "campaigns.csv").write_text("campaign_id,budget\ncmp-1,100\n")
        (work / "drop.ndjson").write_text(
            '{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"cr-1","user_id":"u-1"}\n'
        )
        if args.records:
            sweep_records(work, env)
            return
        # Servers given a port taken here fail at once instead of serving on.
        with socket.create_server(("127.0.0.1", 0)) as taken:
            port = str(taken.getsockname()[1])
            todo = invocations(work, set(args.only), not args.no_settings, port)
            print(f"{len(todo):,} invocations", flush=True)
            cwd = work / "cwd"  # what a relative or empty path writes lands here
            cwd.mkdir()
            sweep(todo, env, cwd, args.hang_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
