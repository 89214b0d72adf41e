"""Deferred settings: where the data lives read as load_settings reads it, the rest loaded on
first use, and no deferring whenever the configuration says more than that."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from advertisex.config import Settings, load_settings
from advertisex.config import _Section as Section
from advertisex.errors import ConfigError
from advertisex.lazy_settings import SECTIONS, deferred


@pytest.fixture(autouse=True)
def no_stray_config(monkeypatch, tmp_path):
    """Each test starts in an empty folder with no ADVERTISEX_* variable set."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("ADVERTISEX_"):
            monkeypatch.delenv(name)


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
        (None, {"ADVERTISEX_DATA_DIR": ""}),
        (None, {"ADVERTISEX_LAKE__CATALOG_URI": "sqlite:////tmp/x.db", "ADVERTISEX_API_KEY": "k"}),
        ('data_dir = "from-file"\n[lake]\nwarehouse = "/w"\ncatalog_name = "c"\n', {}),
        ('data_dir = "from-file"\n', {"ADVERTISEX_DATA_DIR": "from-env"}),
        ('lake = { catalog_uri = "sqlite:////f.db" }\n', {"ADVERTISEX_LAKE__CATALOG_URI": ""}),
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
        (None, {"ADVERTISEX_PROCESSOR__WORKERS": "3"}),  # another setting
        (None, {"ADVERTISEX_LAKE": '{"warehouse": "/w"}'}),  # a section given whole
        (None, {"ADVERTISEX_DATA_DIRR": "x"}),  # unknown: load_settings warns
        (None, {"ADVERTISEX_DATA_DIR": "a", "advertisex_data_dir": "b"}),  # twice
        ("data_dir = 3\n", {}),  # not text: load_settings refuses it
        ("[lake]\ncatalog_name = 3\n", {}),
        ("[lake]\nwarehous = '/w'\n", {}),
        ("[processor]\nworkers = 3\n", {}),
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


def test_a_config_file_that_sets_more_is_validated_and_can_fail():
    Path("advertisex.toml").write_text("[processor]\nworkers = 0\n")
    with pytest.raises(ConfigError):
        deferred(load_settings) or load_settings()


def test_the_sections_are_the_settings_sections():
    sections = [
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, Section)
    ]
    assert tuple(sections) == SECTIONS
