"""No stack trace reaches a user: every verb, fed what goes wrong in the first hour.

Each leaf command of the app (found by walking it, so a new verb is swept too) runs with
a misspelt option, an out-of-range setting, a configuration file that is not there, a
data directory that cannot be made, and an interrupt; then the services a verb may
reach are made unreachable (collector, Spark master, catalog database, alert webhook).
stderr must never hold a traceback nor the catch-all's "this is a bug" line, a failed
command exits non-zero with an ``error:`` line, and an interrupt exits 130.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.cli_verbs import arguments as verb_arguments
from tests.cli_verbs import leaf_commands
from tests.ports import free_port

BUG = "this is a bug in advertisex"


VERBS = [verb for verb, _ in leaf_commands()]


def dead_port() -> int:
    return free_port()  # nothing listens on it


def arguments(verb: tuple[str, ...], tmp: Path) -> list[str]:
    """Arguments a user could well pass to ``verb``: enough to get past parsing."""
    return verb_arguments(verb, tmp, dead_port())


# Verbs that read no configuration and no lake: they may well succeed in every case.
SELF_CONTAINED = {("generate",), ("keygen",)}
# Questions: they read where the data lives and no other section (advertisex.lazy_settings),
# so a setting out of range elsewhere does not stop them.
QUESTIONS = {
    v for v in VERBS if v == ("query",) or (v[0] == "report" and v != ("report", "refresh"))
}


def check(code: int, err: str, *, failed_with: str | None = None) -> None:
    assert "Traceback" not in err and BUG not in err, err
    if code != 0:  # the project's own line: never Click's boxed "Usage: … Error" panel
        assert "error:" in err or "interrupted" in err, err
        assert "Usage:" not in err and "╭" not in err, err
    if failed_with is not None:
        assert code != 0 and failed_with in err, err


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    (tmp_path / "drop.ndjson").write_text(
        '{"timestamp":"2026-11-20T10:00:00Z","ad_creative_id":"cr-1","user_id":"u-1","website":"w"}\n'
    )
    (tmp_path / "campaigns.csv").write_text("campaign_id,budget\ncmp-1,100\n")
    return tmp_path


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_misspelt_option_is_a_usage_error(cli, tmp_path, verb):
    code, _, err = cli(tmp_path / "data", *verb, "--no-such-option")
    check(code, err, failed_with="error: no such option: --no-such-option")
    assert code == 2 and f"→ run advertisex {' '.join(verb)} --help to see its options" in err


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_an_out_of_range_setting_stops_the_verb_with_one_message(cli, drop, verb):
    code, _, err = cli(
        drop / "data", *verb, *arguments(verb, drop), ADVERTISEX_MONITOR__LOOKBACK_DAYS="0"
    )
    reads_monitor = verb not in SELF_CONTAINED | QUESTIONS
    check(code, err, failed_with="ADVERTISEX_MONITOR__LOOKBACK_DAYS" if reads_monitor else None)
    if verb in QUESTIONS:
        assert code == 2 and "there is no lake" in err, err


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_missing_config_file_stops_the_verb(cli, drop, verb):
    code, _, err = cli(
        drop / "data", *verb, *arguments(verb, drop), ADVERTISEX_CONFIG=str(drop / "nope.toml")
    )
    check(code, err, failed_with=None if verb in SELF_CONTAINED else "ADVERTISEX_CONFIG names")


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_a_data_directory_that_cannot_be_made(cli, drop, verb):
    code, _, err = cli(Path("/proc/advertisex-sweep/data"), *verb, *arguments(verb, drop))
    check(code, err)
    if verb not in SELF_CONTAINED | {("config",), ("sign-url",)}:
        assert code == 2, err
        assert "cannot create the data directory" in err or "there is no lake" in err, err


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_an_interrupt_exits_130_with_one_line(cli, drop, verb, monkeypatch):
    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as the terminal sends it
        time.sleep(5)

    monkeypatch.setattr("advertisex.config.load_settings", interrupted)
    monkeypatch.setattr("advertisex.lazy_settings._plain_values", interrupted)  # questions
    code, _, err = cli(drop / "data", *verb, *arguments(verb, drop))
    check(code, err)
    if verb not in SELF_CONTAINED:
        assert code == 130, err


def test_missing_input_paths(cli, tmp_path):
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", str(tmp_path / "no-such-dir"))
    check(code, err, failed_with="no such file")
    code, _, err = cli(data, "dims", "load", str(tmp_path / "no-such.csv"))
    check(code, err, failed_with="error:")
    code, _, err = cli(
        data, "generate", "--out", "/proc/advertisex-sweep", "--events", "5", "--seed", "1"
    )
    check(code, err, failed_with="cannot write generated files")


def test_values_past_what_an_option_holds(cli, tmp_path):
    """Numbers and dates past their range, each a bug report before: the console's port
    (a settings copy took it unchecked, the bind failed), the generator's events, seed
    and days (NumPy's arrays, JSON's 64-bit integers, the calendar)."""
    data = tmp_path / "data"
    for port in ("-1", "70000"):
        code, _, err = cli(data, "console", "--port", port)
        check(code, err, failed_with=f"console.port = {port} is out of range")
    generate = ["generate", "--out", str(tmp_path / "gen"), "--seed", "1"]
    for extra, message in (
        (["--events", "99999999999999999999"], "events must be a whole number"),
        (["--events", "5", "--seed", "99999999999999999999999"], "seed must be"),
        (["--events", "5", "--days", "999999999"], "days must be from 1"),
        (["--events", "5", "--start", "9999-12-30", "--days", "3"], "past the calendar"),
    ):
        code, _, err = cli(data, *generate, *extra)
        check(code, err, failed_with=message)
    # Seconds that are no pause (a loop looking again at once, or "every nan s"), a rate
    # past a double, a port or a limit past what the system call takes.
    for verb in (["process", "--follow"], ["up"], ["monitor"]):
        for seconds in ("-1", "nan", "1e308", "86401"):  # 1e308: past the system's clock
            code, _, err = cli(data, *verb, "--interval", seconds)
            check(code, err, failed_with="is not a number of seconds above 0 and at most 86,400")
    streaming = ["generate", "--to", "http://127.0.0.1:9", "--duration", "1", "--rate"]
    code, _, err = cli(data, *streaming, "nan")
    check(code, err, failed_with="must be finite and positive")
    code, _, err = cli(data, "monitor", "--metrics-port", "99999")
    check(code, err, failed_with="invalid value for '--metrics-port'")
    code, _, err = cli(data, "quarantine", "show", "--limit", "99999999999999999999")
    check(code, err, failed_with="invalid value for '--limit'")


def test_paths_and_names_the_system_refuses(cli, tmp_path, seed_samples, monkeypatch):
    """Found by sweeping every option with hostile values: a path longer than the system
    looks up, an empty path (Path("") is the current folder: ``ingest "$UNSET"`` ingested
    it, ``generate --out ""`` wrote into it), a replay to the last day there is, an engine
    ``up`` passed to its processor."""
    data = tmp_path / "data"
    code, _, err = cli(data, "ingest", "x" * 5000)
    check(code, err, failed_with="File name too long")
    assert code == 2 and "(5,000 characters)" in err
    for empty in ("", "  "):
        code, _, err = cli(data, "ingest", str(seed_samples), empty)
        check(code, err, failed_with="an empty path was given")
    assert not data.exists()  # nothing of the named files was ingested either
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    code, _, err = cli(data, "generate", "--out", "", "--events", "5", "--seed", "1")
    check(code, err, failed_with="--out is empty")
    assert list(folder.iterdir()) == []  # Path("") was the current folder: written into
    assert cli(data, "ingest", str(seed_samples))[0] == 0
    code, _, err = cli(data, "replay", "--to", "9999-12-31")
    check(code, err)
    assert code == 0, err
    code, _, err = cli(data, "up", "--port", str(dead_port()), "--engine", "0")
    check(code, err, failed_with="unknown engine '0'")


def test_an_empty_path_is_said_to_be_one(cli, tmp_path, monkeypatch):
    """``dims load "$UNSET"`` and ``forget --from-file ""`` read Path(""), the current
    folder, and said "cannot read .: Is a directory"."""
    monkeypatch.chdir(tmp_path)
    for args, said in (
        (["dims", "load", ""], "an empty path was given"),
        (["dims", "load", " "], "an empty path was given"),
        (["forget", "--from-file", ""], "--from-file is empty"),
        (["forget", "--user-id", "u-1", "--from-file", " "], "--from-file is empty"),
    ):
        code, _, err = cli(tmp_path / "data", *args)
        check(code, err, failed_with=said)
        assert code == 2 and "cannot read ." not in err, err


def test_up_on_a_taken_port_says_so_before_starting_anything(cli, tmp_path):
    """It started the monitor and the processor, then its collector failed to bind and the
    last line said only that the collector "exited unexpectedly"."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        code, _, err = cli(tmp_path / "data", "up", "--port", port)
    check(code, err, failed_with=f"cannot listen on 127.0.0.1:{port}")
    assert code == 2 and "monitoring" not in err, err


