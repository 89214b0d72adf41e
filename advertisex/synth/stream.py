"""Stream synthetic traffic to a running collector in real time (``generate --to URL``).

:class:`LiveTraffic` draws events from the same synthetic world as the file generator
(campaigns, creatives with their click-through rates, heavy-tailed users, sites), but
stamped *now*: impressions, the bid request of every programmatic impression plus lost
auctions, clicks at each creative's CTR and conversions at each campaign's rate.

:func:`stream` paces them to ``rate`` events/s and sends them in batches over keep-alive
connections: impressions as NDJSON (500 a request), clicks as CSV, bids as Avro — or,
``via="firehose"``, every source as JSON records through boto3's PutRecordBatch.
Refusals worth retrying (429, 503, connection errors) are retried with exponential
backoff, honouring ``Retry-After``; every HTTP batch carries an ``Idempotency-Key`` so a
retry after a lost answer is not stored twice.
"""

from __future__ import annotations

import concurrent.futures
import csv
import functools
import io
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import tenacity

from advertisex.model.contracts import CLICK_FIELDS
from advertisex.synth import catalog as cat
from advertisex.util import jsonutil
from advertisex.util.retry import backoff, delay

BATCH = 500  # records per request, as Firehose's PutRecordBatch allows
PROGRAMMATIC_SHARE = 0.6
LOST_AUCTIONS_PER_WIN = 0.4
STREAMS = {"impressions": "AdvertiseX-dev-impressions", "clicks": "AdvertiseX-dev-clicks",
           "bids": "AdvertiseX-dev-bid_requests"}  # fmt: skip


@dataclass
class Tick:
    impressions: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)  # clicks and conversions
    bids: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return len(self.impressions) + len(self.clicks) + len(self.bids)


class LiveTraffic:
    """Realistic events stamped with the current time, from a seeded synthetic world."""

    def __init__(self, seed: int, n_users: int = 20_000) -> None:
        import numpy as np

        from advertisex.synth.clock import Window
        from advertisex.synth.world import agents, build_world, interest_combos

        self.rng = np.random.default_rng(seed)
        now = datetime.now(UTC)
        self.world = w = build_world(self.rng, Window(now.date(), 1), n_users)
        self.run = secrets.token_hex(3)  # ids stay unique across runs with the same seed
        self.sequence = 0
        self.users = w.user_id_texts[: w.n_users].to_list()
        self.ips = w.ip_texts[: w.n_users].to_list()
        self.agents, self.interests = agents(), interest_combos()
        self.sites = [f"{h}{p}" for h, p in zip(w.site_hosts, w.site_paths, strict=True)]

    def tick(self, impressions: int) -> Tick:
        """``impressions`` impressions now, with their bids, lost auctions, clicks, conversions."""
        from advertisex.synth.impressions import pick_creatives, pick_placements

        w, rng, out = self.world, self.rng, Tick()
        now = datetime.now(UTC)
        stamp, ms = (
            now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            int(now.timestamp() * 1000),
        )
        campaign = rng.choice(len(w.campaign_weight), impressions, p=w.campaign_weight)
        creative = pick_creatives(rng, w, campaign)
        placement = pick_placements(rng, w, creative)
        user = rng.choice(w.n_users, impressions, p=w.user_weight)
        site = rng.choice(len(w.site_hosts), impressions, p=w.site_weight)
        cpm = (w.campaign_cpm[campaign] * rng.lognormal(0.0, 0.25, impressions)).clip(0.5, 8.0)
        programmatic = rng.random(impressions) < PROGRAMMATIC_SHARE
        clicked = rng.random(impressions) < w.creative_ctr[creative]
        converted = clicked & (rng.random(impressions) < w.campaign_cvr[campaign])
        campaigns, creatives = w.campaign_ids, w.creative_ids
        for i in range(impressions):
            self.sequence += 1
            u, c, cr = int(user[i]), int(campaign[i]), int(creative[i])
            imp_id = f"imp-{self.run}-{self.sequence:010d}"
            record = {
                "impression_id": imp_id, "timestamp": stamp, "ad_creative_id": creatives[cr],
                "campaign_id": campaigns[c], "user_id": self.users[u], "website": self.sites[site[i]],
                "placement": cat.PLACEMENTS[placement[i]], "device_type": cat.DEVICE_TYPES[w.user_device[u]],
                "user_agent": self.agents[w.user_agent[u]], "ip": self.ips[u],
                "country": cat.COUNTRIES[w.user_country[u]], "cost": round(float(cpm[i]) / 1000, 6),
            }  # fmt: skip
            if programmatic[i]:
                record["auction_id"] = auction = f"auc-{self.run}-{self.sequence:010d}"
                out.bids.append(self._bid(auction, ms, u, record, float(cpm[i])))
                if rng.random() < LOST_AUCTIONS_PER_WIN:
                    lost = self._bid(f"auc-{self.run}-{self.sequence:010d}-l", ms, u, record, None)
                    out.bids.append(lost)
            out.impressions.append(record)
            if clicked[i]:
                out.clicks.append(self._response(record, "click", stamp))
            if converted[i]:
                out.clicks.append(self._response(record, "conversion", stamp))
        return out

    def _bid(
        self, auction: str, ms: int, u: int, imp: dict[str, Any], cpm: float | None
    ) -> dict[str, Any]:
        w = self.world
        return {
            "auction_id": auction, "timestamp": datetime.fromtimestamp((ms - 150) / 1000, UTC),
            "user_id": imp["user_id"], "exchange": random.choice(cat.EXCHANGES),
            "site_domain": imp["website"].split("/", 1)[0], "device_type": imp["device_type"],
            "country": imp["country"], "floor_price": round((cpm or 1.0) * 0.6, 4),
            "ad_targeting": {"age": cat.AGE_BANDS[w.user_age[u]], "gender": cat.GENDERS[w.user_gender[u]],
                             "interests": self.interests[w.user_interests[u]]},
            "bid_price": None if cpm is None else round(cpm, 4),
            "campaign_id": imp["campaign_id"] if cpm else None,
            "ad_creative_id": imp["ad_creative_id"] if cpm else None,
        }  # fmt: skip

    def _response(self, imp: dict[str, Any], kind: str, stamp: str) -> dict[str, Any]:
        row = {
            "event_id": f"{kind[:4]}-{imp['impression_id'][4:]}", "timestamp": stamp, "user_id": imp["user_id"],
            "campaign_id": imp["campaign_id"], "event_type": kind, "impression_id": imp["impression_id"],
            "ad_creative_id": imp["ad_creative_id"],
        }  # fmt: skip
        if kind == "conversion":
            row.update(
                conversion_type="purchase",
                conversion_value=round(random.uniform(5, 200), 2),
                currency="USD",
            )
        return row


