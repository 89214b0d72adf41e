"""Configuration is data: frozen pydantic models, one section per stage.

Sources, lowest to highest precedence: defaults here → ``advertisex.toml`` in the
working directory (or the file named by ``ADVERTISEX_CONFIG``) → ``ADVERTISEX_*``
environment variables (nested with ``__``, e.g. ``ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES``;
case does not matter; a mapping, list or section given whole is JSON) → keyword
overrides passed to :func:`load_settings`.

The two sources are read here (``tomllib`` and :func:`environment_values`, the way
pydantic-settings' TOML and env sources read them) rather than through pydantic-settings:
importing it costs every command about 60 ms (asyncio, dotenv, argparse and its cloud
sources load with it), a fifth of what ``advertisex query`` may take from start to answer.
Validation, ranges and messages stay pydantic's.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import from_json

from advertisex.errors import ConfigError
from advertisex.lazy_settings import (
    DEFAULT_CATALOG_NAME,
    DEFAULT_DATA_DIR,
    LAKE_DEFAULTS,
    OTHER_VARIABLES,
    Layout,
    config_file,
)

# Pydantic looks for its plugins (entry points, read from the metadata of every installed
# distribution) when it builds the first model's validator: ~80 M instructions, a sixth of
# what `advertisex query "select 1"` costs, for plugins a settings file has no use for.
# These models are built without them, as Typer builds its parameters' adapters; models
# made after this module (the collector's) still get them.
_PLUGINS_SETTING = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"


# The longest span a setting of seconds, minutes, hours or days holds: a thousand years
# (added to or taken from today, still a date). Past it a window, horizon, age or pause
# overflowed the clocks it is added to (a date's 999,999,999 days, the system's time_t)
# as a bug report where it now is this setting's own message.
MAX_SPAN_DAYS = 365_250
MAX_SPAN_HOURS = MAX_SPAN_DAYS * 24
MAX_SPAN_MINUTES = MAX_SPAN_HOURS * 60
MAX_SPAN_SECONDS = MAX_SPAN_MINUTES * 60
# A console query worker's resident memory beyond DuckDB's budget and the answer it hands
# back: the interpreter and the modules it preloaded (~150 MiB), Arrow's and the pipe's
# copies. Part of each query's share of console.query_memory_bytes.
QUERY_WORKER_OVERHEAD_BYTES = 384 << 20
# The least DuckDB may have of a query's share (what console.query_memory_bytes must allow).
QUERY_ENGINE_MIN_BYTES = 64 << 20


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LakeSettings(_Section):
    """Where the tables live and which catalog tracks them."""

    # Text only (lazy_settings reads these without pydantic): LAKE_DEFAULTS are their defaults.
    catalog_uri: str | None = Field(
        LAKE_DEFAULTS["catalog_uri"],
        description="SQLAlchemy URL of the Iceberg SQL catalog; default: a SQLite file "
        "under the data directory. A PostgreSQL URL gives a shared catalog.",
    )
    catalog_name: str = Field(
        DEFAULT_CATALOG_NAME, description="Name of the catalog inside the SQL catalog DB."
    )
    warehouse: str | None = Field(
        LAKE_DEFAULTS["warehouse"],
        description="Root folder or URL of table data; default: <data_dir>/warehouse.",
    )


class ProcessorSettings(_Section):
    """How landing segments become curated rows."""

    batch_max_bytes: int = Field(
        1 << 30,
        ge=1,
        description="Upper bound of landing bytes read into one batch; a larger segment "
        "is a batch of its own (segments are never split).",
    )
    piece_bytes: int = Field(
        # 32 MiB: against 24, a 2 M-event batch in fewer pieces (fewer data files, engine
        # calls and merges) took 6.31-6.35 s against 6.61-6.83, the demo 6.95-7.39 against
        # 7.37-8.03; a 10 M backlog's tree peak 1,430 MiB against 1,327-1,331 (ceiling 1,536;
        # 48 MiB: 1,440, no faster).
        32 << 20,
        ge=1,
        description="Landing bytes the embedded processor transforms at a time, weighed by "
        "their records (a byte of Avro bids or CSV clicks counts 4, of JSON impressions 1): "
        "a batch streams through pieces of this size (a bigger segment in slices of it), so "
        "memory is bounded by the pieces in flight, not by the batch or the backlog.",
    )
    workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Pieces the embedded processor transforms at once, on as many threads "
        "(each adds about ten times piece_bytes to the peak memory).",
    )
    follow_gather_seconds: float = Field(
        2.0,
        ge=0,
        le=3600,
        description="process --follow (and up): commit a batch at most this often while "
        "less than a full batch is pending: fewer, larger batches (data files, commits) for "
        "at most this much more delay to queryable (0: commit what is there at once).",
    )
    dedupe_horizon_days: int = Field(
        7,
        ge=0,
        le=3650,
        description="How far back (by event day) a repeat of an event id is recognised.",
    )
    future_skew_seconds: int = Field(
        300,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="Event times further than this in the future are quarantined.",
    )
    max_event_age_days: int | None = Field(
        None,
        ge=1,
        le=MAX_SPAN_DAYS,
        description="Quarantine events older than this many days; off by default (backfills are normal).",
    )
    ivt_filter: bool = Field(
        True,
        description="Move general invalid traffic (known crawlers, listed IP ranges, test traffic) "
        "to curated.filtered instead of the event tables.",
    )
    ivt_ip_ranges: tuple[str, ...] = Field(
        ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15"),
        description="CIDR ranges whose traffic is invalid (data centres, internal test "
        "addresses); default: the IANA documentation and benchmarking networks.",
    )
    ivt_test_flags: tuple[str, ...] = Field(
        ("is_test", "test"), description="Record fields that mark test traffic when true."
    )
    decode_isolated: bool = Field(
        True,
        description="Decode landing segments in worker processes under the time and memory "
        "budgets below, so a hostile file cannot hang or exhaust the processor (off: decode "
        "in-process, unbounded).",
    )
    decode_seconds: float = Field(
        30.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="Time one segment's decoding may take (plus decode_seconds_per_mib); past "
        "it the segment is set aside with a reason and the rest of the batch commits.",
    )
    decode_seconds_per_mib: float = Field(
        2.0, ge=0, description="…plus this many seconds per MiB of the segment."
    )
    decode_memory_bytes: int = Field(
        4 << 30,
        gt=0,
        description="Memory (resident) one segment's decoder may use before it is stopped and "
        "the segment set aside.",
    )


class ApiKey(_Section):
    """One collector API key: only its SHA-256 is stored, with the sources it may send."""

    name: str = Field(
        ..., description="Who holds the key (shown in logs and metrics, never the key)."
    )
    sha256: str = Field(
        ...,
        description="Hex SHA-256 of the key; `advertisex keygen` prints a new key and its hash.",
    )
    sources: tuple[str, ...] = Field(
        ("impressions", "clicks", "bids"),
        description="Sources this key may send; 'postback' lets it send conversion postbacks.",
    )


class TrackingSettings(_Section):
    """The collector's tracking endpoints: impression pixel, click redirect, conversion postback."""

    max_query_bytes: int = Field(
        4096,
        ge=64,
        description="Longest query string (414; a pixel still answers its GIF and quarantines "
        "a record).",
    )
    max_parameters: int = Field(
        64, ge=1, description="Most query (or form) parameters in one request."
    )
    ip_privacy: Literal["truncate", "hash", "keep"] = Field(
        "truncate",
        description="What is stored of the client IP: truncate (IPv4 /24, IPv6 /48), hash "
        "(HMAC-SHA256 with ip_hash_key) or keep (the full address).",
    )
    ip_hash_key: SecretStr | None = Field(
        None, description="Key of the IP hash (ip_privacy = hash); keep it stable to keep hashes."
    )
    cookie_name: str = Field(
        "adx_uid",
        description="First-party cookie naming the user when a pixel or link carries no user_id.",
    )
    set_cookie: bool = Field(
        True, description="Give a browser without that cookie a new random user id cookie."
    )
    cookie_max_age_days: int = Field(
        395, ge=0, le=MAX_SPAN_DAYS, description="Lifetime of that cookie."
    )
    click_secret: SecretStr | None = Field(
        None,
        description="Global HMAC-SHA256 key that signs click links (/v1/c); without it and "
        "without campaign_secrets no link verifies.",
    )
    campaign_secrets: dict[str, SecretStr] = Field(
        {}, description="campaign_id → its own link-signing key (wins over click_secret)."
    )
    redirect_allow: tuple[str, ...] = Field(
        (),
        description="Hosts a click may redirect to: 'shop.example' (that host) or "
        "'*.example.com' (its subdomains and itself); empty: any host of a validly signed link.",
    )
    public_url: str | None = Field(
        None,
        description="Base URL at which browsers reach the collector (e.g. "
        "https://track.example.com), used by sign-url; default http://<host>:<port>.",
    )
    click_id_param: str = Field(
        "adx_click_id",
        description="Query parameter that hands the click id to the landing page.",
    )
    postback_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key postback senders may sign with instead of sending an API "
        "key (a key needs 'postback' among its sources).",
    )