UNREACHABLE_CATALOG = {
    "ADVERTISEX_LAKE__CATALOG_URI": "postgresql+psycopg2://ana:pw@127.0.0.1:{port}/lake"
}


@pytest.mark.parametrize(
    "verb",
    [("status",), ("process",), ("quarantine", "list"), ("dims", "list"), ("report", "campaigns"),
     ("alerts",), ("maintain",)],
    ids=" ".join,
)  # fmt: skip
def test_an_unreachable_catalog_database_is_one_line(cli, tmp_path, verb):
    env = {k: v.format(port=dead_port()) for k, v in UNREACHABLE_CATALOG.items()}
    code, _, err = cli(tmp_path / "data", *verb, **env)
    check(code, err, failed_with="cannot open the Iceberg catalog postgresql+psycopg2://ana:***@")
    assert "pw@" not in err


def test_unreachable_collector_and_spark_master(cli, tmp_path):
    data = tmp_path / "data"
    code, _, err = cli(
        data, "generate", "--to", f"http://127.0.0.1:{dead_port()}", "--duration", "2"
    )
    check(code, err, failed_with="cannot reach a collector")
    master = f"spark://127.0.0.1:{dead_port()}"
    data.mkdir()  # a lake (process says there is none before it looks for a master)
    for verb in (["process"], ["report", "refresh"]):
        code, _, err = cli(data, *verb, "--engine", "spark", "--master", master)
        check(code, err, failed_with=f"cannot reach the Spark master {master}")


