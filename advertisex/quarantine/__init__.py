"""Quarantine management: see what was rejected and why, and replay it after a fix.

- :func:`~advertisex.quarantine.selection.summary` — counts by source and reason;
- :func:`~advertisex.quarantine.selection.records` — the records themselves (raw text,
  reasons, landing file and position);
- :func:`~advertisex.quarantine.replay.replay` — re-run selected records through the
  current pipeline; the ones that now pass move to their tables in one atomic commit.
"""
