"""Deferred settings: where the data lives read as load_settings reads it, the rest loaded on
first use, and no deferring whenever the configuration says more than that."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advertisex.config import Settings, load_settings
from advertisex.config import _Section as Section
from advertisex.errors import ConfigError
from advertisex.lazy_settings import SECTIONS, deferred

pytestmark = pytest.mark.usefixtures("no_stray_config")  # tests/conftest.py


class Loads:
    """load_settings, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Settings:
        self.calls += 1
        return load_settings()


def read(monkeypatch, text: str | None = None, **variables: str) -> tuple[Any, Loads]:
    if text is not None:
        Path("advertisex.toml").write_text(text)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    loads = Loads()
    return deferred(loads), loads


def same_place(settings: Any) -> None:
    """``settings`` says what load_settings says about where the data lives."""
    validated = load_settings()
    assert settings.data_dir == validated.data_dir
    for field in ("catalog_uri", "catalog_name", "warehouse"):
        assert getattr(settings.lake, field) == getattr(validated.lake, field), field
    assert settings.landing_dir == validated.landing_dir
    assert settings.warehouse_uri == validated.warehouse_uri
    assert settings.catalog_uri == validated.catalog_uri


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        (None, {}),
        (None, {"ADVERTISEX_DATA_DIR": "lake-here"}),
        (None, {"advertisex_data_dir": "~/lower"}),
        (None, {"ADVERTISEX_LAKE__CATALOG_URI": "sqlite:////tmp/x.db", "ADVERTISEX_API_KEY": "k"}),
        ('data_dir = "from-file"\n[lake]\nwarehouse = "/w"\ncatalog_name = "c"\n', {}),
        ('data_dir = "from-file"\n', {"ADVERTISEX_DATA_DIR": "from-env"}),
        ('lake = { catalog_uri = "sqlite:////f.db" }\n', {"ADVERTISEX_LAKE__CATALOG_URI": ""}),
        # Other sections: read and validated when (and if) the command reads them.
        (None, {"ADVERTISEX_PROCESSOR__WORKERS": "3"}),
        ("[processor]\nworkers = 3\n[monitor]\nlookback_days = 9\n", {"ADVERTISEX_DATA_DIR": "d"}),
        ("[collector]\nport = 9000\n", {"ADVERTISEX_MONITOR__RATE_MAX__QUARANTINE": "0.3"}),
    ],
)
def test_where_the_data_lives_is_read_as_load_settings_reads_it(monkeypatch, text, variables):
    settings, loads = read(monkeypatch, text, **variables)
    assert settings is not None
    same_place(settings)
    assert loads.calls == 0  # nothing else was read: nothing validated


@pytest.mark.parametrize(
    ("text", "variables"),
    [
        (None, {"ADVERTISEX_LAKE": '{"warehouse": "/w"}'}),  # a section given whole
        (None, {"ADVERTISEX_PROCESSOR": '{"workers": 3}'}),
        (None, {"ADVERTISEX_PROCESSO__WORKERS": "3"}),  # no such section: load_settings warns
        ("[procesor]\nworkers = 3\n", {}),
        ("processor = 3\n", {}),  # a section that is no table
        ("workers = 3\n", {}),  # a key no setting has
        (None, {"ADVERTISEX_DATA_DIRR": "x"}),  # unknown: load_settings warns
        (None, {"ADVERTISEX_DATA_DIR": "a", "advertisex_data_dir": "b"}),  # twice
        ("data_dir = 3\n", {}),  # not text: load_settings refuses it
        (None, {"ADVERTISEX_DATA_DIR": ""}),  # the current folder, unnamed: refused too
        ('data_dir = " "\n', {}),
        ("[lake]\ncatalog_name = 3\n", {}),
        ("[lake]\nwarehous = '/w'\n", {}),
        ("data_dir = \n", {}),  # not TOML
        (None, {"ADVERTISEX_CONFIG": "missing.toml"}),
    ],
)
def test_any_other_configuration_is_loaded_the_usual_way(monkeypatch, text, variables):
    settings, _ = read(monkeypatch, text, **variables)
    assert settings is None


def test_anything_else_comes_from_the_validated_settings_loaded_once(monkeypatch):
    settings, loads = read(monkeypatch, 'data_dir = "d"\n')
    validated = load_settings()
    assert settings.processor.workers == validated.processor.workers
    assert settings.scale.s3_endpoint == validated.scale.s3_endpoint
    assert settings.lake.model_dump() == validated.lake.model_dump()
    assert settings.model_dump() == validated.model_dump()
    assert loads.calls == 1


