"""The console's pages: Jinja2 templates rendered on the server, autoescaping on.

Every value reaches the HTML through Jinja2's escaping (quarantined raw text is
whatever a producer sent); chart data travels as JSON in a ``data-chart`` attribute
(``tojson``: HTML-safe) and ``static/console.js`` draws it — there is no inline script.
Forms that change anything are POSTs carrying the CSRF token (:mod:`.access`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from advertisex import __version__
from advertisex.collector.responses import ApiError, media_type, read_body
from advertisex.console import params
from advertisex.console.access import Access, safe_next
from advertisex.console.data import Reader
from advertisex.errors import AdvertiseXError
from advertisex.util.timeutil import moved

log = logging.getLogger("advertisex.console")
# A form's body at most: the SQL box's 100,000 bytes percent-encoded (three bytes for one), and
# the few short fields of the other forms.
MAX_FORM_BYTES = 512 << 10
MAX_FORM_FIELDS = 20
Page = Callable[[Request], Awaitable[Response]]
NAV = (
    ("/", "Overview"),
    ("/campaigns", "Campaigns"),
    ("/quarantine", "Quarantine"),
    ("/alerts", "Alerts"),
    ("/sql", "SQL"),
    ("/lake", "Lake"),
)


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    folder = resources.files("advertisex.console") / "templates"
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=True,  # every {{ value }} is HTML-escaped; nothing is marked safe
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["cell"] = cell
    env.filters["pct"] = percent
    env.filters["when"] = when
    return env


_ENV: Any = None


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    html = _ENV.get_template(template).render(
        request_path=request.url.path,
        nav=NAV,
        principal=request.state.principal,
        csrf=request.state.csrf,
        auth_required=request.app.state.access.required,
        version=__version__,
        **context,
    )
    return HTMLResponse(html, status_code=http_status)


def page(endpoint: Page) -> Page:
    """Errors become the page's error box, with the status the error family gives."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ApiError as error:
            return render(
                request, "error.html", error.status, code=error.code, message=error.message
            )
        except Exception as error:  # a file the storage lost: said so (lake.damage)
            told = await run_in_threadpool(reader(request).damage, error) or error
            if isinstance(told, AdvertiseXError):
                message = f"{told.message} — {told.hint}" if told.hint else told.message
                return render(
                    request, "error.html", told.http_status, code=told.code, message=message
                )
            log.exception("console page failed on %s %s", request.method, request.url.path)
            return render(
                request,
                "error.html",
                500,
                code="internal",
                message="the console failed unexpectedly; see the server log",
            )

    wrapped.__name__ = endpoint.__name__
    return wrapped


def reader(request: Request) -> Reader:
    return request.app.state.reader  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- overview
async def overview(request: Request) -> Response:
    status = await run_in_threadpool(reader(request).status, 6)
    series = status["events_per_minute"]
    chart = _chart(
        "events per minute (processed, 5-minute buckets)",
        series["buckets"],
        {source: values for source, values in series["sources"].items()},
    )
    refresh = reader(request).settings.console.refresh_seconds
    return render(request, "overview.html", status=status, chart=chart, refresh=refresh)


# ---------------------------------------------------------------------- campaigns
async def campaigns(request: Request) -> Response:
    start, end, model = await _range(request)
    data = await run_in_threadpool(reader(request).campaigns, start, end, model)
    sort, descending = _sort(request, "day")
    return render(
        request,
        "campaigns.html",
        start=start,
        end=end,
        model=model,
        rows=sort_rows(data["campaigns"], sort, descending),
        funnel=data["funnel"],
        bids=data["bids"],
        sort=sort,
        descending=descending,
        columns=CAMPAIGN_COLUMNS,
    )


CAMPAIGN_COLUMNS = (
    "campaign_id",
    "day",
    "impressions",
    "unique_users",
    "clicks",
    "conversions",
    "ctr",
    "spend",
    "attributed_conversions",
    "attributed_value",
    "cpa",
    "roas",
    "ecpm",
    "bids",
    "wins",
    "win_rate",
)


