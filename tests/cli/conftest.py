"""CLI fixtures shared with tests/quarantine and tests/dims (tests/cli_fixtures.py)."""

from tests.cli_fixtures import cli, lock_holder, open_lake, run_subprocess

__all__ = ["cli", "lock_holder", "open_lake", "run_subprocess"]
