"""Settings: ranges checked where they are set, unknown names caught, and what is in force shown."""

from __future__ import annotations

import json
import warnings
from typing import Any, get_args

import pytest

from advertisex.config import (
    ConfigWarning,
    Settings,
    _allowed,
    _leaves,
    load_settings,
    settings_in_force,
)
from advertisex.errors import ConfigError
from tests.cli_fixtures import cli

__all__ = ["cli"]


pytestmark = pytest.mark.usefixtures("no_stray_config")  # tests/conftest.py


def test_an_out_of_range_value_names_the_setting_its_variable_and_the_range(monkeypatch):
    monkeypatch.setenv("ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS", "-5")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "processor.dedupe_horizon_days = -5" in message
    assert "ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS" in message
    assert "allowed: 0 to 3650" in message


def test_a_bad_value_is_said_to_come_from_where_it_was_given(monkeypatch, tmp_path):
    """The file's value is the file's: naming a variable nobody set sent people looking in
    their environment for it."""
    config = tmp_path / "advertisex.toml"
    config.write_text("[processor]\ndedupe_horizon_days = -5\n")
    monkeypatch.setenv("ADVERTISEX_CONFIG", str(config))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"= -5 is out of range; allowed: 0 to 3650 (in {config})" in str(caught.value)
    assert "ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS" not in str(caught.value)
    monkeypatch.setenv("ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS", "-6")  # it wins
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "= -6 is out of range; allowed: 0 to 3650 (environment variable" in str(caught.value)
    config.write_bytes(b"\xff\xfe[processor]")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "advertisex.toml: it is not UTF-8 text\n  → save it as UTF-8" in str(caught.value)


def _durations(model: type, prefix: str = "") -> list[tuple[str, object]]:
    """(path, field info) of every setting of seconds, minutes, hours or days, nested
    sections walked; a mapping's values by their annotation's own Field."""
    from typing import get_args

    from pydantic import BaseModel

    found = []
    for name, info in model.model_fields.items():
        nested = [a for a in (get_args(info.annotation) or (info.annotation,)) if a is not None]
        section = [a for a in nested if isinstance(a, type) and issubclass(a, BaseModel)]
        if section:
            found += _durations(section[0], f"{prefix}{name}.")
        elif name.endswith(("_seconds", "_minutes", "_hours", "_days")):
            metadata = list(info.metadata) + [
                m for a in nested for arg in getattr(a, "__metadata__", ()) for m in arg.metadata
            ]
            found.append((prefix + name, metadata))
    return found


def test_every_span_of_time_has_an_upper_bound():
    """A window, horizon, age or pause past what the clocks hold (1e20 seconds) was added to
    a date or a timer and failed as a bug report (the monitor's lookback, settle and repeat,
    the processor's future skew): every such setting now has its ``le``."""
    from advertisex.config import Settings

    spans = _durations(Settings)
    assert len(spans) > 30  # the walk found them
    unbounded = [path for path, metadata in spans if not any(
        getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in metadata
    )]  # fmt: skip
    assert unbounded == []


@pytest.mark.parametrize(
    "variable",
    ["ADVERTISEX_MONITOR__LOOKBACK_DAYS", "ADVERTISEX_PROCESSOR__FUTURE_SKEW_SECONDS",
     "ADVERTISEX_MONITOR__SETTLE_SECONDS", "ADVERTISEX_MONITOR__REPEAT_INTERVAL_SECONDS"],
)  # fmt: skip
def test_a_span_past_the_clocks_is_out_of_range(monkeypatch, variable):
    monkeypatch.setenv(variable, "99999999999999999999")
    with pytest.raises(ConfigError, match="is out of range; allowed: "):
        load_settings()


def test_values_inside_mappings_and_pairs_are_checked_too(monkeypatch):
    monkeypatch.setenv("ADVERTISEX_MONITOR__RATE_MAX__QUARANTINE", "3")
    with pytest.raises(
        ConfigError, match=r"rate_max.quarantine = 3 is out of range; allowed: 0 to 1"
    ):
        load_settings()
    monkeypatch.delenv("ADVERTISEX_MONITOR__RATE_MAX__QUARANTINE")
    with pytest.raises(ConfigError, match="lower bound is above the upper"):
        load_settings(monitor={"pacing_bounds": (2.0, 1.0)})


def _numeric(annotation: Any) -> bool:
    return annotation in (int, float) or (
        set(get_args(annotation)) - {type(None)} <= {int, float} and bool(get_args(annotation))
    )


def test_every_numeric_setting_has_an_allowed_range():
    unbounded = [
        name
        for name, info in _leaves(Settings, [])
        if _numeric(info.annotation) and _allowed(name.split(".")) is None
    ]
    assert unbounded == []


