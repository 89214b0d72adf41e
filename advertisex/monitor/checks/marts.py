"""Are the marts keeping up? Reports and the console's campaign pages read the marts, which
every run (``process``, a follower every ``correlation.follow_marts_every_seconds``) brings
up to date after its batches. An update that fails every time (a sum past 64 bits, a full
disk), takes longer and longer (a follower rests three times as long as its last update
took: ``runners.follow``), or a follower that stopped with batches not yet folded in, all
look the same from outside: the curated tables move on and the marts stay where they were.
"""

from __future__ import annotations

from advertisex.config import MonitorSettings
from advertisex.monitor.checks.flow import duration
from advertisex.monitor.model import Finding, Observations


def marts(obs: Observations, cfg: MonitorSettings) -> list[Finding]:
    """``MartsBehind``: a batch committed more than ``marts_behind_seconds`` ago is not yet
    in the marts."""
    lag = obs.marts
    if lag is None or lag.unfolded_since is None:
        return []
    behind = (obs.now - lag.unfolded_since).total_seconds()
    if behind <= cfg.marts_behind_seconds:
        return []
    last = f"last brought up to date {lag.updated:%Y-%m-%d %H:%M:%S} UTC" if lag.updated else ""
    return [
        Finding(
            "MartsBehind",
            {},
            "warning",
            f"the marts have not folded in the batches committed since "
            f"{lag.unfolded_since:%Y-%m-%d %H:%M:%S} UTC ({duration(behind)} ago; {last}): "
            "reports and the console's campaign pages answer from older data. See the "
            "processor's output for the marts' last update (a failure, or updates that take "
            "minutes), then run advertisex report refresh",
            behind,
            float(cfg.marts_behind_seconds),
        )
    ]