def _named_host(host: str) -> str:
    """An interface to bind is named: an empty one is every interface (``--host "$UNSET"``
    listened on the network, or was refused as "listen on  without API keys")."""
    if not host.strip():
        raise ValueError("an empty host is every interface; name one, e.g. 127.0.0.1 or 0.0.0.0")
    return host


class CollectorSettings(_Section):
    """The HTTP collector (``advertisex serve``): limits, durability, access."""

    host: str = Field("127.0.0.1", description="Interface to bind; non-loopback requires API keys.")
    _host_is_named = field_validator("host")(_named_host)
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on.")
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Worker processes serving the port (SO_REUSEPORT), each with its own "
        "segments; default: one per CPU core the process may use (its affinity, within its "
        "container's CPU limit). `serve --workers N` overrides it.",
    )
    collector_id: str | None = Field(
        None,
        description="Names this collector's segments and lets it recover its own unsealed files "
        "after a crash; default <hostname>-<port>. Must differ between collectors sharing a "
        "landing zone.",
    )
    api_keys: tuple[ApiKey, ...] = Field(
        (), description="Accepted API keys; when empty, the collector only binds to loopback."
    )
    max_body_bytes: int = Field(
        4 << 20, ge=1, description="Largest request body on the wire (413)."
    )
    max_decoded_bytes: int = Field(
        32 << 20, ge=1, description="Largest body after gzip decoding (413); bounds zip bombs."
    )
    max_records: int = Field(10_000, ge=1, description="Most records in one /v1 request (413).")
    avro_check_seconds: float = Field(
        5.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="Time reading one Avro body in full before acknowledging it may take (in a "
        "decoder worker, off the event loop); past it the body is refused with 400.",
    )
    avro_check_memory_bytes: int = Field(
        1 << 30,
        gt=0,
        description="Memory the decoder worker reading one Avro body may use before the body "
        "is refused.",
    )
    max_firehose_records: int = Field(
        500, ge=1, description="Most records in one PutRecordBatch, as in Firehose."
    )
    segment_max_bytes: int = Field(64 << 20, ge=1, description="Seal an open segment at this size.")
    segment_max_age_seconds: float = Field(
        1.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="Seal an open segment this long after its first byte (freshness).",
    )
    fsync: bool = Field(
        True, description="fsync before acknowledging; off only for throwaway benchmarks."
    )
    group_commit_seconds: float = Field(
        0.002,
        ge=0,
        le=1,
        description="A source's writer starts a group commit (write + fsync) at most this "
        "often: requests arriving meanwhile share its fsync instead of paying one each.",
    )
    max_pending_bytes: int = Field(
        256 << 20, ge=1, description="Bytes received but not yet on disk before answering 503."
    )
    max_backlog_bytes: int = Field(
        8 << 30, ge=1, description="Sealed but unprocessed landing bytes before answering 503."
    )
    min_free_bytes: int = Field(
        1 << 30,
        ge=0,
        description="Free disk space under the landing zone below which to answer 503.",
    )
    retry_after_seconds: int = Field(
        2, ge=0, le=MAX_SPAN_SECONDS, description="Retry-After sent with every 503."
    )
    idempotency_ttl_seconds: float = Field(
        3600.0,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="How long a response is remembered for its Idempotency-Key.",
    )
    idempotency_max_keys: int = Field(
        100_000,
        ge=0,
        description="Most Idempotency-Keys remembered (least recently used go first).",
    )
    max_delivery_bytes: int = Field(
        64 << 20,
        ge=1,
        description="Largest Firehose HTTP endpoint delivery (/v1/firehose), before and after "
        "gzip; Firehose's own buffer maximum is 64 MiB.",
    )
    firehose_streams: dict[str, str] = Field(
        {
            "AdvertiseX-dev-impressions": "impressions",
            "AdvertiseX-dev-clicks": "clicks",
            "AdvertiseX-dev-bid_requests": "bids",
        },
        description="Firehose delivery stream name → source it lands in.",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="On SIGTERM, how long in-flight requests may take to finish.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="A request's headers must arrive within this time of its first byte (408).",
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="A request's body must arrive within this time of its headers (408).",
    )
    max_header_bytes: int = Field(
        64 << 10,
        ge=1024,
        description="Largest request line and headers of a request; more is answered 431 and "
        "the connection closed (the parser keeps them whole, and copies a long one per read).",
    )
    max_unfinished_requests: int = Field(
        256,
        ge=1,
        description="Connections still sending a request's headers or body at once; one more "
        "is answered 503 and closed (bounds slow clients).",
    )
    tracking: TrackingSettings = TrackingSettings()