def test_a_missing_config_file_named_by_the_variable_is_an_error(monkeypatch):
    monkeypatch.setenv("ADVERTISEX_CONFIG", "missing.toml")
    with pytest.raises(ConfigError, match=r"ADVERTISEX_CONFIG names 'missing\.toml'"):
        load_settings()


def test_unknown_variables_and_keys_warn_with_the_closest_setting(monkeypatch, tmp_path):
    (tmp_path / "advertisex.toml").write_text(
        "[processor]\ndedupe_horizon_days = 3\nbatch_max_byte = 5\n[monitr]\nx = 1\n"
    )
    monkeypatch.setenv("ADVERTISEX_PROCESOR__BATCH_MAX_BYTES", "10")
    monkeypatch.setenv("ADVERTISEX_COLLECTOR__DEDUPE_HORIZON_DAYS", "2")
    monkeypatch.setenv("ADVERTISEX_DATADIR", "elsewhere")
    monkeypatch.setenv("ADVERTISEX_API_KEY", "not a setting, but known")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        settings = load_settings()
    messages = sorted(str(w.message) for w in seen if w.category is ConfigWarning)
    assert settings.processor.dedupe_horizon_days == 3  # the rest of the file still counts
    assert messages == [
        "unknown environment variable ADVERTISEX_COLLECTOR__DEDUPE_HORIZON_DAYS is ignored; "
        "did you mean ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS?",
        "unknown environment variable ADVERTISEX_DATADIR is ignored; did you mean ADVERTISEX_DATA_DIR?",
        "unknown environment variable ADVERTISEX_PROCESOR__BATCH_MAX_BYTES is ignored; "
        "did you mean ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES?",
        "unknown key monitr in advertisex.toml is ignored; did you mean monitor?",
        "unknown key processor.batch_max_byte in advertisex.toml is ignored; "
        "did you mean processor.batch_max_bytes?",
    ]


def test_settings_in_force_say_where_each_value_comes_from(monkeypatch, tmp_path):
    (tmp_path / "advertisex.toml").write_text(
        '[processor]\ndedupe_horizon_days = 3\n[monitor.channels.ops]\nkind = "slack"\n'
        'url = "https://hooks.example/T0/secret-token"\n'
    )
    monkeypatch.setenv("ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES", "1000")
    rows = {r.name: r for r in settings_in_force(load_settings())}
    assert (
        rows["processor.dedupe_horizon_days"].value,
        rows["processor.dedupe_horizon_days"].origin,
    ) == (3, "file")
    assert rows["processor.batch_max_bytes"].origin == "environment"
    assert rows["processor.batch_max_bytes"].source == "ADVERTISEX_PROCESSOR__BATCH_MAX_BYTES"
    assert rows["collector.port"].origin == "default"
    assert rows["monitor.channels"].value["ops"]["url"] == "**********"
    assert "secret-token" not in json.dumps([r.value for r in rows.values()])


def test_config_verb_prints_every_setting_with_its_origin(cli, tmp_path):
    code, out, _ = cli(
        tmp_path / "data", "config", "--format", "json", ADVERTISEX_COLLECTOR__PORT="9999"
    )
    rows = {r["setting"]: r for r in json.loads(out)}
    assert code == 0 and len(rows) == len(list(_leaves(Settings, [])))
    assert rows["collector.port"] == {
        "setting": "collector.port",
        "value": 9999,
        "origin": "environment",
        "source": "ADVERTISEX_COLLECTOR__PORT",
    }
    code, out, _ = cli(
        tmp_path / "data", "config", ADVERTISEX_COLLECTOR__PORT="9999", COLUMNS="160"
    )
    assert code == 0 and "one record per block" not in out
    # One row per setting: a long mapping is indented JSON in its cell, not a reason to print
    # every setting as a block of its own.
    (port,) = [line for line in out.splitlines() if " collector.port " in line]
    assert "9999" in port and "environment ADVERTISEX_COLLECTOR__PORT" in port
    cells = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    assert ['"smtp_port": 25,', ""] in [[c.strip() for c in row[2:4]] for row in cells]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_config_on_an_ordinary_terminal_is_one_table_with_every_value_whole(cli, tmp_path, width):
    """Below ≈ 160 columns ``config`` printed one 4-line block per setting (608 lines at 100):
    its values, then its origins, then its names fold inside their cells instead, so that
    each value is read beside its origin, every column kept and nothing cut."""
    long_origin = {"ADVERTISEX_MAINTENANCE__ORPHAN_METADATA_MIN_AGE_MINUTES": "30"}
    _, out, _ = cli(tmp_path / "data", "config", "--format", "json", **long_origin)
    settings = json.loads(out)
    code, out, _ = cli(tmp_path / "data", "config", COLUMNS=str(width), **long_origin)
    lines = out.splitlines()
    assert code == 0 and "one record per block" not in out
    assert max(len(line) for line in lines) <= width
    assert [c.strip() for c in lines[2].strip("┃").split("┃")] == ["setting", "value", "origin"]
    body = [line.strip("│").split("│") for line in lines if line.startswith("│")]
    assert len(body) < 2 * len(settings)  # most settings on one line
    # Each column read down the table is every value whole, in order (a fold drops only
    # the space it breaks at).
    columns = ["".join("".join(row[i].split()) for row in body) for i in range(3)]
    assert columns[0] == "".join(s["setting"] for s in settings)
    assert columns[2] == "".join(s["origin"] + s["source"] for s in settings)
    from advertisex.cli.config import _text
    from advertisex.util import jsonutil

    assert columns[1] == "".join("".join(_text(s["value"], jsonutil).split()) for s in settings)


