"""What every channel's emitter shares: baskets, order counts, and the platforms' mask styles."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from hub.generator.catalog import PAID_PRODUCTS, SAMPLE_PRODUCT, Product

MAX_ORDERS = 12  # per person and channel: a limit, so one unlucky draw cannot run away


@dataclass(frozen=True, slots=True)
class Line:
    product: Product
    qty: int

    @property
    def amount_fen(self) -> int:
        return self.product.price_fen * self.qty


class RowWriter(Protocol):
    def write(self, row: list[str]) -> None: ...


def basket(rng: random.Random) -> list[Line]:
    """1-3 different paid products, sometimes a free sample riding along."""
    kinds = 1 if rng.random() < 0.6 else rng.randint(2, 3)
    products = rng.sample(PAID_PRODUCTS, kinds)
    lines = [Line(p, 1 if rng.random() < 0.8 else rng.randint(2, 3)) for p in products]
    if rng.random() < 0.1:
        lines.append(Line(SAMPLE_PRODUCT, 1))
    return lines


def order_count(rng: random.Random, *, minimum: int = 1, repeat: float = 0.45) -> int:
    """``minimum`` plus a geometric tail: most people buy once or twice, a few often."""
    count = minimum
    while count < MAX_ORDERS and rng.random() < repeat:
        count += 1
    return count


def taobao_phone_mask(phone: str) -> str:
    """Taobao receiver mask: ``138****0001``."""
    return f"{phone[:3]}****{phone[-4:]}"


def douyin_phone_mask(phone: str) -> str:
    """Douyin's documented mask keeps two digits at each end: ``13*******01``."""
    return f"{phone[:2]}*******{phone[-2:]}"


def name_mask(name: str, stars: int | None = None) -> str:
    """Surname kept, the rest starred: Taobao ``张*``, Douyin ``张**``."""
    return name[:1] + "*" * (stars if stars is not None else max(len(name) - 1, 1))


def other_receiver_phone(rng: random.Random) -> str:
    """Someone else's number, only ever shown masked; drawn from the synthetic 1380 range."""
    return f"1380{rng.randrange(10_000_000):07d}"