# ---------------------------------------------------------------------- encodings
def ndjson(records: list[dict[str, Any]]) -> bytes:
    return b"".join(jsonutil.dumps(r) + b"\n" for r in records)


def clicks_csv(records: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CLICK_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


def bids_avro(records: list[dict[str, Any]]) -> bytes:
    import fastavro

    from advertisex.synth.avro_out import writer_schema

    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(writer_schema()), records, codec="deflate")
    return buffer.getvalue()


# ---------------------------------------------------------------------- sending
@dataclass
class StreamStats:
    started: float = field(default_factory=time.monotonic)
    events: int = 0
    requests: int = 0
    retries: int = 0
    failed: int = 0
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self,
        events: int = 0,
        requests: int = 0,
        retries: int = 0,
        failed: int = 0,
        error: str | None = None,
    ) -> None:
        with self.lock:
            self.events += events
            self.requests += requests
            self.retries += retries
            self.failed += failed
            self.last_error = error or self.last_error

    @property
    def rate(self) -> float:
        return self.events / max(time.monotonic() - self.started, 1e-9)


def stream(
    to: str, *, rate: float, duration: float, via: str = "http", api_key: str | None = None, seed: int = 1,
    on_progress: Callable[[StreamStats], None] | None = None, stop: threading.Event | None = None,
) -> StreamStats:  # fmt: skip
    """Send ~``rate`` events/s for ``duration`` seconds; returns what was acknowledged."""
    traffic = LiveTraffic(seed)
    stats = StreamStats()
    stop = stop or threading.Event()
    sender = (
        FirehoseSender(to, stats, api_key) if via == "firehose" else HttpSender(to, stats, api_key)
    )
    # The duration is the traffic's, not the sender's set-up: boto3's client alone can take
    # over a second on a busy machine, which once left a one-second Firehose stream with
    # nothing to send.
    stats.started = time.monotonic()
    period = 0.25
    per_impression = 1 + PROGRAMMATIC_SHARE * (1 + LOST_AUCTIONS_PER_WIN) + 0.01
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        inflight: set[concurrent.futures.Future[None]] = set()
        generated = 0
        next_report = stats.started + 1
        while not stop.is_set() and (elapsed := time.monotonic() - stats.started) < duration:
            # Pace by the clock, not by loop turns: a slow turn is made up in the next one.
            due = rate * min(elapsed + period, duration) - generated
            if due >= per_impression:
                tick = traffic.tick(int(due / per_impression))
                generated += tick.events
                inflight.update(pool.submit(job) for job in sender.jobs(tick))
            inflight = {f for f in inflight if not f.done()}
            if len(inflight) > 64:  # the collector is slower than the rate: do not pile up
                concurrent.futures.wait(inflight, return_when=concurrent.futures.FIRST_COMPLETED)
            if on_progress and time.monotonic() >= next_report:
                on_progress(stats)
                next_report += 1
            stop.wait(period)
        concurrent.futures.wait(inflight)
    sender.close()
    return stats


def unreachable(to: str, timeout: float = 3.0) -> str | None:
    """Why nothing at ``to`` answers HTTP (refused, timed out, unknown host), or None when
    something does: the check before streaming, so a wrong URL fails in seconds instead of
    after every request's retries."""
    import httpx

    try:
        httpx.get(to.rstrip("/") + "/healthz", timeout=timeout)
    except httpx.TransportError as e:
        return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return None


