"""What every source emitter is built from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from hub.generator.rates import Rates
from hub.generator.shopping import RowWriter
from hub.generator.sinks import SinkSet


@dataclass(frozen=True)
class EmitContext:
    rng: random.Random  # the one generator behind every value: determinism depends on it
    rates: Rates
    out: Path
    sinks: SinkSet
    truth: RowWriter