class ConsoleKey(_Section):
    """One console / read-API key: only its SHA-256 is stored, with what it may do."""

    name: str = Field(..., description="Who holds the key (shown in the console, never the key).")
    sha256: str = Field(
        ...,
        pattern=r"^\s*[0-9a-fA-F]{64}\s*$",
        description="Hex SHA-256 of the key; `advertisex keygen --scope read` prints a new key "
        "and its hash.",
    )
    scope: Literal["read", "admin"] = Field(
        "read", description="read: every page and GET; admin: also quarantine replay."
    )


class ConsoleSettings(_Section):
    """The web console at ``/`` and the JSON read API at ``/api/v1`` (docs/console.md)."""

    enabled: bool = Field(
        True, description="Serve the console and read API beside the collector (`serve`, `up`)."
    )
    host: str = Field(
        "127.0.0.1",
        description="`advertisex console`: interface to bind; non-loopback requires console keys.",
    )
    _host_is_named = field_validator("host")(_named_host)
    port: int = Field(
        8081, ge=0, le=65535, description="`advertisex console`: TCP port to listen on."
    )
    keys: tuple[ConsoleKey, ...] = Field(
        (),
        description="Keys for the console and read API, separate from the ingest keys; needed "
        "whenever it listens beyond loopback.",
    )
    query_max_rows: int = Field(
        5_000, ge=1, description="Most rows a console or API query returns (the rest is cut)."
    )
    query_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="A console or API query running longer is stopped.",
    )
    query_max_bytes: int = Field(
        32 << 20,
        ge=1 << 20,
        description="Most bytes of rows a console or API query returns (the rest is cut; a "
        "first row larger than this is refused).",
    )
    query_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Console or API queries running at once over this data directory, in all "
        "the processes serving its console; one more waits up to a second, then is refused "
        "(503 queries_busy).",
    )
    query_memory_bytes: int = Field(
        2 << 30,
        ge=QUERY_WORKER_OVERHEAD_BYTES + QUERY_ENGINE_MIN_BYTES + (1 << 20),
        description="Memory all console and API queries running at once may use together, in "
        "all the processes serving this data directory's console: each of the "
        "query_concurrency queries gets an equal share (1 GiB by default) for its worker "
        "process (384 MiB), its answer (query_max_bytes) and DuckDB, which spills as much "
        "again as it has to disk under <data_dir>/spill; one that needs more is stopped "
        "(400 query_too_large). An idle query worker keeps its query's share, for the next "
        "query of its process, until a query of another process needs it (or for a minute "
        "at most): no more workers live at once than query_concurrency. At least "
        "query_concurrency × (384 MiB + query_max_bytes + 64 MiB): 960 MiB by default.",
    )
    refresh_seconds: int = Field(
        30, ge=1, le=MAX_SPAN_SECONDS, description="How often the overview page reloads itself."
    )
    session_hours: float = Field(
        12.0, gt=0, le=MAX_SPAN_HOURS, description="A console sign-in lasts this long."
    )

    @property
    def query_share_bytes(self) -> int:
        """What one query's worker process may hold: its share of ``query_memory_bytes``."""
        return self.query_memory_bytes // self.query_concurrency


class CorrelationSettings(_Section):
    """How clicks, conversions and bids are tied to impressions, and the marts kept from them."""

    click_window_seconds: int = Field(
        3600,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="A click without a usable impression_id matches the latest impression "
        "of the same user and campaign at most this long before it.",
    )
    impression_id_horizon_seconds: int = Field(
        86400,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="How far before a click the impression it names may lie to match exactly.",
    )
    click_through_window_seconds: int = Field(
        7 * 86400,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="A conversion is credited to clicks at most this long before it.",
    )
    view_through_window_seconds: int = Field(
        86400,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="Without clicks, to impressions at most this long before it (view-through).",
    )
    auction_window_seconds: int = Field(
        3600,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="An impression wins the bid request with its auction_id within this time.",
    )
    campaigns_file: Path | None = Field(
        None,
        description="CSV of per-campaign windows: campaign_id plus any of click_window_seconds, "
        "impression_id_horizon_seconds, click_through_window_seconds, view_through_window_seconds.",
    )
    update_marts: bool = Field(
        True, description="Bring the marts up to date after every processing run."
    )
    follow_marts_every_seconds: float = Field(
        60.0,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="process --follow: bring the marts up to date at most this often "
        "(0: after every pass that committed batches).",
    )