def test_an_unreachable_object_store_is_one_line_not_a_bug(cli, tmp_path):
    """PyArrow's S3 file system raises a bare OSError with the AWS error's text: the
    storage's failure, said with what to check, exit 2 — it was the catch-all's bug report."""
    store = {
        "ADVERTISEX_SCALE__LANDING": "s3://bucket/landing",
        "ADVERTISEX_SCALE__S3_ENDPOINT": f"http://127.0.0.1:{dead_port()}",
    }
    code, _, err = cli(tmp_path / "data", "process", **store)
    check(code, err, failed_with="Could not connect")
    assert code == 2 and "scale.s3_endpoint" in err, err


def test_an_unreachable_alert_webhook_does_not_stop_the_monitor(cli, tmp_path, seed_samples):
    data = tmp_path / "data"
    assert cli(data, "ingest", str(seed_samples))[0] == 0
    webhook = {
        "ADVERTISEX_MONITOR__CHANNELS__HOOK__KIND": "webhook",
        "ADVERTISEX_MONITOR__CHANNELS__HOOK__URL": f"http://127.0.0.1:{dead_port()}/alerts",
        "ADVERTISEX_MONITOR__CHANNELS__HOOK__TIMEOUT_SECONDS": "1",
        "ADVERTISEX_MONITOR__ROUTES__WARNING": '["hook"]',
        "ADVERTISEX_MONITOR__ROUTES__CRITICAL": '["hook"]',
    }
    code, _, err = cli(data, "monitor", "--once", **webhook)
    check(code, err)
    assert code == 0, err


def test_up_names_the_signal_that_killed_a_child_instead_of_pointing_at_nothing():
    """A processor SIGKILLed under ``up`` (the out-of-memory killer) printed nothing itself,
    and ``up`` said "what it said is above; fix that" over an empty screen."""
    from advertisex.cli.serve import children_failed

    killed = children_failed({"processor": -9})
    assert "the processor was killed by SIGKILL" in killed
    assert "what it said is above" not in killed and "run advertisex up again" in killed
    both = children_failed({"collector": 1, "processor": -15})
    assert "the collector exited unexpectedly and the processor was killed by SIGTERM" in both
    assert "what it said is above" in both  # the collector said why


def test_generate_to_refuses_the_options_of_written_files_instead_of_ignoring_them(cli, tmp_path):  # type: ignore[no-untyped-def]
    """``generate --to URL --start today-5 --days 5`` streamed traffic stamped now, and
    said nothing of the days asked for (nor of --events, --out or the fault rates)."""
    code, _, err = cli(tmp_path, "generate", "--to", "http://127.0.0.1:9", "--start",
                       "today-5", "--days", "5", "--malformed-rate", "0.1")  # fmt: skip
    assert code == 2 and "Traceback" not in err
    assert "error: --start, --days, --malformed-rate shape generated files" in " ".join(err.split())
    assert "--out DIR" in err


def test_a_follower_retrying_a_bug_names_it_and_where_its_traceback_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``process --follow`` (and ``up``) retries a failing pass for as long as it runs: a bug
    every batch met was a bare message every 30 s (``'IvtRules' object has no attribute
    …``), its type and traceback nowhere. Now its type, and its traceback saved once."""
    import tempfile

    from advertisex.cli.serve import _RetryLines
    from advertisex.errors import TransientError

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def typo() -> None:
        raise AttributeError("'IvtRules' object has no attribute 'crawlers'")

    told = _RetryLines()
    for wait in (1, 2):
        try:
            typo()
        except AttributeError as error:
            told(error, wait)
    told(TransientError("the catalog is busy", hint="it is retried"), 4)
    lines = capsys.readouterr().err.splitlines()
    [saved] = list(tmp_path.glob("advertisex-error-*.txt"))  # once, not at every retry
    assert lines[:2] == [
        f"retrying in {wait} s: AttributeError: 'IvtRules' object has no attribute 'crawlers' "
        f"(its traceback: {saved})"
        for wait in (1, 2)
    ]
    assert lines[2].startswith("retrying in 4 s: the catalog is busy")
    assert "in typo" in saved.read_text()  # where it was raised
