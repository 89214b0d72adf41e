"""The console's pages and read API over a generated lake, in-process (Starlette TestClient).

Numbers are compared with the CLI's ``--format json`` for the same inputs; quarantined
attacker text must come out escaped; headers, CSRF and replay are checked as a browser
would meet them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import BIDI, BREAKOUT, FUTURE_ID, SCRIPT

pytestmark = pytest.mark.integration

PAGES = ["/", "/campaigns", "/campaigns/cmp-001", "/quarantine", "/alerts", "/sql", "/lake"]
RANGE = "from=2026-11-20&to=2026-11-21"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


@pytest.fixture
def client(lake_template: Path, make_client: Callable[..., Any]) -> Any:
    return make_client(lake_template)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_a_strict_policy_and_no_inline_script(
    client: Any, path: str
) -> None:
    response = client.get(path, headers={"accept": "text/html"})
    assert response.status_code == 200, response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in response.headers
    assert not INLINE_SCRIPT.search(response.text), "an inline <script> is on the page"


def test_quarantined_attacker_text_renders_as_text(client: Any) -> None:
    html = client.get("/quarantine?limit=200").text
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert BIDI in html  # bidi and zero-width characters kept, shown in an isolated block
    assert 'class="raw" dir="ltr"' in html
    records = client.get("/api/v1/quarantine/records?limit=1000").json()
    raws = [r["raw"] for r in records]
    assert SCRIPT in raws and any(BREAKOUT in r for r in raws) and any(BIDI in r for r in raws)


def test_a_long_raw_text_is_cut_on_the_page_and_whole_in_the_api(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any], tmp_path: Path
) -> None:
    import advertisex
    from advertisex.model.reasons import SHOWN_RAW_CHARS

    data = lake_copy()
    runaway = "RUNAWAY" + "r" * 5000  # not JSON
    ax = advertisex.open(data_dir=data)
    ax.landing.write_segment("impressions", runaway.encode() + b"\n", label="runaway")
    ax.process()
    client = make_client(data)
    html = client.get("/quarantine?reason=json_invalid&limit=200").text
    more = len(runaway) - SHOWN_RAW_CHARS
    assert "RUNAWAY" in html and "r" * SHOWN_RAW_CHARS not in html
    assert f"… ({more:,} more characters: GET /api/v1/quarantine/records gives it whole)" in html
    records = client.get("/api/v1/quarantine/records?reason=json_invalid&limit=1000").json()
    assert runaway in [r["raw"] for r in records]


def test_report_numbers_equal_the_cli_json(client: Any, lake_template: Path, cli: Any) -> None:
    for name, extra in (("campaigns", "model=first"), ("funnel", "model=linear"), ("bids", "")):
        api = client.get(f"/api/v1/reports/{name}?{RANGE}&{extra}").json()
        model = extra.split("=")[1] if extra else "last"
        args = ["report", name, "--from", "2026-11-20", "--to", "2026-11-21", "--format", "json"]
        if name != "bids":
            args += ["--model", model]
        code, out, err = cli(lake_template, *args, ADVERTISEX_CORRELATION__UPDATE_MARTS="true")
        assert code == 0, err
        assert api == json.loads(out) and api, name


def test_campaigns_page_shows_the_report_sorted(client: Any) -> None:
    rows = client.get(f"/api/v1/reports/campaigns?{RANGE}").json()
    html = client.get(f"/campaigns?{RANGE}&sort=impressions&dir=desc").text
    table = html.split('id="campaigns"')[1].split("</table>")[0]
    shown = [
        int(v.replace(",", "")) for v in re.findall(r'data-col="impressions"[^>]*>([\d,]+)<', table)
    ]
    assert shown == sorted((r["impressions"] for r in rows), reverse=True)
    assert len(shown) == len(rows) > 0


def test_campaign_page_charts_its_hours(client: Any) -> None:
    hourly = client.get(f"/api/v1/reports/hourly?{RANGE}&campaign=cmp-001").json()
    assert hourly and {r["campaign_id"] for r in hourly} == {"cmp-001"}
    html = client.get(f"/campaigns/cmp-001?{RANGE}").text
    charts = [
        json.loads(c.replace("&#39;", "'")) for c in re.findall(r"data-chart='([^']*)'", html)
    ]
    titles = [c["title"] for c in charts]
    assert titles == ["impressions", "clicks", "conversions", "CTR", "spend"]
    assert charts[0]["series"][0]["values"] == [r["impressions"] for r in hourly]


def test_overview_and_status_agree_with_the_cli(client: Any, lake_template: Path, cli: Any) -> None:
    status = client.get("/api/v1/status").json()
    code, out, err = cli(lake_template, "status", "--format", "json")
    assert code == 0, err
    expected = json.loads(out)
    drop = ("freshness_s",)  # seconds since the last landing: moves between the two calls
    assert [{k: v for k, v in s.items() if k not in drop} for s in status["sources"]] == [
        {k: v for k, v in s.items() if k not in drop} for s in expected["sources"]
    ]
    assert set(status["events_per_minute"]["sources"]) == {"impressions", "clicks", "bids"}
    html = client.get("/").text
    assert '<meta http-equiv="refresh" content="30">' in html


@pytest.mark.slow
def test_query_api_caps_rows_refuses_writes_and_stops_slow_queries(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    # The limit covers opening the lake too: 3 s leaves room for that on a loaded machine,
    # while the slow statement below would run for minutes.
    client = make_client(lake_template, console={"query_timeout_seconds": 3})
    ok = client.post(
        "/api/v1/query",
        json={"sql": "select impression_id from curated.impressions order by 1", "max_rows": 3},
    )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert (
        body["row_count"] == 3
        and body["truncated"] is True
        and body["columns"] == ["impression_id"]
    )
    assert ok.headers["x-truncated"] == "true"
    csv = client.post("/api/v1/query?format=csv", json={"sql": "select 1 as a, '=cmd' as b"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text == "a,b\n1,'=cmd\n"
    named = client.post("/api/v1/query?format=csv", json={"sql": 'select 1 as "=cmd()", 2 as "@x"'})
    assert named.text == "'=cmd(),'@x\n1,2\n"  # a column's name is the query's, a formula too
    refused = client.post("/api/v1/query", json={"sql": "create table curated.x (a int)"})
    assert (refused.status_code, refused.json()["code"]) == (400, "read_only")
    slow = client.post("/api/v1/query", json={"sql": "select count(*) from range(100000000000)"})
    assert (slow.status_code, slow.json()["code"]) == (400, "query_timeout"), slow.text
    plain = client.post("/api/v1/query", content=b'{"sql": "select 1"}')
    assert (plain.status_code, plain.json()["code"]) == (415, "unsupported_media_type")


@pytest.mark.slow  # real query workers, run out or waited for
def test_a_query_past_its_memory_is_stopped_with_a_json_error(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """A sort of this size took 80% of the machine's memory, then spilled to the server's
    working directory, on the collector's process too (``serve``, ``up``)."""
    client = make_client(lake_template, console=_engine_memory(64 << 20))
    sql = "select count(*) from (select range, random() r from range(20000000) order by r)"
    stopped = client.post("/api/v1/query", json={"sql": sql})
    assert (stopped.status_code, stopped.json()["code"]) == (400, "query_too_large"), stopped.text
    assert "console.query_memory_bytes" in stopped.json()["message"]


