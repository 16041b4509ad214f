"""What redemption services return: quotes and redemptions (holds), as frozen values.

``Redemption`` round-trips through JSON because the idempotency store replays the first result
of a call exactly as it was returned then.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from hub.loyalty.model import Program
from hub.loyalty.redemption_errors import InvalidRedemption, NotRedeemableHere

MAX_POINTS = 10_000_000


@dataclass(frozen=True, slots=True)
class LotUse:
    lot_id: int
    issuer_line: str
    points: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Quote:
    line: str
    points: int
    amount_fen: int  # what the points pay for at the line (rounded down)
    fen_per_point: Decimal
    available: int  # points the member could spend now
    enough: bool
    lots: tuple[LotUse, ...]  # the lots a hold would take, FIFO by expiry


@dataclass(frozen=True, slots=True)
class HoldLot:
    lot_id: int
    issuer_line: str
    points: int  # reserved from this lot
    captured: int
    refunded: int


@dataclass(frozen=True, slots=True)
class Redemption:
    id: int
    member_id: int
    line: str
    points: int
    order_ref: str
    state: str  # pending | captured | cancelled | expired | refunded
    captured_points: int
    refunded_points: int
    amount_fen: int
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    available: int  # the member's available points right after this call
    lots: tuple[HoldLot, ...]
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, which deep-copies every value: this
        # runs on every hold (bench/redemption.py measures it).
        data = {name: getattr(self, name) for name in _REDEMPTION_FIELDS}
        for name in ("created_at", "expires_at", "resolved_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        data["lots"] = [{name: getattr(lot, name) for name in _LOT_FIELDS} for lot in self.lots]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], *, replayed: bool = True) -> Redemption:
        """A stored (replayed) result, or with ``replayed=False`` one a database function
        just produced in the same shape."""
        values = dict(data)
        for name in ("created_at", "expires_at", "resolved_at"):
            if values[name] is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["lots"] = tuple(HoldLot(**lot) for lot in values["lots"])
        values["replayed"] = replayed
        return cls(**values)


_REDEMPTION_FIELDS = tuple(f.name for f in fields(Redemption))
_LOT_FIELDS = tuple(f.name for f in fields(HoldLot))


def rate_of(program: Program, line: str) -> Decimal:
    rate = program.line(line).redemption_fen_per_point
    if rate is None or rate <= 0:
        raise NotRedeemableHere(line)
    return rate


def value_fen(points: int, rate: Decimal) -> int:
    """What ``points`` pay for at a line: rounded down, a member never gets more than they spend."""
    return int((Decimal(points) * rate).to_integral_value(rounding=ROUND_FLOOR))


def points_for_fen(amount_fen: int, rate: Decimal) -> int:
    """Points needed to pay ``amount_fen``: rounded up, so they always cover the amount."""
    return int((Decimal(amount_fen) / rate).to_integral_value(rounding=ROUND_CEILING))


def check_points(points: int) -> None:
    if not 0 < points <= MAX_POINTS:
        raise InvalidRedemption("points", f"must be from 1 to {MAX_POINTS}")
