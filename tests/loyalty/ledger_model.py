"""A pure-Python model of the points ledger, written from the rules, not from the code.

Lots per member (available / pending), a debt per member, growth per record. The state machine
in ``test_ledger_stateful.py`` drives the database and this model with the same steps and
compares them after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Asia/Shanghai")
STORE, TAOBAO = "store", "taobao"
PENDING_DAYS = {STORE: 0, TAOBAO: 15}


def end_of_next_year(at: datetime) -> datetime:
    return datetime.combine(date(at.astimezone(TZ).year + 2, 1, 1), time(0), tzinfo=TZ)


def earn(line: str, amount_fen: int, shipping_fen: int) -> tuple[int, int]:
    """(points, growth): store 1/yuan; taobao 1.5/yuan on the amount less shipping, ≤ 1000."""
    if line == STORE:
        return amount_fen // 100, amount_fen // 100
    basis = max(0, amount_fen - shipping_fen)
    return min(basis * 3 // 200, 1000), basis // 100


@dataclass
class MLot:
    seq: int
    member: int
    record: int | None
    state: str
    earned_at: datetime
    pending_until: datetime | None
    expires_at: datetime
    remaining: int

    def order(self) -> tuple[datetime, datetime, int]:
        return (self.expires_at, self.earned_at, self.seq)


@dataclass
class MAccrual:
    record: int
    line: str
    amount_fen: int
    points: int
    growth: int
    lot: MLot | None
    refunded_fen: int = 0
    refunded_points: int = 0
    refunded_growth: int = 0
    cancelled: bool = False


@dataclass
class Model:
    owners: dict[int, int]  # record -> member
    lots: list[MLot] = field(default_factory=list)
    debt: dict[int, int] = field(default_factory=dict)
    growth: dict[int, int] = field(default_factory=dict)  # record -> net growth
    merged: set[int] = field(default_factory=set)
    keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    used_today: dict[date, int] = field(default_factory=dict)

    def spendable(self, member: int, now: datetime) -> list[MLot]:
        return sorted(
            (
                lot
                for lot in self.lots
                if lot.member == member
                and lot.state == "available"
                and lot.remaining > 0
                and now < lot.expires_at
            ),
            key=MLot.order,
        )

    def burn(self, member: int, points: int, now: datetime) -> int:
        taken = 0
        for lot in self.spendable(member, now):
            take = min(points - taken, lot.remaining)
            lot.remaining -= take
            taken += take
            if taken == points:
                break
        return taken

    def repay(self, member: int, now: datetime) -> None:
        owed = -self.debt.get(member, 0)
        if owed > 0:
            self.debt[member] = -owed + self.burn(member, owed, now)

    def accrue(self, acc: MAccrual, now: datetime, shipping_fen: int) -> None:
        member = self.owners[acc.record]
        self.growth[acc.record] = self.growth.get(acc.record, 0) + acc.growth
        if acc.points:
            pending = PENDING_DAYS[acc.line] > 0
            until = now + timedelta(days=PENDING_DAYS[acc.line]) if pending else None
            acc.lot = MLot(
                seq=len(self.lots),
                member=member,
                record=acc.record,
                state="pending" if pending else "available",
                earned_at=now,
                pending_until=until,
                expires_at=end_of_next_year(until or now),
                remaining=acc.points,
            )
            self.lots.append(acc.lot)
        self.repay(member, now)

    def reverse(self, acc: MAccrual, refund_fen: int | None, now: datetime) -> bool:
        amount = acc.amount_fen - acc.refunded_fen if refund_fen is None else refund_fen
        if acc.refunded_fen + amount > acc.amount_fen:
            return False
        total = acc.refunded_fen + amount
        if acc.amount_fen == 0:
            due, gdue = acc.points - acc.refunded_points, acc.growth - acc.refunded_growth
        else:
            due = acc.points * total // acc.amount_fen - acc.refunded_points
            gdue = acc.growth * total // acc.amount_fen - acc.refunded_growth
        acc.refunded_fen, acc.refunded_points = total, acc.refunded_points + due
        acc.refunded_growth += gdue
        self.growth[acc.record] -= gdue
        member = self.owners[acc.record]
        left = due
        lot = acc.lot
        if lot is not None and lot.remaining and left:
            take = min(left, lot.remaining)
            lot.remaining -= take
            left -= take
        if left and (lot is None or lot.state != "pending"):
            left -= self.burn(member, left, now)
        if left and acc.line == STORE:
            self.debt[member] = self.debt.get(member, 0) - left
        self.repay(member, now)
        return True

    def release(self, now: datetime) -> None:
        members = set()
        for lot in self.lots:
            if (
                lot.state == "pending"
                and lot.remaining > 0
                and lot.pending_until is not None
                and lot.pending_until <= now
            ):
                lot.state = "available"
                members.add(lot.member)
        for member in sorted(members):
            self.repay(member, now)

    def expire(self, now: datetime) -> None:
        for lot in self.lots:
            if lot.state == "available" and lot.remaining > 0 and lot.expires_at <= now:
                lot.remaining = 0

    def adjust(self, member: int, amount: int, now: datetime) -> None:
        if amount > 0:
            self.lots.append(
                MLot(
                    seq=len(self.lots),
                    member=member,
                    record=None,
                    state="available",
                    earned_at=now,
                    pending_until=None,
                    expires_at=end_of_next_year(now),
                    remaining=amount,
                )
            )
            self.repay(member, now)
        else:
            assert self.burn(member, -amount, now) == -amount

    def merge(self, absorbed: int, survivor: int) -> None:
        for record, owner in self.owners.items():
            if owner == absorbed:
                self.owners[record] = survivor
        for lot in self.lots:
            if lot.member == absorbed:
                lot.member = survivor
        self.debt[survivor] = self.debt.get(survivor, 0) + self.debt.pop(absorbed, 0)
        self.merged.add(absorbed)

    def move(self, record: int, member: int) -> None:
        self.owners[record] = member
        self.merged.discard(member)
        for lot in self.lots:
            if lot.record == record:
                lot.member = member

    def balances(self, member: int) -> dict[str, int]:
        held = {"available": 0, "pending": 0}
        for lot in self.lots:
            if lot.member == member:
                held[lot.state] += lot.remaining
        return {**held, "debt": self.debt.get(member, 0)}

    def member_growth(self, member: int) -> int:
        return sum(g for r, g in self.growth.items() if self.owners[r] == member)