def _engine_memory(engine_bytes: int) -> dict[str, int]:
    """Console settings giving one query at a time ``engine_bytes`` for DuckDB, 1 MiB of
    answer and the worker's overhead."""
    from advertisex.config import QUERY_WORKER_OVERHEAD_BYTES

    share = engine_bytes + (1 << 20) + QUERY_WORKER_OVERHEAD_BYTES
    return {"query_memory_bytes": share, "query_concurrency": 1, "query_max_bytes": 1 << 20}


def test_an_answer_is_cut_at_its_bytes_and_a_row_past_them_refused(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """Rows were capped, their size was not: ``select repeat('x', 1000000000)`` answered a
    gigabyte of JSON (17 s), and a few such rows would take the server's memory."""
    client = make_client(lake_template, console={"query_max_bytes": 1 << 20})
    cut = client.post("/api/v1/query", json={"sql": "select repeat('x', 100000) from range(50)"})
    body = cut.json()
    assert cut.status_code == 200 and body["truncated"] is True and 1 <= body["row_count"] < 11
    assert cut.headers["x-truncated"] == "true"
    whole = client.post("/api/v1/query", json={"sql": "select repeat('x', 1000) from range(50)"})
    assert whole.json()["row_count"] == 50 and whole.json()["truncated"] is False
    huge = client.post("/api/v1/query", json={"sql": "select repeat('x', 2000000) a"})
    assert (huge.status_code, huge.json()["code"]) == (400, "query_too_large"), huge.text
    assert "first row alone holds more than 1,048,576 bytes" in huge.json()["message"]


@pytest.mark.slow  # real query workers, run out or waited for
def test_a_query_making_huge_values_costs_its_worker_not_the_server(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """DuckDB makes a statement's values outside its memory_limit: ``select repeat('x',
    1000000000)`` took the server to 4 GB before its answer was refused. The query runs in
    a worker process, killed at its budget (here 64 MiB + 1 MiB + the worker's overhead)."""
    client = make_client(lake_template, console=_engine_memory(64 << 20))
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]
    before = _peak_resident_bytes()
    huge = client.post("/api/v1/query", json={"sql": "select length(repeat('x', 800000000)) n"})
    assert (huge.status_code, huge.json()["code"]) == (400, "query_too_large"), huge.text
    assert "console.query_memory_bytes" in huge.json()["message"]
    assert _peak_resident_bytes() - before < 200 << 20  # was 1.6 GB more
    # the worker was replaced: the next query is answered
    assert client.post("/api/v1/query", json={"sql": "select 2 as a"}).json()["rows"] == [{"a": 2}]


def test_a_poison_avro_pending_in_landing_is_read_by_a_console_query(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """A query's worker decodes pending Avro itself, where polars-avro's spin on the poison
    could not be stopped short of the query's time limit: it reads record by record."""
    import advertisex
    from tests.hostile import avro_file, bid, poison_avro

    ax = advertisex.open(data_dir=tmp_path / "data")
    ax.landing.write_segment("bids", poison_avro(), fsync=False)
    ax.landing.write_segment("bids", avro_file([bid(1)]), fsync=False)
    client = make_client(tmp_path / "data", console={"query_timeout_seconds": 20})
    sql = "select auction_id from raw.bid_requests order by 1"
    answer = client.post("/api/v1/query", json={"sql": sql})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [{"auction_id": "a1"}, {"auction_id": "a1000"}]


@pytest.mark.slow  # real query workers, run out or waited for
def test_idle_query_workers_are_stopped(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """Each idle query worker holds 120 MiB or more, in every collector process of
    ``serve --workers N``: they are stopped a while after the last query, and their slots
    given up."""
    import time

    client = make_client(lake_template, console={"query_concurrency": 3})
    reader = client.app.state.reader
    reader.query_slots.keep_seconds = 2.0
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]
    assert reader.query_workers.alive() == 1  # kept for the next query meanwhile
    assert len(reader.query_slots.kept()) == 1
    deadline = time.monotonic() + 20
    while reader.query_workers.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.query_workers.alive() == 0
    while reader.query_slots.kept() and time.monotonic() < deadline:  # the slot goes after it
        time.sleep(0.05)
    assert reader.query_slots.kept() == []
    assert client.post("/api/v1/query", json={"sql": "select 2 as a"}).json()["rows"] == [{"a": 2}]


def _peak_resident_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10


def test_an_answer_is_cut_at_its_bytes_as_json(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """The cap counted Arrow's bytes: a control character is six in JSON (``\\u0001``), so
    a 32 MiB answer went out as 180 MB of JSON (the server's peak 360 MB)."""
    client = make_client(lake_template, console={"query_max_bytes": 1 << 20})
    sql = "select repeat(chr(1), 100000) a from range(50)"
    cut = client.post("/api/v1/query", json={"sql": sql})
    body = cut.json()
    assert cut.status_code == 200 and body["truncated"] is True and 1 <= body["row_count"] < 2
    assert len(cut.content) < (1 << 20) + 1000, len(cut.content)
    huge = client.post("/api/v1/query", json={"sql": "select repeat(chr(1), 300000) a"})
    assert (huge.status_code, huge.json()["code"]) == (400, "query_too_large"), huge.text
    assert "first row alone holds more than 1,048,576 bytes" in huge.json()["message"]


@pytest.mark.slow  # real query workers, run out or waited for
def test_queries_past_the_concurrency_wait_then_are_refused(
    lake_template: Path, make_client: Callable[..., Any]
) -> None:
    """Each query's memory budget was its own: forty at once (the web layer's threads) were
    forty budgets, and forty times every core."""
    client = make_client(lake_template, console={"query_concurrency": 1})
    with client.app.state.reader.query_slots.held(wait=1):  # the one query that may run, running
        busy = client.post("/api/v1/query", json={"sql": "select 1"})
        assert (busy.status_code, busy.json()["code"]) == (503, "queries_busy"), busy.text
        assert busy.headers["retry-after"] and "console.query_concurrency" in busy.text
    assert client.post("/api/v1/query", json={"sql": "select 1 as a"}).json()["rows"] == [{"a": 1}]


def test_sql_page_runs_a_query_and_downloads_csv_with_a_csrf_token(client: Any) -> None:
    token = _csrf(client, "/sql")
    sql = "select campaign_id, count(*) as n from curated.impressions group by all order by n desc"
    page = client.post("/sql", data={"csrf": token, "sql": sql})
    assert page.status_code == 200 and 'id="result"' in page.text
    download = client.post("/sql", data={"csrf": token, "sql": sql, "download": "csv"})
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.text.startswith("campaign_id,n\n")
    assert client.post("/sql", data={"sql": sql}).status_code == 403  # no token
    foreign = client.post(
        "/sql", data={"csrf": token, "sql": sql}, headers={"origin": "https://evil.example"}
    )
    assert foreign.status_code == 403


def test_several_statements_are_refused_by_the_api_and_the_sql_page(client: Any) -> None:
    """Both ran every statement and answered the last one's rows alone (``select 1 as a;
    select 2 as b`` was ``200 [{"b": 2}]``): a client could not tell. Refused before any
    runs; a trailing ``;`` or comment is no statement."""
    for sql in ("select 1 as a; select 2 as b", "select error('the first ran'); select 2"):
        for path in ("/api/v1/query", "/api/v1/query?format=csv"):
            refused = client.post(path, json={"sql": sql})
            assert (refused.status_code, refused.json()["code"]) == (400, "several_statements")
            message = refused.json()["message"]
            assert message.startswith("the SQL holds 2 statements") and "first ran" not in message
            assert "send one statement at a time" in message
    one = client.post("/api/v1/query", json={"sql": "select 2 as b; -- and a comment"})
    assert one.json()["rows"] == [{"b": 2}], one.text
    token = _csrf(client, "/sql")
    page = client.post("/sql", data={"csrf": token, "sql": "select 1 as a; select 2 as b"})
    assert page.status_code == 400 and 'id="result"' not in page.text
    assert "the SQL holds 2 statements" in page.text and "send one statement" in page.text


def test_the_sql_page_cuts_a_long_value_and_the_csv_keeps_it_whole(client: Any) -> None:
    # A value was put in the page whole, five times its size once escaped (``&amp;``): a
    # 32 MiB answer of ampersands was a 160 MB page.
    token = _csrf(client, "/sql")
    sql = "select repeat('&', 100000) as a"
    page = client.post("/sql", data={"csrf": token, "sql": sql})
    assert page.status_code == 200 and 'id="result"' in page.text
    assert "(98,000 more characters: Download CSV gives it whole)" in page.text
    assert len(page.text) < 50_000, len(page.text)
    download = client.post("/sql", data={"csrf": token, "sql": sql, "download": "csv"})
    assert download.text == "a\n" + "&" * 100000 + "\n"


def test_replay_asks_for_confirmation_then_moves_the_records(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any]
) -> None:
    # After the "fix" (a far wider future-skew bound) the future-stamped records pass.
    client = make_client(lake_copy(), processor={"future_skew_seconds": 10**10})
    before = client.get("/api/v1/quarantine?reason=timestamp_in_future").json()["summary"]
    selected = sum(r["records"] for r in before)
    assert selected > 0
    token = _csrf(client, "/quarantine")
    form = {"csrf": token, "reason": "timestamp_in_future", "source": "", "since": "", "until": ""}
    preview = client.post("/quarantine/replay", data=form)
    assert f'data-selected="{selected}"' in preview.text and 'id="confirm"' in preview.text
    assert client.get("/api/v1/quarantine?reason=timestamp_in_future").json()["summary"] == before
    done = client.post("/quarantine/replay", data={**form, "confirm": "yes"})
    assert done.status_code == 200 and "Done: batch" in done.text, done.text
    assert client.get("/api/v1/quarantine?reason=timestamp_in_future").json()["summary"] == []
    sql = f"select count(*) as n from curated.impressions where impression_id = '{FUTURE_ID}'"
    assert client.post("/api/v1/query", json={"sql": sql}).json()["rows"] == [{"n": 1}]


def test_replay_does_not_take_more_than_its_preview_promised(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any]
) -> None:
    """The confirm button says how many records it replays; records quarantined between the
    preview and the click (a processor running) were replayed unseen, more than promised."""
    client = make_client(lake_copy(), processor={"future_skew_seconds": 10**10})
    token = _csrf(client, "/quarantine")
    form = {"csrf": token, "reason": "timestamp_in_future", "source": "", "since": "", "until": ""}
    preview = client.post("/quarantine/replay", data=form)
    selected = re.search(r'data-selected="(\d+)"', preview.text).group(1)  # type: ignore[union-attr]
    assert f'name="expected" value="{selected}"' in preview.text
    stale = str(int(selected) - 1)  # as if one more record was quarantined since the preview
    again = client.post("/quarantine/replay", data={**form, "confirm": "yes", "expected": stale})
    assert again.status_code == 200 and 'id="changed"' in again.text, again.text
    assert f'data-selected="{selected}"' in again.text and "Done: batch" not in again.text
    summary = client.get("/api/v1/quarantine?reason=timestamp_in_future").json()["summary"]
    assert sum(r["records"] for r in summary) == int(selected)  # nothing replayed
    done = client.post("/quarantine/replay", data={**form, "confirm": "yes", "expected": selected})
    assert "Done: batch" in done.text, done.text


def test_lake_page_lists_tables_and_their_last_maintenance(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any]
) -> None:
    import advertisex

    data_dir = lake_copy()
    client = make_client(data_dir)
    lake = client.get("/api/v1/lake").json()
    tables = {t["table"]: t for t in lake["tables"]}
    impressions = tables["curated.impressions"]
    assert impressions["rows"] > 1000 and impressions["data_files"] >= 1
    assert impressions["snapshots"] >= 1 and impressions["last_commit"]
    assert impressions["last_maintenance"] is None and lake["maintenance"] == []
    advertisex.open(data_dir=data_dir).maintain(["curated.impressions"])
    lake = client.get("/api/v1/lake").json()
    (run,) = [r for r in lake["maintenance"] if r["table"] == "curated.impressions"]
    assert run["trigger"] == "command" and run["data_files_after"] >= 1
    tables = {t["table"]: t for t in lake["tables"]}
    assert tables["curated.impressions"]["last_maintenance"] == run["finished_at"]
    html = client.get("/lake").text
    assert 'id="maintenance"' in html and "curated.impressions" in html


