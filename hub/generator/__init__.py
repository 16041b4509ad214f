"""Realistic multi-source synthetic data: one group's members as every source would export them.

``generate(people=N, seed=S, out=DIR)`` writes, person by person (constant memory, so a million
people is fine), the files named in ``hub.generator.layout``:

- Taobao legacy order pair (GBK, ``="…"`` ids) and the Taobao membership CSV,
- Douyin order export (UTF-8 BOM, tab-suffixed ids, ``-`` empties) and the Douyin member CSV,
- app/mini-program accounts and app orders (NDJSON),
- POS card enrolments and POS receipt lines (CSV),
- OPERA hotel profiles (NDJSON) and the stay extract (CSV),
- ``truth.csv``: ``source,source_key,person_id`` for every key a connector will produce
  (``layout.TRUTH_KEYS`` says which value each source uses; Douyin order buyers have no key and
  are not in it).

The same ``seed`` gives byte-identical files: every value comes from one ``random.Random``
(Faker draws from it too) and the calendar is fixed (``timeline``). All data is fake: Faker
``zh_CN`` names, ``1380xxxxxxx`` phones, ID numbers under an unassigned region, ``@example.com``.
How often each mess happens is ``rates.Rates``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hub.generator import layout
from hub.generator.context import EmitContext
from hub.generator.douyin import DouyinEmitter
from hub.generator.hotel import HotelEmitter
from hub.generator.member_app import AppEmitter
from hub.generator.people import PeopleFactory
from hub.generator.pos import PosEmitter
from hub.generator.rates import RATES, Rates
from hub.generator.sinks import SinkSet
from hub.generator.taobao import TaobaoEmitter

__all__ = ["RATES", "GenerationSummary", "Rates", "generate"]

MAX_PEOPLE = 10_000_000  # synthetic phone and ID spaces stay unique up to here
PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class GenerationSummary:
    """What was written: data rows per file name (headers not counted)."""

    people: int
    seed: int
    out: Path
    files: Mapping[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.files.values())


def generate(
    people: int,
    seed: int,
    out: Path,
    progress: Callable[[int], None] | None = None,
    *,
    rates: Rates = RATES,
) -> GenerationSummary:
    """Write a data set for ``people`` synthetic members into ``out`` (created if missing).

    ``progress`` is called with the number of people written so far, every ``PROGRESS_EVERY``
    people and once at the end.
    """
    if not 1 <= people <= MAX_PEOPLE:
        raise ValueError(f"people must be between 1 and {MAX_PEOPLE}")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with SinkSet() as sinks:
        truth = sinks.csv(out / layout.TRUTH, layout.TRUTH_HEADER, encoding=layout.UTF8)
        ctx = EmitContext(rng=rng, rates=rates, out=out, sinks=sinks, truth=truth)
        pos = PosEmitter(ctx)
        emitters: dict[str, TaobaoEmitter | DouyinEmitter | AppEmitter | PosEmitter | HotelEmitter]
        emitters = {
            "taobao": TaobaoEmitter(ctx),
            "douyin": DouyinEmitter(ctx),
            "app": AppEmitter(ctx),
            "pos": pos,
            "hotel": HotelEmitter(ctx),
        }
        done = 0
        for person in PeopleFactory(rng=rng, rates=rates).people(people):
            for source in person.sources:
                emitters[source].emit(person)
            if rng.random() < rates.pos_anonymous_sales:
                pos.walk_in()
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done)
        if progress is not None and done % PROGRESS_EVERY:
            progress(done)
    return GenerationSummary(people=people, seed=seed, out=out, files=sinks.counts())