def test_an_empty_config_variable_reads_no_file_here(monkeypatch):
    Path("advertisex.toml").write_text("[processor]\nworkers = 3\n")
    settings, _ = read(monkeypatch, ADVERTISEX_CONFIG="")
    assert settings is not None
    same_place(settings)


def test_a_section_is_validated_when_first_read_and_can_fail():
    Path("advertisex.toml").write_text('data_dir = "d"\n[processor]\nworkers = 0\n')
    settings = deferred(load_settings)
    assert settings is not None
    assert settings.data_dir == Path("d")  # where the data lives: no section read
    readings = [lambda: settings.processor.workers, lambda: settings.monitor.lookback_days]
    for read_one in [*readings, lambda: settings.model_dump()]:
        with pytest.raises(ConfigError, match=r"processor\.workers = 0"):
            read_one()


# Entries of a configuration, valid and not, in the file or as variables, for every kind of
# setting: where the data lives, other sections, unknown names, values that are no text.
FILE_ENTRIES = [
    ("", "data_dir", '"from-file"'),
    ("", "data_dir", "3"),
    ("", "data_dir", '""'),
    ("lake", "warehouse", '"/w"'),
    ("lake", "catalog_name", "7"),
    ("lake", "warehous", '"/w"'),
    ("processor", "workers", "3"),
    ("processor", "workers", "0"),
    ("processor", "dedupe_horizon_days", "2"),
    ("monitor", "lookback_days", "0"),
    ("monitor", "rate_max", "{ quarantine = 0.2 }"),
    ("collector", "port", '"http"'),
    ("retention", "days", "{ curated = 1 }"),
    ("retention", "landing_days", "30"),
    ("scale", "s3_endpoint", '"http://minio:9000"'),
    ("procesor", "workers", "3"),
]
VARIABLES = [
    ("ADVERTISEX_DATA_DIR", "from-env"),
    ("ADVERTISEX_DATA_DIR", ""),
    ("ADVERTISEX_LAKE__CATALOG_URI", "sqlite:////tmp/x.db"),
    ("ADVERTISEX_PROCESSOR__WORKERS", "2"),
    ("ADVERTISEX_PROCESSOR__WORKERS", "65"),
    ("ADVERTISEX_MONITOR__RATE_MAX__QUARANTINE", "nope"),
    ("ADVERTISEX_CORRELATION__CLICK_WINDOW_SECONDS", "-1"),
    ("ADVERTISEX_RETENTION__DAYS", '{"marts": 1}'),
    ("ADVERTISEX_PROCESSOR", '{"workers": 3}'),
    ("ADVERTISEX_NOPE", "1"),
]


def _toml(entries: list[tuple[str, str, str]]) -> str:
    """A file of ``entries`` (the last of one key wins, as a second one would not parse)."""
    sections: dict[str, dict[str, str]] = {}
    for section, key, value in entries:
        sections.setdefault(section, {})[key] = value
    lines = [f"{k} = {v}" for k, v in sections.pop("", {}).items()]
    for section, keys in sections.items():
        lines += [f"[{section}]", *(f"{k} = {v}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(st.sampled_from(FILE_ENTRIES), max_size=4),
    variables=st.lists(st.sampled_from(VARIABLES), max_size=3),
)
def test_deferred_settings_never_answer_what_validation_would_refuse(entries, variables):
    """Over configurations of every kind: deferred settings say where the data lives as
    load_settings does, and anything else they are asked is load_settings' answer — its
    values, or its error whenever it refuses the configuration."""
    import warnings

    saved = dict(os.environ)
    try:
        Path("advertisex.toml").write_text(_toml(entries))
        os.environ.update(dict(variables))
        settings = deferred(load_settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                validated = load_settings()
            except ConfigError as error:
                refused: ConfigError | None = error
            else:
                refused = None
            if settings is None:
                return  # loaded the usual way, with its checks and warnings
            if refused is not None:
                with pytest.raises(ConfigError) as raised:
                    settings.model_dump()
                assert str(raised.value) == str(refused)
                return
            same_place(settings)
            assert settings.model_dump() == validated.model_dump()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_sections_are_the_settings_sections():
    sections = [
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
    ]
    assert tuple(sections) == SECTIONS