def test_alerts_page_shows_firing_and_history(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any]
) -> None:
    """An alert as the monitor leaves it: its live state, and its transitions in ops.alerts."""
    from datetime import UTC, datetime

    import pyarrow as pa

    import advertisex
    from advertisex.model.alerts import ALERTS
    from advertisex.monitor.state import StateStore

    data_dir = lake_copy()
    at = datetime(2026, 11, 21, 6, tzinfo=UTC)
    summary = f"campaign {SCRIPT} stopped spending"  # labels can carry producer text
    store = StateStore(data_dir / "monitor" / "state.db")
    store.save(
        "alerts",
        {
            "fp1": {
                "alertname": "SpendStopped",
                "state": "firing",
                "severity": "critical",
                "labels": {"alertname": "SpendStopped", "campaign_id": "cmp-001"},
                "active_since": at.isoformat(),
                "summary": summary,
            }
        },
    )
    store.close()
    row = {
        "at": at, "alertname": "SpendStopped", "state": "firing", "severity": "critical",
        "source": None, "labels": '{"campaign_id": "cmp-001"}', "fingerprint": "fp1",
        "active_since": at, "value": 0.0, "threshold": 1.0, "summary": summary,
    }  # fmt: skip
    lake = advertisex.open(data_dir=data_dir).lake
    lake.commit_batch({"ops.alerts": pa.Table.from_pylist([row], schema=ALERTS)}, [], {})
    client = make_client(data_dir)
    alerts = client.get("/api/v1/alerts").json()
    assert [a["alertname"] for a in alerts["firing"]] == ["SpendStopped"]
    assert [(a["alertname"], a["state"], a["summary"]) for a in alerts["history"]] == [
        ("SpendStopped", "firing", summary)
    ]
    assert client.get("/api/v1/alerts?since=2026-11-22").json()["history"] == []
    html = client.get("/alerts").text
    assert html.count("SpendStopped") >= 2 and SCRIPT not in html
    overview = client.get("/").text
    assert "SpendStopped" in overview and SCRIPT not in overview


