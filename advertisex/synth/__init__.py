"""Synthetic ad traffic with ground truth and fault injection (``advertisex generate``).

``generate(out_dir, events=..., seed=..., start=...)`` writes hourly impression (NDJSON),
click/conversion (CSV) and bid-request (Avro) files, campaign dimensions, and
``truth.json`` with the exact counts a correct pipeline must reproduce.
"""

from advertisex.synth.config import FaultConfig
from advertisex.synth.generator import generate

__all__ = ["FaultConfig", "generate"]