def test_a_bad_setting_ends_the_command_with_one_message(cli, tmp_path):
    code, _, err = cli(tmp_path / "data", "status", ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS="-5")
    assert code == 2 and "Traceback" not in err
    assert "ADVERTISEX_PROCESSOR__DEDUPE_HORIZON_DAYS" in err and "0 to 3650" in err


def test_an_empty_data_dir_is_refused_before_anything_is_written(cli, tmp_path, monkeypatch):
    """Path("") is the current folder: ``ADVERTISEX_DATA_DIR="$UNSET" advertisex status``
    wrote a catalog database, a warehouse and a monitor folder wherever it was run."""
    monkeypatch.chdir(tmp_path)
    for verb in (["status"], ["query", "select 1"], ["process"]):
        code, _, err = cli(tmp_path, *verb, ADVERTISEX_DATA_DIR="")
        assert code == 2 and "data_dir = '': an empty path is the current folder" in err, err
        assert "ADVERTISEX_DATA_DIR" in err and "Value error" not in err
    monkeypatch.delenv("ADVERTISEX_DATA_DIR", raising=False)
    (tmp_path / "advertisex.toml").write_text('data_dir = " "\n')
    with pytest.raises(ConfigError, match="data_dir = ' ': an empty path"):
        load_settings()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["advertisex.toml"]


def test_an_empty_config_variable_reads_no_file(monkeypatch, tmp_path):
    (tmp_path / "advertisex.toml").write_text("[processor]\ndedupe_horizon_days = 3\n")
    monkeypatch.setenv("ADVERTISEX_CONFIG", "")
    assert load_settings().processor.dedupe_horizon_days == 7


def test_variables_reach_into_sections_and_mappings_and_take_json_whole(monkeypatch, tmp_path):
    (tmp_path / "advertisex.toml").write_text(
        '[monitor.rate_max]\nquarantine = 0.3\n[monitor.channels.ops]\nkind = "slack"\n'
        'url = "https://hooks.example/a"\n'
    )
    for name, value in {
        "advertisex_collector__port": "9001",  # any case
        "ADVERTISEX_MONITOR__RATE_MAX__FILTERED": "0.1",  # merged with the file's mapping
        "ADVERTISEX_MONITOR__CHANNELS__OPS__URL": "https://hooks.example/b",
        "ADVERTISEX_MONITOR__PACING_BOUNDS": "[0.5, 3]",
        "ADVERTISEX_SCALE__SPARK_CONF": '{"spark.executor.memory": "2g"}',
        "ADVERTISEX_PROCESSOR": '{"piece_bytes": 5}',  # a section given whole
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.collector.port == 9001
    assert settings.monitor.rate_max["quarantine"] == 0.3
    assert settings.monitor.rate_max["filtered"] == 0.1
    ops = settings.monitor.channels["ops"]
    assert (ops.kind, ops.url.get_secret_value()) == ("slack", "https://hooks.example/b")
    assert settings.monitor.pacing_bounds == (0.5, 3.0)
    assert settings.scale.spark_conf == {"spark.executor.memory": "2g"}
    assert settings.processor.piece_bytes == 5
    monkeypatch.setenv("ADVERTISEX_SCALE__SPARK_CONF", "not json")
    with pytest.raises(
        ConfigError, match=r"scale.spark_conf = not json.*ADVERTISEX_SCALE__SPARK_CONF"
    ):
        load_settings()


@pytest.mark.parametrize("section", ["collector", "console"])
def test_an_empty_host_is_refused(cli, tmp_path, section):
    """An empty host binds every interface: ``serve --host "$UNSET"`` was refused as "refusing
    to listen on  without API keys", and with keys configured listened on the network."""
    code, _, err = cli(tmp_path / "data", "serve" if section == "collector" else "console",
                       "--host", "")  # fmt: skip
    assert code == 2 and f"{section}.host = '': an empty host is every interface" in err, err
    assert not (tmp_path / "data").exists()
    with pytest.raises(ConfigError, match=f"{section}.host = ' '"):
        load_settings(**{section: {"host": " "}})