def test_bad_parameters_are_clear_json_errors(client: Any) -> None:
    for path, code in (
        ("/api/v1/reports/nope", "not_found"),
        ("/api/v1/reports/campaigns?from=yesterday", "bad_input"),
        ("/api/v1/reports/campaigns?model=middle", "bad_input"),
        ("/api/v1/quarantine?source=pixels", "bad_input"),
        # an offset that takes the instant before year 1 in UTC (found by fuzzing: was a 500)
        ("/api/v1/quarantine/records?until=0001-01-01T00%3A06%3A00%2B01%3A01", "bad_input"),
        ("/api/v1/status?hours=999", "bad_input"),
        ("/api/v1/nothing", "not_found"),
    ):
        response = client.get(path)
        assert response.status_code in (400, 404) and response.json()["code"] == code, path
        assert response.json()["message"]
    page = client.get("/campaigns?from=2026-13-01", headers={"accept": "text/html"})
    assert page.status_code == 400 and 'id="error"' in page.text


def test_ranges_at_the_ends_of_the_calendar_are_ranges(client: Any) -> None:
    """A range from a date near year 9999 (or to one near year 1) is 30 days cut at the
    calendar's end, and ``to=9999-12-31`` is open: each was a 500 (a date past 9999)."""
    for path in ("/campaigns?from=9999-12-20", "/campaigns?to=0001-01-05"):
        page = client.get(path, headers={"accept": "text/html"})
        assert page.status_code == 200, path
    answer = client.get("/api/v1/reports/campaigns?from=0001-01-01&to=9999-12-31")
    assert answer.status_code == 200 and answer.json()


