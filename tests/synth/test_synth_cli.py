"""``advertisex generate`` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from advertisex.cli.generate import register
from advertisex.errors import UserInputError
from tests.cli_fixtures import in_fresh_interpreter


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command keeps Typer from collapsing to one verb
    def noop() -> None: ...

    return app


def test_json_output_is_truth_json(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path),
            "--events",
            "3000",
            "--seed",
            "4",
            "--start",
            "2026-11-20",
            "--demo-faults",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((tmp_path / "truth.json").read_text())
    assert json.loads(result.stdout)["faults"]["late_rate"] == 0.02


def test_table_output_lists_sources(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--out",
            str(tmp_path),
            "--events",
            "2000",
            "--seed",
            "4",
            "--days",
            "2",
            "--duplicate-rate",
            "0.05",
            "--conflict-rate",
            "0.01",
        ],
    )
    assert result.exit_code == 0, result.output
    for source in ("impressions", "clicks", "bids"):
        assert source in result.stdout
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["days"] == 2 and truth["faults"]["duplicate_rate"] == 0.05


@pytest.mark.parametrize(
    "extra",
    [
        ["--events", "-1"],
        ["--events", "10", "--bot-rate", "1.5"],
        ["--events", "10", "--start", "nope"],
        # Past what a run can ask for: each failed as a bug (NumPy's arrays too big,
        # truth.json's integers past 64 bits, a date past the calendar).
        ["--events", "99999999999999999999"],
        ["--events", "10", "--seed", "99999999999999999999999"],
        ["--events", "10", "--days", "999999999"],
        ["--events", "10", "--days", "3", "--start", "9999-12-30"],
    ],
)
def test_bad_arguments_raise_user_errors(
    app: typer.Typer, tmp_path: Path, extra: list[str]
) -> None:
    result = CliRunner().invoke(app, ["generate", "--out", str(tmp_path), "--seed", "1", *extra])
    assert isinstance(result.exception, UserInputError)


def test_console_script_prints_error_without_traceback(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "advertisex.cli.app",
            "generate",
            "--out",
            str(tmp_path),
            "--events",
            "-5",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 2
    assert "events must be" in completed.stderr and "Traceback" not in completed.stderr


def test_generate_never_loads_pandas(tmp_path: Path) -> None:
    """Arrow would import it on the bid files' first array (≈ 0.25 s of CPU) only to ask
    whether it was handed a pandas object; the files are the same without it. Run in a
    fresh interpreter: pytest's own has pandas loaded."""
    out = str(tmp_path / "out")
    argv = ["generate", "--out", out, "--events", "3000", "--seed", "7", "--demo-faults"]
    done = in_fresh_interpreter([*argv, "--format", "json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events"] == 3000
    assert done.stderr.splitlines()[-1] == "False"
    assert any((tmp_path / "out" / "bids").iterdir())