# The project's retry policy (util.retry), jittered: many senders must not retry in step.
ATTEMPTS = 8
WAIT = backoff(0.1, maximum=5.0, jitter=True)


class _Refused(Exception):
    """An answer worth retrying (429, 5xx); it may say when (``Retry-After``)."""

    def __init__(self, answer: Any) -> None:
        super().__init__(f"{answer.status_code} {answer.text[:200]}")
        after = answer.headers.get("retry-after", "")
        self.retry_after = float(after) if after.isdigit() else None


def _wait(state: tenacity.RetryCallState) -> float:
    """The server's ``Retry-After`` when it gave one, else the policy's wait."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _Refused) and error.retry_after is not None:
        return error.retry_after
    return WAIT(state)


class HttpSender:
    """Native endpoints: NDJSON impressions, CSV clicks, Avro bids, over keep-alive."""

    RETRY = frozenset({429, 500, 502, 503, 504})

    def __init__(self, to: str, stats: StreamStats, api_key: str | None) -> None:
        import httpx

        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        self.client = httpx.Client(
            base_url=to.rstrip("/"), headers=headers, timeout=30, limits=limits
        )
        self.stats = stats

    def jobs(self, tick: Tick) -> list[Callable[[], None]]:
        work: list[
            tuple[str, str, Callable[[list[dict[str, Any]]], bytes], list[dict[str, Any]]]
        ] = []
        for i in range(0, len(tick.impressions), BATCH):
            work.append(
                ("/v1/impressions", "application/x-ndjson", ndjson, tick.impressions[i : i + BATCH])
            )
        for i in range(0, len(tick.bids), BATCH):
            work.append(("/v1/bids", "application/avro", bids_avro, tick.bids[i : i + BATCH]))
        if tick.clicks:
            work.append(("/v1/clicks", "text/csv", clicks_csv, tick.clicks))
        return [functools.partial(self._post, *w) for w in work]

    def _post(
        self, path: str, content_type: str, encode: Callable[[list[dict[str, Any]]], bytes], records: list[dict[str, Any]]
    ) -> None:  # fmt: skip
        import httpx

        body = encode(records)
        headers = {
            "content-type": content_type,
            "idempotency-key": uuid.uuid4().hex,
        }  # retries are safe

        def send() -> Any:
            answer = self.client.post(path, content=body, headers=headers)
            if answer.status_code in self.RETRY:
                raise _Refused(answer)
            return answer

        policy = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=_wait,
            retry=tenacity.retry_if_exception_type((httpx.TransportError, _Refused)),
            reraise=True,
        )
        try:
            answer = policy(send)
        except (httpx.TransportError, _Refused) as e:
            error = str(e) if isinstance(e, _Refused) else f"{type(e).__name__}: {e}"
            self.stats.add(failed=1, retries=ATTEMPTS - 1, error=error)
            return
        retries = policy.statistics.get("attempt_number", 1) - 1
        if answer.status_code < 300:
            self.stats.add(events=len(records), requests=1, retries=retries)
        else:
            error = f"{answer.status_code} {answer.text[:200]}"
            self.stats.add(failed=1, retries=retries, error=error)

    def close(self) -> None:
        self.client.close()


class FirehoseSender:
    """Every source as JSON records through boto3's PutRecordBatch (the AWS reference's way)."""

    def __init__(self, to: str, stats: StreamStats, api_key: str | None) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.client(
            "firehose", region_name="us-east-1", endpoint_url=to,
            aws_access_key_id=api_key or "advertisex", aws_secret_access_key="unused",
            config=Config(retries={"max_attempts": 8, "mode": "standard"}, max_pool_connections=8),
        )  # fmt: skip
        self.stats = stats

    def jobs(self, tick: Tick) -> list[Callable[[], None]]:
        work = []
        for source, records in (
            ("impressions", tick.impressions),
            ("clicks", tick.clicks),
            ("bids", tick.bids),
        ):
            for i in range(0, len(records), BATCH):
                work.append((STREAMS[source], records[i : i + BATCH]))
        return [functools.partial(self._put, *w) for w in work]

    def _put(self, stream_name: str, records: list[dict[str, Any]]) -> None:
        entries = [{"Data": jsonutil.dumps(r)} for r in records]
        for attempt in range(8):
            try:
                answer = self.client.put_record_batch(
                    DeliveryStreamName=stream_name, Records=entries
                )
            except Exception as e:  # botocore already retried what is retryable
                self.stats.add(failed=1, retries=attempt, error=f"{type(e).__name__}: {e}")
                return
            responses = answer["RequestResponses"]
            retry = [
                e
                for e, r in zip(entries, responses, strict=True)
                if r.get("ErrorCode") == "ServiceUnavailableException"
            ]
            rejected = sum(1 for r in responses if "ErrorCode" in r) - len(retry)
            self.stats.add(
                events=len(entries) - len(retry) - rejected,
                requests=1,
                failed=rejected,
                retries=attempt,
            )
            if not retry:
                return
            entries = retry
            time.sleep(delay(WAIT, attempt + 1))
        self.stats.add(failed=len(entries), error="ServiceUnavailableException after 8 attempts")

    def close(self) -> None:
        self.client.close()