def test_no_cross_origin_access_is_granted(client: Any) -> None:
    preflight = client.options(
        "/api/v1/query",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    answer = client.get("/api/v1/status", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in answer.headers
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/v1/query" in docs.text
    assert "script-src" not in docs.headers["content-security-policy"]  # default-src 'none'


def test_dns_rebinding_is_refused_on_loopback(client: Any) -> None:
    response = client.get("/", headers={"host": "evil.example:8080"})
    assert response.status_code == 421


def test_a_file_the_storage_lost_is_named_by_the_api_and_the_pages(
    lake_copy: Callable[[], Path], make_client: Callable[..., Any]
) -> None:
    """A data file gone from under the lake: the query API answers 503 ``lake_damaged``
    with the file and the way back (not a 500 "failed unexpectedly"), as does the SQL page."""
    data = lake_copy()
    lost = sorted((data / "warehouse" / "curated" / "impressions").rglob("*.parquet"))[0]
    lost.unlink()
    client = make_client(data)
    answer = client.post("/api/v1/query", json={"sql": "select count(*) from curated.impressions"})
    body = answer.json()
    assert answer.status_code == 503 and body["code"] == "lake_damaged", body
    assert lost.name in body["message"] and "advertisex replay --from" in body["message"]
    token = _csrf(client, "/sql")
    sql = "select count(*) from curated.impressions"
    page = client.post("/sql", data={"csrf": token, "sql": sql})
    assert lost.name in page.text and "advertisex replay --from" in page.text, page.text[-3000:]


def _csrf(client: Any, page: str) -> str:
    """The CSRF token a form of ``page`` carries."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(page).text)
    assert found, f"{page} has no form token"
    return found.group(1)