class MaintenanceSettings(_Section):
    """Lake upkeep: manifests merged as batches commit, and the maintenance task that
    compacts small files, expires snapshots and removes files no snapshot needs
    (``advertisex maintain``; ``up`` and ``process --follow`` run it on a schedule)."""

    schedule: bool = Field(
        True, description="Run maintenance from `up` and `process --follow` every `every_seconds`."
    )
    every_seconds: float = Field(
        600.0,
        ge=60,
        le=7 * 86400,
        description="Seconds between scheduled maintenance runs (the first one runs this long "
        "after the follower starts).",
    )
    manifest_merge: bool = Field(
        True,
        description="Merge manifests as commits append (Iceberg `commit.manifest-merge.enabled`), "
        "so planning a scan reads a bounded number of manifests however many batches came before.",
    )
    manifest_min_count_to_merge: int = Field(
        100,
        ge=2,
        le=10_000,
        description="Merge once this many small manifests have piled up "
        "(Iceberg `commit.manifest.min-count-to-merge`).",
    )
    manifest_target_bytes: int = Field(
        8 << 20,
        ge=64 << 10,
        le=1 << 30,
        description="Size merged manifests aim for (Iceberg `commit.manifest.target-size-bytes`).",
    )
    target_file_bytes: int = Field(
        128 << 20,
        ge=1 << 20,
        le=4 << 30,
        description="Compaction rewrites a partition's small data files into files near this size.",
    )
    compaction_group_bytes: int = Field(
        256 << 20,
        ge=1 << 20,
        le=1 << 40,
        description="Most bytes of rows, decoded, one compaction group holds: a partition's "
        "small files are packed into groups within this and target_file_bytes (a heavy day "
        "then compacts into more, smaller files). `maintain` holds about three times this "
        "while it sorts and writes a group.",
    )
    min_input_files: int = Field(
        5,
        ge=2,
        le=100_000,
        description="Compact a partition once it has at least this many small files "
        "(files under 3/4 of target_file_bytes).",
    )
    snapshot_max_age_hours: float = Field(
        24.0,
        ge=0,
        le=24 * 3650,
        description="Time travel kept: snapshots older than this are expired (and the files only "
        "they referenced deleted)…",
    )
    min_snapshots: int = Field(
        10, ge=1, le=100_000, description="…but each table keeps at least its last this many."
    )
    time_travel_step_minutes: float = Field(
        5.0,
        ge=0,
        le=1440,
        description="Within that age, snapshots are thinned to the newest of each step (time "
        "travel to any instant, to within a step); in the last hour to the newest of each "
        "minute, in the last minute of each 5 seconds. Bounds the snapshots a table keeps "
        "(and its metadata.json) at min_snapshots + 72 + age/step, however often batches "
        "commit; 0 keeps every one.",
    )
    expire_every_commits: int = Field(
        20,
        ge=0,
        le=100_000,
        description="Between maintenance runs, every this many commits of a table thin its "
        "snapshots as maintenance would (metadata only: files wait for maintenance), so what "
        "a commit rewrites stays bounded however long maintenance is away; 0: only maintenance.",
    )
    metadata_versions: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Previous metadata.json versions kept per table (older ones are deleted as "
        "tables commit; Iceberg `write.metadata.previous-versions-max`).",
    )
    orphan_min_age_minutes: float = Field(
        1440.0,
        ge=10,
        le=525_600,
        description="Files under a table that no snapshot references are deleted only once "
        "older than this, so a commit still in flight (a Spark batch) is never robbed.",
    )
    orphan_metadata_min_age_minutes: float = Field(
        10.0,
        ge=5,
        le=525_600,
        description="…except manifests and manifest lists (a commit writes them moments before "
        "it publishes them): those of snapshots thinned between maintenance runs go this soon.",
    )


class RetentionSettings(_Section):
    """How long data is kept; enforced by maintenance (scheduled and `advertisex maintain`).
    Nothing expires unless configured here."""

    days: dict[str, int] = Field(
        {},
        description="Table or namespace → days kept, by the table's day partition (event day; "
        'ingest day for curated.quarantine), e.g. {curated = 400, "curated.quarantine" = 30, '
        "marts = 800}; the most specific name wins. Whole days older than that are deleted. "
        "ops.batches, ops.erasures, marts.state and dims.* are always kept.",
    )
    landing_days: int | None = Field(
        None,
        ge=1,
        le=MAX_SPAN_DAYS,
        description="Processed landing segments older than this many landing days are deleted "
        "(after archiving, when `archive` is set); pending ones are never touched.",
    )
    archive: str | None = Field(
        None,
        description="Folder or URL (s3://bucket/prefix, gs://…, abfs://…) that expiring "
        "partitions and landing segments are copied to before deletion — the Glacier step.",
    )