async def campaign(request: Request) -> Response:
    campaign_id = request.path_params["campaign_id"]
    start, end, model = await _range(request)
    data = await run_in_threadpool(reader(request).campaign, campaign_id, start, end, model)
    hours = [row["hour"] for row in data["hourly"]]
    charts = [
        _chart(title, hours, {title: [row[key] for row in data["hourly"]]})
        for title, key in (
            ("impressions", "impressions"),
            ("clicks", "clicks"),
            ("conversions", "conversions"),
            ("CTR", "ctr"),
            ("spend", "spend"),
        )
    ]
    return render(
        request,
        "campaign.html",
        campaign_id=campaign_id,
        start=start,
        end=end,
        model=model,
        data=data,
        charts=charts,
        columns=CAMPAIGN_COLUMNS[1:],
    )


async def _range(request: Request) -> tuple[date, date, str]:
    query = request.query_params
    start, end, model = params.day(query, "from"), params.day(query, "to"), params.model(query)
    if start is None or end is None:
        _, last = await run_in_threadpool(reader(request).default_range)
        if end is None:
            end = moved(start, timedelta(days=29)) if start else last
        start = start or moved(end, timedelta(days=-29))
    return start, end, model


def _sort(request: Request, default: str) -> tuple[str, bool]:
    sort = params.text(request.query_params, "sort") or default
    if sort not in CAMPAIGN_COLUMNS:
        sort = default
    return sort, params.text(request.query_params, "dir") == "desc"


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Rows by ``key``; empty values last in either direction."""
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: r[key], reverse=descending) + missing


# ---------------------------------------------------------------------- quarantine
async def quarantine(request: Request) -> Response:
    from advertisex.model.reasons import shown_raw

    query = request.query_params
    selection = params.selection(query)
    limit = params.integer(query, "limit", 20, 1, 200)
    data = await run_in_threadpool(reader(request).quarantine, selection)
    samples = await run_in_threadpool(reader(request).quarantine_records, selection, limit)
    whole = "GET /api/v1/quarantine/records gives it whole"
    samples = [{**r, "raw": shown_raw(r["raw"], whole)} for r in samples]
    hours = sorted({row["hour"] for row in data["timeline"]})
    by_reason: dict[str, list[float]] = {}
    index = {h: i for i, h in enumerate(hours)}
    for row in data["timeline"]:
        label = f"{row['source']}: {row['reason']}"
        values = by_reason.setdefault(label, [0.0] * len(hours))
        values[index[row["hour"]]] += row["records"]
    chart = _chart("quarantined records per hour of landing", hours, by_reason, bars=True)
    return render(
        request,
        "quarantine.html",
        selection=_form_values(query),
        summary=data["summary"],
        samples=samples,
        chart=chart,
        limit=limit,
    )


async def replay(request: Request) -> Response:
    """Step 1 (no ``confirm``): how many records a replay takes; step 2: replay them."""
    form = await _checked_form(request)
    principal = request.state.principal
    if not principal.may("admin"):
        raise ApiError(403, "forbidden", "replay needs a console key with the admin scope")
    values = {k: _field(form, k) or "" for k in ("source", "reason", "since", "until")}
    selection = params.selection(values)
    expected = _field(form, "expected")
    if _field(form, "confirm") != "yes" or expected is not None:
        preview = await run_in_threadpool(reader(request).replay_preview, selection)
        # The button promised the preview's count: records quarantined (or replayed) since
        # then would be replayed unseen, so a changed count is shown again, not replayed.
        changed = expected is not None and expected != str(preview["selected"])
        if _field(form, "confirm") != "yes" or changed:
            return render(
                request,
                "replay.html",
                selection=values,
                preview=preview,
                result=None,
                changed=expected if changed else None,
            )
    result = await run_in_threadpool(reader(request).replay, selection)
    columns = list(result["sources"][0]) if result["sources"] else []
    return render(
        request,
        "replay.html",
        selection=values,
        preview=None,
        result=result,
        columns=columns,
        changed=None,
    )


def _form_values(query: Any) -> dict[str, str]:
    return {k: query.get(k, "") for k in ("source", "reason", "since", "until")}


async def _checked_form(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token and origin pass (403 otherwise).

    Read here, within bounds, and only as the pages send it (URL-encoded): Starlette's
    parser took multipart too, and spooled a file part of any size to the system's
    temporary folder before the token was checked, on ``/login`` without a key; a field
    past its 1 MiB was a 500."""
    from urllib.parse import parse_qsl

    if media_type(request) != "application/x-www-form-urlencoded":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the form as application/x-www-form-urlencoded, as the console's pages do",
        )
    raw = await read_body(request, MAX_FORM_BYTES)
    try:
        pairs = parse_qsl(
            raw.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:
        raise ApiError(
            400, "bad_input", f"the form has more than {MAX_FORM_FIELDS} fields"
        ) from None
    form = dict(pairs)
    request.app.state.access.check_form(request, form.get("csrf"))
    return form


def _field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------- alerts, lake
async def alerts(request: Request) -> Response:
    since = params.instant(request.query_params, "since")
    data = await run_in_threadpool(reader(request).alerts, since)
    return render(request, "alerts.html", data=data, since=request.query_params.get("since", ""))


async def lake(request: Request) -> Response:
    lake = await run_in_threadpool(reader(request).lake)
    return render(request, "lake.html", lake=lake)


# ---------------------------------------------------------------------- SQL
EXAMPLE_SQL = "select device_type, count(*) as impressions\nfrom curated.impressions\ngroup by all order by impressions desc"


async def sql_form(request: Request) -> Response:
    return render(request, "sql.html", sql=EXAMPLE_SQL, result=None, error=None)


async def sql_run(request: Request) -> Response:
    form = await _checked_form(request)
    sql = _field(form, "sql") or ""
    try:
        result = await run_in_threadpool(reader(request).query, sql)
    except AdvertiseXError as error:
        message = f"{error.message} — {error.hint}" if error.hint else error.message
        return render(request, "sql.html", 400, sql=sql, result=None, error=message)
    if _field(form, "download") == "csv":
        return Response(
            result.csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="query.csv"'},
        )
    return render(request, "sql.html", sql=sql, result=result, error=None)


# ---------------------------------------------------------------------- sign-in
async def login_form(request: Request) -> Response:
    insecure = request.url.scheme != "https" and request.app.state.access.required
    return render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        error=None,
        insecure=insecure,
    )


