"""Which lots a burn consumes: first to expire, first burned (FIFO by expiry).

Lots are ordered by ``expires_at`` (lots that never expire last), then ``earned_at``, then
``id``, so the same lots and amount always give the same allocation, whichever order the
database returned them in. Lots already expired at ``at`` or with nothing left are skipped: the
expiry run, not a redemption, turns them into breakage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hub.loyalty.errors import InsufficientPoints
from hub.loyalty.expiry import is_expired
from hub.loyalty.periods import require_aware

LotId = int | str


@dataclass(frozen=True, slots=True)
class Lot:
    id: LotId
    issuer_line: str
    earned_at: datetime
    expires_at: datetime | None
    remaining: int


@dataclass(frozen=True, slots=True)
class Burn:
    lot_id: LotId
    issuer_line: str
    points: int


def _order(lot: Lot) -> tuple[bool, datetime, datetime, bool, LotId]:
    # (never expires?, expiry, earned, id is text?, id): the flags keep None expiries and mixed
    # id types from ever being compared with each other.
    expires = lot.expires_at or lot.earned_at
    return (lot.expires_at is None, expires, lot.earned_at, isinstance(lot.id, str), lot.id)


def usable(lots: Iterable[Lot], *, at: datetime) -> list[Lot]:
    """Lots that can be burned at ``at``, in burn order."""
    require_aware(at, "at")
    return sorted(
        (lot for lot in lots if lot.remaining > 0 and not is_expired(lot.expires_at, at)),
        key=_order,
    )


def allocate(lots: Iterable[Lot], amount: int, *, at: datetime) -> list[Burn]:
    """Burn ``amount`` points from ``lots``; raises ``InsufficientPoints`` if they hold less."""
    if amount <= 0:
        raise ValueError("amount must be a positive number of points")
    burns: list[Burn] = []
    left = amount
    candidates = usable(lots, at=at)
    for lot in candidates:
        take = min(left, lot.remaining)
        burns.append(Burn(lot.id, lot.issuer_line, take))
        left -= take
        if left == 0:
            return burns
    raise InsufficientPoints(requested=amount, available=amount - left)


def expired(lots: Iterable[Lot], *, at: datetime) -> list[Lot]:
    """Lots with points left whose expiry has passed at ``at``, in expiry order."""
    require_aware(at, "at")
    return sorted(
        (lot for lot in lots if lot.remaining > 0 and is_expired(lot.expires_at, at)), key=_order
    )


def burned_by_line(burns: Sequence[Burn]) -> dict[str, int]:
    """Points burned per issuing line: what settlement charges each issuer."""
    totals: dict[str, int] = {}
    for burn in burns:
        totals[burn.issuer_line] = totals.get(burn.issuer_line, 0) + burn.points
    return totals
