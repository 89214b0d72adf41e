"""Configuration is data: frozen pydantic-settings models, one section per stage.

Sources, lowest to highest precedence: defaults here → ``advertisex.toml`` in the
working directory (or the file named by ``ADVERTISEX_CONFIG``) → ``ADVERTISEX_*``
environment variables (nested with ``__``, e.g. ``ADVERTISEX_PROCESSOR__BATCH_MAX_RECORDS``)
→ keyword overrides passed to :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from advertisex.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LakeSettings(_Section):
    """Where the tables live and which catalog tracks them."""

    catalog_uri: str | None = Field(
        None,
        description="SQLAlchemy URL of the Iceberg SQL catalog; default: a SQLite file "
        "under the data directory. A PostgreSQL URL gives a shared catalog.",
    )
    catalog_name: str = Field(
        "advertisex", description="Name of the catalog inside the SQL catalog DB."
    )
    warehouse: str | None = Field(
        None, description="Root folder or URL of table data; default: <data_dir>/warehouse."
    )


class ProcessorSettings(_Section):
    """How landing segments become curated rows."""

    batch_max_records: int = Field(
        5_000_000, description="Upper bound of records decoded into one batch (bounds memory)."
    )
    batch_max_bytes: int = Field(
        1 << 30, description="Upper bound of landing bytes read into one batch."
    )
    dedupe_horizon_days: int = Field(
        7, description="How far back (by event day) a repeat of an event id is recognised."
    )
    future_skew_seconds: int = Field(
        300, description="Event times further than this in the future are quarantined."
    )
    max_event_age_days: int | None = Field(
        None,
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
        ("impressions", "clicks", "bids"), description="Sources this key may send."
    )


class CollectorSettings(_Section):
    """The HTTP collector (``advertisex serve``): limits, durability, access."""

    host: str = Field("127.0.0.1", description="Interface to bind; non-loopback requires API keys.")
    port: int = Field(8080, description="TCP port to listen on.")
    collector_id: str | None = Field(
        None,
        description="Names this collector's segments and lets it recover its own unsealed files "
        "after a crash; default <hostname>-<port>. Must differ between collectors sharing a "
        "landing zone.",
    )
    api_keys: tuple[ApiKey, ...] = Field(
        (), description="Accepted API keys; when empty, the collector only binds to loopback."
    )
    max_body_bytes: int = Field(4 << 20, description="Largest request body on the wire (413).")
    max_decoded_bytes: int = Field(
        32 << 20, description="Largest body after gzip decoding (413); bounds zip bombs."
    )
    max_records: int = Field(10_000, description="Most records in one /v1 request (413).")
    max_firehose_records: int = Field(
        500, description="Most records in one PutRecordBatch, as in Firehose."
    )
    segment_max_bytes: int = Field(64 << 20, description="Seal an open segment at this size.")
    segment_max_age_seconds: float = Field(
        1.0, description="Seal an open segment this long after its first byte (freshness)."
    )
    fsync: bool = Field(
        True, description="fsync before acknowledging; off only for throwaway benchmarks."
    )
    max_pending_bytes: int = Field(
        256 << 20, description="Bytes received but not yet on disk before answering 503."
    )
    max_backlog_bytes: int = Field(
        8 << 30, description="Sealed but unprocessed landing bytes before answering 503."
    )
    min_free_bytes: int = Field(
        1 << 30, description="Free disk space under the landing zone below which to answer 503."
    )
    retry_after_seconds: int = Field(2, description="Retry-After sent with every 503.")
    idempotency_ttl_seconds: float = Field(
        3600.0, description="How long a response is remembered for its Idempotency-Key."
    )
    idempotency_max_keys: int = Field(
        100_000, description="Most Idempotency-Keys remembered (least recently used go first)."
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
        10.0, description="On SIGTERM, how long in-flight requests may take to finish."
    )


class CorrelationSettings(_Section):
    """How clicks, conversions and bids are tied to impressions, and the marts kept from them."""

    click_window_seconds: int = Field(
        3600,
        description="A click without a usable impression_id matches the latest impression "
        "of the same user and campaign at most this long before it.",
    )
    impression_id_horizon_seconds: int = Field(
        86400,
        description="How far before a click the impression it names may lie to match exactly.",
    )
    click_through_window_seconds: int = Field(
        7 * 86400, description="A conversion is credited to clicks at most this long before it."
    )
    view_through_window_seconds: int = Field(
        86400,
        description="Without clicks, to impressions at most this long before it (view-through).",
    )
    auction_window_seconds: int = Field(
        3600, description="An impression wins the bid request with its auction_id within this time."
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
        description="process --follow: bring the marts up to date at most this often "
        "(0: after every pass that committed batches).",
    )


class ChannelSettings(_Section):
    """One alert channel: where notifications of the severities routed to it go."""

    kind: str = Field("log", description="log, webhook (Alertmanager JSON), slack, email or sns.")
    url: SecretStr | None = Field(
        None, description="webhook / slack: the URL to POST to (a secret: it often holds a token)."
    )
    headers: dict[str, str] = Field({}, description="webhook: extra HTTP headers.")
    smtp_host: str = Field("localhost", description="email: SMTP server.")
    smtp_port: int = Field(25, description="email: SMTP port.")
    smtp_starttls: bool = Field(False, description="email: upgrade the connection with STARTTLS.")
    smtp_user: str | None = Field(None, description="email: login user, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="email: login password.")
    mail_from: str = Field("advertisex@localhost", description="email: From address.")
    mail_to: tuple[str, ...] = Field((), description="email: recipients.")
    topic_arn: str | None = Field(None, description="sns: topic to publish to (extra `aws`).")
    region: str | None = Field(None, description="sns: AWS region; default from the environment.")
    timeout_seconds: float = Field(10.0, description="Give up one delivery attempt after this.")


class MonitorSettings(_Section):
    """Monitors, alert lifecycle and notification channels (``advertisex monitor``)."""

    interval_seconds: float = Field(60.0, description="Seconds between evaluations.")
    disabled: tuple[str, ...] = Field(
        (),
        description="Monitors to skip: freshness, delay, volume, rates, business, "
        "discrepancy, schema.",
    )
    lookback_days: int = Field(8, description="History read for baselines (days).")
    settle_seconds: int = Field(
        900, description="Event-level checks judge an hour this long after it ended (late data)."
    )
    freshness_seconds: dict[str, int] = Field(
        {"impressions": 900, "clicks": 1800, "bids": 900},
        description="Expected longest gap between two landings, per source.",
    )
    delay_max_seconds: int = Field(
        900, description="Bound on ingest-to-queryable time (landing to committed), per source."
    )
    event_lag_max_seconds: int = Field(
        4 * 3600, description="Bound on the hourly p95 of ingest time minus event time."
    )
    volume_sensitivity: float = Field(
        5.0,
        description="Robust z (deviation / 1.4826·MAD, at least Poisson noise) that is anomalous.",
    )
    volume_min_change: float = Field(
        0.3, description="…and the relative change from the seasonal median must exceed this."
    )
    volume_min_history_days: int = Field(
        3, description="Previous days with the same hour needed before volume is judged."
    )
    volume_min_expected: int = Field(
        200, description="Judge volume only where the seasonal median has this many records."
    )
    volume_top_campaigns: int = Field(10, description="Largest campaigns watched one by one.")
    rate_window_seconds: int = Field(900, description="Window of batches the rate checks sum.")
    rate_min_records: int = Field(500, description="Judge rates only over this many records.")
    rate_max: dict[str, float] = Field(
        {"quarantine": 0.02, "duplicate": 0.05, "conflict": 0.01, "filtered": 0.15},
        description="Upper bound of each rate (share of records in).",
    )
    rate_jump_factor: float = Field(
        4.0, description="A rate this many times its median over the previous day is a jump…"
    )
    rate_jump_min: float = Field(0.01, description="…when it also rose by this much (absolute).")
    business_window_hours: int = Field(6, description="Hours of CTR / conversion rate compared.")
    business_min_change: float = Field(
        0.4, description="Relative change in CTR or conversion rate that is a shift."
    )
    business_z: float = Field(5.0, description="…and its z-score against the baseline.")
    business_min_events: int = Field(
        1000, description="Impressions (CTR) or clicks (CVR) needed in the window."
    )
    pacing_bounds: tuple[float, float] = Field(
        (0.5, 1.5), description="Spend today / expected by now outside this is off pace."
    )
    discrepancy_max: dict[str, float] = Field(
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
    discrepancy_min_events: int = Field(200, description="Judge a share over this many events.")
    schema_min_rows: int = Field(500, description="Rows of an hour needed to call a field missing.")
    for_seconds: dict[str, int] = Field(
        {}, description="Override how long an alert stays pending before firing, by alertname."
    )
    severity: dict[str, str] = Field({}, description="Override severities, by alertname.")
    group_by: tuple[str, ...] = Field(
        ("source",), description="Alerts sharing these labels are one incident, one message."
    )
    repeat_interval_seconds: int = Field(
        4 * 3600, description="Re-send a still-firing incident this often."
    )
    send_resolved: bool = Field(True, description="Tell channels when an incident is resolved.")
    routes: dict[str, tuple[str, ...]] = Field(
        {"critical": ("log",), "warning": ("log",), "info": ("log",)},
        description="Severity → channel names.",
    )
    channels: dict[str, ChannelSettings] = Field(
        {"log": ChannelSettings()}, description="Channel name → where and how to send."
    )
    retry_base_seconds: float = Field(2.0, description="First retry delay of a failed delivery.")
    retry_max_seconds: float = Field(300.0, description="Longest delay between retries.")
    retry_max_age_seconds: float = Field(
        86400.0, description="Give up on a message this old (it is kept, marked failed)."
    )
    metrics_port: int | None = Field(
        None, description="Serve monitor and processor metrics on this port (Prometheus)."
    )


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


class Settings(BaseSettings):
    """Everything AdvertiseX reads from its environment, one section per stage."""

    model_config = SettingsConfigDict(
        env_prefix="ADVERTISEX_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    data_dir: Path = Field(
        Path("advertisex-data"), description="Root of landing zone, warehouse and catalog."
    )
    lake: LakeSettings = LakeSettings()
    processor: ProcessorSettings = ProcessorSettings()
    collector: CollectorSettings = CollectorSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    monitor: MonitorSettings = MonitorSettings()
    scale: ScaleSettings = ScaleSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("ADVERTISEX_CONFIG", "advertisex.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
        )

    # Derived locations: one place decides the layout under data_dir.
    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def warehouse_uri(self) -> str:
        return self.lake.warehouse or (self.data_dir / "warehouse").resolve().as_uri()

    @property
    def catalog_uri(self) -> str:
        if self.lake.catalog_uri:
            return self.lake.catalog_uri
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a bad file or variable becomes a :class:`ConfigError` that says where."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(
            f"invalid configuration: {problems}",
            hint="check advertisex.toml and ADVERTISEX_* environment variables "
            "(`advertisex config` shows what is in force)",
        ) from error
    except Exception as error:  # e.g. a TOML syntax error
        raise ConfigError(
            f"cannot read configuration: {error}",
            hint="fix advertisex.toml (TOML syntax) or unset ADVERTISEX_CONFIG",
        ) from error


def markdown() -> str:
    """Every setting with its default, environment variable and description (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `advertisex/config.py` by `python -m advertisex.config`; do not edit.",
        "",
        "Settings come from `advertisex.toml` in the working directory (or the file named by",
        "`ADVERTISEX_CONFIG`), overridden by environment variables. Sections are TOML tables",
        "(`[processor]`); nested variables join names with `__`.",
        "",
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
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
            lines.append(f"| `{key}` | `{env}` | {default} | {info.description or ''} |")

    rows(Settings, "")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
