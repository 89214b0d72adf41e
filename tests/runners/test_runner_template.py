"""The runner template checks every engine's accounting before it commits anything."""

from __future__ import annotations

import pytest

from advertisex.errors import AccountingError
from advertisex.runners.embedded import EmbeddedRunner

GOOD = b'{"timestamp":"2026-01-01T00:00:00Z","ad_creative_id":"c","user_id":"u","website":"w"}\n'


class CountsOneTwice(EmbeddedRunner):
    """An engine with a bug: it reports one accepted record more than it framed."""

    def transform(self, batch, framed):  # type: ignore[no-untyped-def]
        done = super().transform(batch, framed)
        done.accounts["impressions"].accepted += 1
        return done


class LosesARecord(EmbeddedRunner):
    """An engine with a bug: a framed record never reaches its account."""

    def transform(self, batch, framed):  # type: ignore[no-untyped-def]
        done = super().transform(batch, framed)
        done.accounts["impressions"].records_in -= 1
        done.accounts["impressions"].accepted -= 1
        return done


@pytest.mark.parametrize("engine", [CountsOneTwice, LosesARecord])
def test_an_engine_whose_accounts_do_not_add_up_commits_nothing(ax, engine):
    ax.landing.write_segment("impressions", GOOD + GOOD.replace(b'"u"', b'"v"'), label="two")
    runner = engine(ax.settings, ax.lake, ax.landing)
    with pytest.raises(AccountingError, match="impressions does not add up"):
        runner.run_batch(runner.pending())
    assert len(ax.runner.pending()) == 1  # still pending: the batch will be redone
    assert ax.query("select count(*) n from curated.impressions").to_pylist() == [{"n": 0}]
    assert ax.query("select count(*) n from ops.batches").to_pylist() == [{"n": 0}]
    report = ax.process()  # a correct engine then commits the batch whole
    assert report.accounts["impressions"].accepted == 2