async def login(request: Request) -> Response:
    form = await _checked_form(request)
    access: Access = request.app.state.access
    target = safe_next(_field(form, "next"))
    principal = access.key_principal(_field(form, "key") or "")
    if principal is None:
        return render(
            request,
            "login.html",
            401,
            next=target,
            error="that key is not a console key",
            insecure=False,
        )
    response = RedirectResponse(target, status_code=303)
    access.set_cookie(response, access.session_cookie, access.session(principal))
    return response


async def logout(request: Request) -> Response:
    await _checked_form(request)
    access: Access = request.app.state.access
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(access.session_cookie, path="/", secure=access.required)
    return response


# ---------------------------------------------------------------------- helpers
def _chart(
    title: str, times: list[Any], series: dict[str, list[Any]], bars: bool = False
) -> dict[str, Any]:
    """What console.js draws: x as epoch seconds, one list of values per series."""
    return {
        "title": title,
        "x": [_epoch(t) for t in times],
        "series": [{"label": label, "values": values} for label, values in series.items()],
        "bars": bars,
    }


def _epoch(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return float(value.timestamp())


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1:
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return f"{value:,.2f}"
    return str(value)


def cell(value: Any) -> str:
    """A query's value in the SQL page's table: :func:`number`, cut to 2,000 characters
    saying how many more there are (a 32 MiB answer of ``&`` was a 160 MB page escaped)."""
    from advertisex.model.reasons import shown_raw

    return shown_raw(number(value), "Download CSV gives it whole") or ""


def percent(value: Any) -> str:
    return "–" if value is None else f"{value * 100:.2f} %"


def when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def routes() -> list[Route]:
    return [
        Route("/", page(overview), methods=["GET"]),
        Route("/campaigns", page(campaigns), methods=["GET"]),
        Route("/campaigns/{campaign_id:path}", page(campaign), methods=["GET"]),
        Route("/quarantine", page(quarantine), methods=["GET"]),
        Route("/quarantine/replay", page(replay), methods=["POST"]),
        Route("/alerts", page(alerts), methods=["GET"]),
        Route("/lake", page(lake), methods=["GET"]),
        Route("/sql", page(sql_form), methods=["GET"]),
        Route("/sql", page(sql_run), methods=["POST"]),
        Route("/login", page(login_form), methods=["GET"]),
        Route("/login", page(login), methods=["POST"]),
        Route("/logout", page(logout), methods=["POST"]),
    ]
