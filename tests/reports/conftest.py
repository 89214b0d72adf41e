"""The CLI fixtures (tests/cli_fixtures.py): the reports' tables as a terminal shows them."""

from tests.cli_fixtures import cli

__all__ = ["cli"]