class ChannelSettings(_Section):
    """One alert channel: where notifications of the severities routed to it go."""

    kind: str = Field("log", description="log, webhook (Alertmanager JSON), slack, email or sns.")
    url: SecretStr | None = Field(
        None, description="webhook / slack: the URL to POST to (a secret: it often holds a token)."
    )
    headers: dict[str, str] = Field({}, description="webhook: extra HTTP headers.")
    smtp_host: str = Field("localhost", description="email: SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="email: SMTP port.")
    smtp_starttls: bool = Field(False, description="email: upgrade the connection with STARTTLS.")
    smtp_user: str | None = Field(None, description="email: login user, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="email: login password.")
    mail_from: str = Field("advertisex@localhost", description="email: From address.")
    mail_to: tuple[str, ...] = Field((), description="email: recipients.")
    topic_arn: str | None = Field(None, description="sns: topic to publish to (extra `aws`).")
    region: str | None = Field(None, description="sns: AWS region; default from the environment.")
    timeout_seconds: float = Field(
        10.0, gt=0, le=MAX_SPAN_SECONDS, description="Give up one delivery attempt after this."
    )


class MonitorSettings(_Section):
    """Monitors, alert lifecycle and notification channels (``advertisex monitor``)."""

    interval_seconds: float = Field(
        60.0, gt=0, le=MAX_SPAN_SECONDS, description="Seconds between evaluations."
    )
    disabled: tuple[str, ...] = Field(
        (),
        description="Monitors to skip: freshness, delay, processor, volume, rates, set_aside, "
        "lake_files, business, discrepancy, schema.",
    )
    lookback_days: int = Field(
        8, ge=1, le=MAX_SPAN_DAYS, description="History read for baselines (days)."
    )
    settle_seconds: int = Field(
        900,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="Event-level checks judge an hour this long after it ended (late data).",
    )
    freshness_seconds: dict[str, Annotated[int, Field(ge=1, le=MAX_SPAN_SECONDS)]] = Field(
        {"impressions": 900, "clicks": 1800, "bids": 900},
        description="Expected longest gap between two landings, per source.",
    )
    delay_max_seconds: int = Field(
        900,
        ge=1,
        le=MAX_SPAN_SECONDS,
        description="Bound on ingest-to-queryable time (landing to committed), per source.",
    )
    event_lag_max_seconds: int = Field(
        4 * 3600,
        ge=1,
        le=MAX_SPAN_SECONDS,
        description="Bound on the hourly p95 of ingest time minus event time.",
    )
    processor_failing_seconds: int = Field(
        120,
        ge=0,
        le=MAX_SPAN_SECONDS,
        description="A running follower (process --follow, up) whose passes have all failed "
        "for this long while segments are pending raises ProcessorFailing.",
    )
    processor_stuck_seconds: int = Field(
        900,
        ge=1,
        le=MAX_SPAN_SECONDS,
        description="A running follower that has neither ended a pass nor committed a batch "
        "for this long (beyond its own longest wait) raises ProcessorStuck: a hung pass.",
    )
    marts_behind_seconds: int = Field(
        900,
        ge=1,
        le=MAX_SPAN_SECONDS,
        description="Marts kept current (correlation.update_marts) that have not folded in a "
        "batch committed this long ago raise MartsBehind: reports answer from older data.",
    )
    volume_sensitivity: float = Field(
        5.0,
        gt=0,
        description="Robust z (deviation / 1.4826·MAD, at least Poisson noise) that is anomalous.",
    )
    volume_min_change: float = Field(
        0.3, ge=0, description="…and the relative change from the seasonal median must exceed this."
    )
    volume_min_history_days: int = Field(
        3,
        ge=1,
        le=MAX_SPAN_DAYS,
        description="Previous days with the same hour needed before volume is judged.",
    )
    volume_min_expected: int = Field(
        200, ge=0, description="Judge volume only where the seasonal median has this many records."
    )
    volume_top_campaigns: int = Field(10, ge=0, description="Largest campaigns watched one by one.")
    rate_window_seconds: int = Field(
        900, ge=1, le=MAX_SPAN_SECONDS, description="Window of batches the rate checks sum."
    )
    rate_min_records: int = Field(500, ge=0, description="Judge rates only over this many records.")
    rate_max: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        {"quarantine": 0.02, "duplicate": 0.05, "conflict": 0.01, "filtered": 0.15},
        description="Upper bound of each rate (share of records in).",
    )
    rate_jump_factor: float = Field(
        4.0, ge=1, description="A rate this many times its median over the previous day is a jump…"
    )
    rate_jump_min: float = Field(
        0.01, ge=0, le=1, description="…when it also rose by this much (absolute)."
    )
    business_window_hours: int = Field(
        6, ge=1, le=MAX_SPAN_HOURS, description="Hours of CTR / conversion rate compared."
    )
    business_min_change: float = Field(
        0.4, ge=0, description="Relative change in CTR or conversion rate that is a shift."
    )
    business_z: float = Field(5.0, gt=0, description="…and its z-score against the baseline.")
    business_min_events: int = Field(
        1000, ge=0, description="Impressions (CTR) or clicks (CVR) needed in the window."
    )
    pacing_bounds: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]] = Field(
        (0.5, 1.5), description="Spend today / expected by now outside this is off pace."
    )
    discrepancy_max: dict[str, Annotated[float, Field(ge=0)]] = Field(
        {
            "orphan_clicks": 0.05,
            "unattributed_conversions": 0.25,
            "impressions_without_bid": 0.05,
            "won_bids_without_impression": 0.05,
            "source_ratio": 0.5,
        },
        description="Bounds of each discrepancy share (source_ratio: relative change of "
        "bids and clicks per impression against the seasonal median).",
    )
    discrepancy_min_events: int = Field(
        200, ge=0, description="Judge a share over this many events."
    )
    schema_min_rows: int = Field(
        500, ge=0, description="Rows of an hour needed to call a field missing."
    )
    for_seconds: dict[str, Annotated[int, Field(ge=0, le=MAX_SPAN_SECONDS)]] = Field(
        {}, description="Override how long an alert stays pending before firing, by alertname."
    )
    severity: dict[str, Literal["critical", "warning", "info"]] = Field(
        {}, description="Override severities, by alertname: critical, warning or info."
    )
    group_by: tuple[str, ...] = Field(
        ("source",), description="Alerts sharing these labels are one incident, one message."
    )
    repeat_interval_seconds: int = Field(
        4 * 3600,
        ge=1,
        le=MAX_SPAN_SECONDS,
        description="Re-send a still-firing incident this often.",
    )
    send_resolved: bool = Field(True, description="Tell channels when an incident is resolved.")
    routes: dict[str, tuple[str, ...]] = Field(
        {"critical": ("log",), "warning": ("log",), "info": ("log",)},
        description="Severity → channel names.",
    )
    channels: dict[str, ChannelSettings] = Field(
        {"log": ChannelSettings()}, description="Channel name → where and how to send."
    )
    retry_base_seconds: float = Field(
        2.0, gt=0, le=MAX_SPAN_SECONDS, description="First retry delay of a failed delivery."
    )
    retry_max_seconds: float = Field(
        300.0, gt=0, le=MAX_SPAN_SECONDS, description="Longest delay between retries."
    )
    retry_max_age_seconds: float = Field(
        86400.0,
        gt=0,
        le=MAX_SPAN_SECONDS,
        description="Give up on a message this old (it is kept, marked failed).",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve monitor and processor metrics on this port (Prometheus).",
    )

    @field_validator("pacing_bounds")
    @classmethod
    def _pacing_bounds_in_order(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if bounds[0] > bounds[1]:
            raise ValueError("the lower bound is above the upper")
        return bounds


class ScaleSettings(_Section):
    """Past one machine: the Spark engine, object storage for the landing zone and lake.

    Object-store URLs (``s3://bucket/prefix``, ``gs://…``, ``abfs://…``) go in
    ``scale.landing`` and ``lake.warehouse``. S3 credentials come from the standard AWS
    chain (environment, profile, instance role) unless given here.
    """

    engine: Literal["embedded", "spark"] = Field(
        "embedded", description="Processing engine: embedded (in-process) or spark (PySpark)."
    )
    spark_master: str = Field(
        "local[*]",
        description="Spark master URL for --engine spark: local[N], spark://host:7077, yarn, "
        "k8s://…; ignored when the processor is started by spark-submit.",
    )
    spark_conf: dict[str, str] = Field(
        {}, description="Extra Spark properties (spark.executor.memory, …) for --engine spark."
    )
    landing: str | None = Field(
        None,
        description="Landing zone as a URL (s3://bucket/landing) or folder; "
        "default: <data_dir>/landing.",
    )
    s3_endpoint: str | None = Field(
        None,
        description="S3-compatible endpoint URL (MinIO, Ceph, a test server); default: AWS.",
    )
    s3_region: str | None = Field(None, description="S3 region; default from the AWS chain.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key id; default from the AWS chain."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key; default from the AWS chain."
    )
    s3_session_token: SecretStr | None = Field(
        None, description="S3 session token for temporary credentials."
    )


class Settings(Layout, BaseModel):
    """Everything AdvertiseX reads from its environment, one section per stage
    (:func:`load_settings` reads it; :class:`Layout` derives the locations under data_dir)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    data_dir: Path = Field(
        DEFAULT_DATA_DIR, description="Root of landing zone, warehouse and catalog."
    )
    lake: LakeSettings = LakeSettings()
    processor: ProcessorSettings = ProcessorSettings()
    collector: CollectorSettings = CollectorSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    console: ConsoleSettings = ConsoleSettings()
    monitor: MonitorSettings = MonitorSettings()
    scale: ScaleSettings = ScaleSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    retention: RetentionSettings = RetentionSettings()

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_is_named(cls, value: Any) -> Any:
        # Path("") is the current folder: ADVERTISEX_DATA_DIR="$UNSET" made every verb, even
        # `status`, write a catalog, a warehouse and a monitor folder wherever it was run.
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "an empty path is the current folder; name the folder the data lives in"
            )
        return value

    @model_validator(mode="after")
    def _retention_keeps_what_dedupe_and_attribution_need(self) -> Settings:
        _check_retention(self)
        return self

    @model_validator(mode="after")
    def _each_console_query_has_room(self) -> Settings:
        _check_query_memory(self.console)
        return self


if _PLUGINS_SETTING is None:
    del os.environ["PYDANTIC_DISABLE_PLUGINS"]
else:
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = _PLUGINS_SETTING


# Tables whose rows are kept whatever retention says: accounting, audit, state, dimensions.
KEPT_TABLES = ("ops.batches", "ops.erasures", "ops.maintenance", "marts.state")
# Tables that dedupe and attribution look back into: their retention has a floor.
_LOOKED_BACK = ("curated.", "marts.attributed_", "marts.campaign_")


def retention_days(settings: Settings, table: str) -> int | None:
    """Days of ``table`` kept (None: forever): its own entry, else its namespace's."""
    if table in KEPT_TABLES or table.startswith("dims."):
        return None
    days = settings.retention.days
    return days.get(table, days.get(table.split(".", 1)[0]))


def retention_floor_days(settings: Settings) -> tuple[int, str]:
    """The shortest retention dedupe and attribution allow, in days, and what sets it."""
    c = settings.correlation
    windows = {
        "the dedupe horizon (processor.dedupe_horizon_days)": settings.processor.dedupe_horizon_days,
        "the click-through window (correlation.click_through_window_seconds)": -(
            -c.click_through_window_seconds // 86400
        ),
        "the view-through window (correlation.view_through_window_seconds)": -(
            -c.view_through_window_seconds // 86400
        ),
        "the click window (correlation.click_window_seconds)": -(-c.click_window_seconds // 86400),
    }
    what = max(windows, key=lambda k: windows[k])
    return windows[what], what


def _check_query_memory(console: ConsoleSettings) -> None:
    """Each console query's share of ``query_memory_bytes`` holds its worker process, its
    answer and DuckDB's budget: a share too small for them would stop every query."""
    needed = QUERY_WORKER_OVERHEAD_BYTES + console.query_max_bytes + QUERY_ENGINE_MIN_BYTES
    if console.query_share_bytes < needed:
        raise ValueError(
            f"console.query_memory_bytes ({console.query_memory_bytes:,}) is shared by "
            f"console.query_concurrency ({console.query_concurrency}) queries, and each needs "
            f"at least {needed:,} bytes (its worker process's "
            f"{QUERY_WORKER_OVERHEAD_BYTES >> 20} MiB, console.query_max_bytes, "
            f"{QUERY_ENGINE_MIN_BYTES >> 20} MiB for the engine): raise "
            f"console.query_memory_bytes to {needed * console.query_concurrency:,} or more, "
            "or lower console.query_concurrency or console.query_max_bytes"
        )


def _check_retention(settings: Settings) -> None:
    """Refuse retention that would break dedupe or attribution, or name unknown tables."""
    floor, what = retention_floor_days(settings)
    if settings.retention.days:  # the schemas (and Arrow) load only when there is any to check
        from advertisex.model.schemas import TABLES

        namespaces = {name.split(".", 1)[0] for name in TABLES}
    for name, days in settings.retention.days.items():
        if name not in TABLES and name not in namespaces:
            raise ValueError(
                f"retention.days names {name!r}, which is no table or namespace "
                f"(tables: {', '.join(sorted(TABLES))})"
            )
        if name in KEPT_TABLES or name.startswith("dims") or name == "marts.state":
            raise ValueError(f"retention.days: {name} is always kept (accounting, audit or state)")
        if name in TABLES and TABLES[name].partition_by_day is None:
            raise ValueError(f"retention.days: {name} has no day partition to expire by")
        if days < 1:
            raise ValueError(f"retention.days: {name} = {days}; keep at least 1 day")
        looked_back = name.startswith(_LOOKED_BACK) or name in ("curated", "marts")
        if looked_back and name != "curated.quarantine" and days < floor:
            raise ValueError(
                f"retention.days: {name} = {days} days is shorter than {what}, {floor} days: "
                "it would break dedupe or attribution; keep at least that long"
            )
    landing = settings.retention.landing_days
    if landing is not None and landing < settings.processor.dedupe_horizon_days:
        raise ValueError(
            f"retention.landing_days = {landing} is shorter than the dedupe horizon "
            f"(processor.dedupe_horizon_days = {settings.processor.dedupe_horizon_days}): a "
            "replay within the horizon needs its segments; keep at least that long"
        )


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a bad file or variable becomes a :class:`ConfigError` that says where.

    Unknown ``ADVERTISEX_*`` variables and unknown keys in the file are ignored with a
    :class:`ConfigWarning` that names the closest known setting.
    """
    path = config_file()
    if path is not None and "ADVERTISEX_CONFIG" in os.environ and not path.is_file():
        raise ConfigError(
            f"ADVERTISEX_CONFIG names {str(path)!r}, which is not a file",
            hint="point ADVERTISEX_CONFIG at your advertisex.toml, unset it to read "
            "./advertisex.toml, or set it empty to read no file",
        )
    try:
        # Keys no setting has are left out here; unknown_settings() warns about them instead.
        file = _split_known(file_values(path), Settings, [])[0]
        env = _split_known(environment_values(), Settings, [])[0]
        settings = Settings.model_validate(_merged(_merged(file, env), overrides))
    except ValidationError as error:
        where = functools.partial(_source_of, file=file, env=env, path=path)
        problems = "; ".join(_problem(e, where) for e in error.errors())
        raise ConfigError(
            f"invalid configuration: {problems}",
            hint=f"fix {path or 'the setting'} or the environment variable "
            "(`advertisex config` shows every setting in force and where it comes from)",
        ) from error
    except (OSError, UnicodeDecodeError) as error:  # the file itself cannot be read
        what = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise ConfigError(
            f"cannot read configuration {path or ''}: {what}",
            hint="save it as UTF-8 text this user can read, or unset ADVERTISEX_CONFIG",
        ) from error
    except Exception as error:  # e.g. a TOML syntax error
        raise ConfigError(
            f"cannot read configuration {path or ''}: {error}",
            hint="fix the TOML syntax of that file, or unset ADVERTISEX_CONFIG",
        ) from error
    for message in unknown_settings():
        warnings.warn(message, ConfigWarning, stacklevel=2)
    return settings


# ---------------------------------------------------------------------- where settings come from
class ConfigWarning(UserWarning):
    """A setting that is ignored: an unknown ``ADVERTISEX_*`` variable or key in the file."""


def env_name(path: list[str]) -> str:
    """``["processor", "batch_max_bytes"]`` → ``ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES``."""
    return "ADVERTISEX_" + "__".join(path).upper()


def file_values(path: Path | None) -> dict[str, Any]:
    """The configuration file's tables and keys as they are written ({} without a file)."""
    if path is None or not path.is_file():
        return {}
    import tomllib

    with path.open("rb") as handle:
        return tomllib.load(handle)


def environment_values(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``ADVERTISEX_*`` variables as nested values: names lower-cased and split at
    ``__`` (``ADVERTISEX_MONITOR__RATE_MAX__QUARANTINE=0.2`` → monitor.rate_max.quarantine);
    the value of a setting that holds a mapping, list or section is read as JSON.

    >>> environment_values({"ADVERTISEX_COLLECTOR__PORT": "9000", "ADVERTISEX_SCALE__SPARK_CONF": '{"a": "b"}'})
    {'collector': {'port': '9000'}, 'scale': {'spark_conf': {'a': 'b'}}}
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.upper().startswith("ADVERTISEX_") or name.upper() in OTHER_VARIABLES:
            continue
        parts = name[len("ADVERTISEX_") :].lower().split("__")
        parsed: Any = value
        if _is_structured(_annotation_at(parts)):
            with contextlib.suppress(ValueError):  # not JSON: validation names the variable
                parsed = from_json(value)
        values = _merged(values, _nest(parts, parsed))
    return values


def _nest(parts: list[str], value: Any) -> dict[str, Any]:
    for part in reversed(parts):
        value = {part: value}
    return value  # type: ignore[no-any-return]


def _merged(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """``low`` with ``high``'s values over it, mappings merged key by key."""
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            value = _merged(merged[key], value)
        merged[key] = value
    return merged


def _annotation_at(parts: list[str]) -> Any:
    """The type a setting path holds (through sections, mapping keys and tuple positions);
    None for a path no setting has."""
    annotation: Any = Settings
    for part in parts:
        annotation = _unwrapped(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part)
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) is dict and len(get_args(annotation)) == 2:
            annotation = get_args(annotation)[1]
        else:
            return None
    return annotation


def _unwrapped(annotation: Any) -> Any:
    """``Annotated[X, …]`` → X, ``X | None`` → X."""
    if get_origin(annotation) is Annotated:
        return _unwrapped(get_args(annotation)[0])
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _unwrapped(args[0])
    return annotation


def _is_structured(annotation: Any) -> bool:
    """Whether a setting holds a mapping, list, tuple or section (given as JSON)."""
    annotation = _unwrapped(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return get_origin(annotation) in (dict, list, tuple, set, frozenset)


def _nested_model(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """How a field holds sections: ``("section", M)``, ``("mapping", M)`` for dict[str, M],
    ``("sequence", M)`` for tuple[M, ...]; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section", annotation
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2 and _nested_model(args[1]):
        return "mapping", args[1]
    if get_origin(annotation) is tuple and args and _nested_model(args[0]):
        return "sequence", args[0]
    return None


def _split_known(
    data: dict[str, Any], model: type[BaseModel], path: list[str]
) -> tuple[dict[str, Any], list[tuple[list[str], str | None]]]:
    """``data`` without unknown keys, and each unknown key's path with the closest known one."""
    kept: dict[str, Any] = {}
    unknown: list[tuple[list[str], str | None]] = []
    for key, value in data.items():
        info = model.model_fields.get(key)
        if info is None:
            unknown.append(([*path, key], _closest(key, model, path)))
            continue
        nested = _nested_model(info.annotation)
        if nested and nested[0] == "section" and isinstance(value, dict):
            value, more = _split_known(value, nested[1], [*path, key])
            unknown += more
        elif nested and nested[0] == "mapping" and isinstance(value, dict):
            items = {
                k: _split_known(v, nested[1], [*path, key, k]) if isinstance(v, dict) else (v, [])
                for k, v in value.items()
            }
            value = {k: v for k, (v, _) in items.items()}
            unknown += [u for _, more in items.values() for u in more]
        elif nested and nested[0] == "sequence" and isinstance(value, list | tuple):
            listed = [
                _split_known(v, nested[1], [*path, key, str(i)]) if isinstance(v, dict) else (v, [])
                for i, v in enumerate(value)
            ]
            value = [v for v, _ in listed]
            unknown += [u for _, more in listed for u in more]
        kept[key] = value
    return kept, unknown


def _closest(key: str, model: type[BaseModel], path: list[str]) -> str | None:
    """The known setting ``key`` most likely meant: a near name beside it, else the same
    name in another section, else a near name anywhere."""
    near = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
    if near:
        return ".".join([*path, near[0]])
    everything = [name for name, _ in _leaves(Settings, [])]
    same = [name for name in everything if name.rsplit(".", 1)[-1] == key]
    if same:
        return same[0]
    near = difflib.get_close_matches(".".join([*path, key]), everything, n=1, cutoff=0.6)
    return near[0] if near else None


def _leaves(model: type[BaseModel], path: list[str]) -> Iterator[tuple[str, FieldInfo]]:
    """Every setting that holds a value (sections flattened), as dotted names."""
    for name, info in model.model_fields.items():
        nested = _nested_model(info.annotation)
        if nested and nested[0] == "section":
            yield from _leaves(nested[1], [*path, name])
        else:
            yield ".".join([*path, name]), info


def _known_env_path(parts: list[str], model: type[BaseModel]) -> bool:
    info = model.model_fields.get(parts[0])
    if info is None:
        return False
    if len(parts) == 1:
        return True
    nested = _nested_model(info.annotation)
    if nested and nested[0] == "section":
        return _known_env_path(parts[1:], nested[1])
    if nested and nested[0] == "mapping":
        return len(parts) == 2 or _known_env_path(parts[2:], nested[1])
    return get_origin(info.annotation) is dict and len(parts) == 2  # one key of a mapping


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per unknown ``ADVERTISEX_*`` variable and unknown key in the file."""
    environ = os.environ if environ is None else environ
    messages = []
    for name in sorted(environ):
        if not name.upper().startswith("ADVERTISEX_") or name.upper() in OTHER_VARIABLES:
            continue
        parts = name[len("ADVERTISEX_") :].lower().split("__")
        if _known_env_path(parts, Settings):
            continue
        key = parts[-1]
        model: type[BaseModel] = Settings
        for part in parts[:-1]:  # the deepest known section, for a near name beside it
            nested = _nested_model(getattr(model.model_fields.get(part), "annotation", None))
            if not nested or nested[0] != "section":
                break
            model = nested[1]
        guess = _closest(key, model, parts[: len(parts) - 1] if model is not Settings else [])
        hint = f"; did you mean {env_name(guess.split('.'))}?" if guess else ""
        messages.append(f"unknown environment variable {name} is ignored{hint}")
    path = config_file()
    if path is not None and path.is_file():
        try:
            data = file_values(path)
        except Exception:  # a syntax error: load_settings() has already said so
            data = {}
        for parts, guess in _split_known(data, Settings, [])[1]:
            hint = f"; did you mean {guess}?" if guess else ""
            messages.append(f"unknown key {'.'.join(parts)} in {path} is ignored{hint}")
    return messages


@dataclass(frozen=True)
class SettingInForce:
    """One setting as ``advertisex config`` shows it (secrets masked)."""

    name: str
    value: Any
    origin: str  # default, file, environment or argument
    source: str  # where exactly: the file's path or the variable's name


def settings_in_force(settings: Settings, **overrides: Any) -> list[SettingInForce]:
    """Every setting of ``settings`` with the source that decided its value."""
    env = _split_known(environment_values(), Settings, [])[0]
    path = config_file()
    toml = _split_known(file_values(path), Settings, [])[0]
    values = settings.model_dump(mode="json")  # SecretStr → "**********"
    rows = []
    for name, _ in _leaves(Settings, []):
        parts = name.split(".")
        if _holds(overrides, parts):
            origin, source = "argument", "advertisex.open(…)"
        elif _holds(env, parts):
            origin, source = "environment", env_name(parts)
        elif _holds(toml, parts):
            origin, source = "file", str(path)
        else:
            origin, source = "default", ""
        value: Any = values
        for part in parts:
            value = value[part]
        rows.append(SettingInForce(name, value, origin, source))
    return rows


def _holds(data: Mapping[str, Any], parts: list[str]) -> bool:
    for part in parts:
        if not isinstance(data, Mapping) or part not in data:
            return False
        data = data[part]
    return True


# ---------------------------------------------------------------------- error messages
def _source_of(
    names: list[str], file: dict[str, Any], env: dict[str, Any], path: Path | None
) -> str | None:
    """Where the setting ``names`` was given: its environment variable when that is set,
    else the file when it holds it; None when neither does (a default, or an argument)."""
    if _holds(env, names):
        return f"environment variable {env_name(names)}"
    if path is not None and _holds(file, names):
        return f"in {path}"
    return None


def _problem(error: Any, where: Callable[[list[str]], str | None] | None = None) -> str:
    """One validation error as the setting, the value, what is allowed and where it was
    given (``where``: its environment variable or the file; else the variable to set)."""
    loc = [str(p) for p in error["loc"]]
    if not loc:  # a check across sections (a model validator) says it all itself
        return str(error["msg"]).removeprefix("Value error, ")
    names = [p for p in loc if not p.isdigit()]  # tuple positions have no variable of their own
    allowed = _allowed(loc)
    got = error.get("input")
    shown = f" = {got}" if isinstance(got, str | int | float) and not isinstance(got, bool) else ""
    if isinstance(got, str) and not got.strip():
        shown = f" = {got!r}"  # an empty value, seen as one
    if allowed and error["type"] in RANGE_ERRORS:
        what = f"{'.'.join(loc)}{shown} is out of range; allowed: {allowed}"
    else:
        said = str(error["msg"]).removeprefix("Value error, ")  # pydantic's prefix
        what = f"{'.'.join(loc) or 'settings'}{shown}: {said}"
    if not names:
        return what
    given = where(names) if where is not None else f"environment variable {env_name(names)}"
    return f"{what} ({given})" if given else what


RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _allowed(loc: list[str]) -> str | None:
    """The range a setting allows, in words (``0 to 3650``, ``at least 1``), from its Field."""
    model: Any = Settings
    metadata: list[Any] = []
    annotation: Any = None
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            info = model.model_fields.get(part)
            if info is None:
                return None
            metadata, annotation = list(info.metadata), info.annotation
        else:
            args = get_args(annotation)
            if get_origin(annotation) is dict and len(args) == 2:
                annotation = args[1]
            elif get_origin(annotation) is tuple and part.isdigit() and int(part) < len(args):
                annotation = args[int(part)]
            else:
                return None
            metadata = [
                m
                for arg in getattr(annotation, "__metadata__", ())
                for m in getattr(arg, "metadata", [arg])
            ]
        nested = _nested_model(annotation)
        model = nested[1] if nested and nested[0] == "section" else annotation
    bounds = {
        k: getattr(m, k)
        for m in metadata
        for k in ("ge", "gt", "le", "lt")
        if getattr(m, k, None) is not None
    }
    low = (
        f"{bounds['ge']}"
        if "ge" in bounds
        else (f"more than {bounds['gt']}" if "gt" in bounds else None)
    )
    high = (
        f"{bounds['le']}"
        if "le" in bounds
        else (f"less than {bounds['lt']}" if "lt" in bounds else None)
    )
    if low and high:
        return f"{low} to {high}"
    if low:
        return f"at least {low}" if "ge" in bounds else low
    if high:
        return f"at most {high}" if "le" in bounds else high
    return None


def markdown() -> str:
    """Every setting with its default, environment variable and description (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `advertisex/config.py` by `python -m advertisex.config`; do not edit.",
        "",
        "Settings come from `advertisex.toml` in the working directory (or the file named by",
        "`ADVERTISEX_CONFIG`, which must exist), overridden by environment variables. Sections",
        "are TOML tables (`[processor]`); nested variables join names with `__`. A value out of",
        "its allowed range stops every command that reads the configuration with a message",
        "naming the setting and its variable; an unknown `ADVERTISEX_*` variable or file key",
        "is ignored with a warning that names the closest known setting. The questions",
        "(`query`, `report`) read `data_dir` and `[lake]` only, and the other sections when",
        "they need one (a `raw.*` query: `[processor]`'s limits): the whole configuration is",
        "checked then. `advertisex config` prints every setting in force and where its value",
        "came from (default, file or environment), secrets masked: one table whose values,",
        "then origins, then names go on over the next lines of their cells when the terminal",
        "is too narrow for them (each printed whole, broken after a space, else after a `.`,",
        "`/`, `,` or `:`, else after a `_` or `-`; one block per setting below 70 columns),",
        "so that each value stays beside its origin. `--format json` gives the origin and",
        "its source apart.",
        "",
        "| setting | environment variable | default | allowed | meaning |",
        "|---|---|---|---|---|",
    ]

    def rows(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, _Section):
                rows(annotation, f"{prefix}{name}.")
                continue
            key = f"{prefix}{name}"
            env = "ADVERTISEX_" + key.replace(".", "__").upper()
            default = "" if info.default is None else f"`{info.default}`"
            allowed = _allowed(key.split(".")) or ""
            lines.append(
                f"| `{key}` | `{env}` | {default} | {allowed} | {info.description or ''} |"
            )

    rows(Settings, "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
