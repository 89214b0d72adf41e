"""Configuration is data: frozen pydantic-settings models, one section per stage.

Sources, lowest to highest precedence: defaults here → ``advertisex.toml`` in the
working directory (or the file named by ``ADVERTISEX_CONFIG``) → ``ADVERTISEX_*``
environment variables (nested with ``__``, e.g. ``ADVERTISEX_PROCESSOR__BATCH_MAX_RECORDS``)
→ keyword overrides passed to :func:`load_settings`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
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
