"""Resolving holds exactly once: capture (all or part), cancel, expiry by TTL.

Each is one database function (``redemption_capture``, ``redemption_cancel``,
``redemption_expire``; migrations 0008 and 0010): it locks the member's available account and
the hold (a whole capture in time, the hold only: nothing of the member changes), checks the
hold's state, posts and returns the outcome in one round trip. See ``hub.loyalty.redemption``
for the postings and ``redemption_store`` for the lock order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hub.core.audit import Actor
from hub.core.batch import DbFunction
from hub.core.clock import utcnow
from hub.loyalty import settlement
from hub.loyalty._sql import Tx, call, driver
from hub.loyalty.ledger import GROUP_LINE
from hub.loyalty.model import Program
from hub.loyalty.redemption_keys import KEY_TYPES, key_args, outcome
from hub.loyalty.redemption_store import ANY, HoldRow, HoldScope
from hub.loyalty.redemption_views import HoldLot, Redemption, value_fen

EXPIRE_BATCH = 500
SWEEP_BATCH = 10_000  # due timers of resolved holds deleted per run
CAPTURE = DbFunction(
    "redemption_capture",
    (
        *KEY_TYPES,
        *("bigint", "bigint", "bigint", "text", "timestamptz", "text", "date"),
        # The program's issuers and prices are sent as array literals, made once per price list
        # (``_price_literals``): encoded from lists, the numeric array alone cost ~6 µs of client
        # CPU per call, three times the call's other arguments together.
        *("text::text[]", "text::numeric[]", "text"),
    ),
)
CANCEL = DbFunction(
    "redemption_cancel",
    (*KEY_TYPES, "bigint", "bigint", "text", "timestamptz", "text"),
)


@functools.lru_cache(maxsize=32)
def _price_literals(prices: tuple[tuple[str, Decimal], ...]) -> tuple[str, str]:
    """Issuing lines and their prices per point as PostgreSQL array literals."""
    return _array_literal(line for line, _ in prices), _array_literal(str(p) for _, p in prices)


def _array_literal(items: Iterable[str]) -> str:
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


def _fresh(view: dict[str, Any]) -> Redemption:
    return Redemption.from_json(view, replayed=False)


async def capture(
    *,
    session: Tx,
    program: Program,
    actor: Actor,
    hold_id: int,
    points: int | None = None,
    idempotency_key: str | None = None,
    scope: HoldScope = ANY,
    now: datetime | None = None,
) -> Redemption:
    """Spend all of a pending hold, or part of it (the rest goes back to its lots).

    Past its TTL the hold expires instead (its points come back, committed by
    ``run_redemption``) and ``HoldExpired`` is raised. Points issued by another line create
    settlement entries at the issuer's price (``hub.loyalty.settlement``).
    """
    at = now or utcnow()
    request = {"redemption_id": hold_id, "points": points}
    prices = program.settlement_fen_per_point
    result = await call(
        session,
        CAPTURE,
        (
            *key_args(actor, idempotency_key, "capture", request),
            hold_id,
            points,
            scope.member_id,
            scope.line,
            at,
            at.isoformat(),
            settlement.parse_period(settlement.period_of(at, program)),
            *_price_literals(tuple(prices.items())),
            GROUP_LINE,
        ),
        order=scope.member_id or hold_id,
    )
    return outcome(
        result,
        key=idempotency_key,
        operation="capture",
        request=request,
        decode=Redemption.from_json,
        fresh=_fresh,
    )


async def cancel(
    *,
    session: Tx,
    program: Program,
    actor: Actor,
    hold_id: int,
    idempotency_key: str | None = None,
    scope: HoldScope = ANY,
    now: datetime | None = None,
) -> Redemption:
    """Void a pending hold: every point goes back to the lot it came from."""
    at = now or utcnow()
    request = {"redemption_id": hold_id, "points": None}
    result = await call(
        session,
        CANCEL,
        (
            *key_args(actor, idempotency_key, "cancel", request),
            hold_id,
            scope.member_id,
            scope.line,
            at,
            at.isoformat(),
        ),
        order=scope.member_id or hold_id,
    )
    return outcome(
        result,
        key=idempotency_key,
        operation="cancel",
        request=request,
        decode=Redemption.from_json,
        fresh=_fresh,
    )


async def available_of(conn: Any, account: int) -> int:
    return int(await conn.fetchval("SELECT balance FROM loyalty_account WHERE id = $1", account))


def view_of(hold: HoldRow, available: int) -> Redemption:
    return Redemption(
        id=hold.id,
        member_id=hold.member_id,
        line=hold.line,
        points=hold.points,
        order_ref=hold.order_ref,
        state=hold.state,
        captured_points=hold.captured_points,
        refunded_points=hold.refunded_points,
        amount_fen=value_fen(hold.captured_points or hold.points, hold.fen_per_point),
        created_at=hold.created_at,
        expires_at=hold.expires_at,
        resolved_at=hold.resolved_at,
        available=available,
        lots=tuple(
            HoldLot(x.lot_id, x.issuer_line, x.points, x.captured, x.refunded) for x in hold.lots
        ),
    )


@dataclass(frozen=True, slots=True)
class ExpiryRun:
    holds: int
    points: int
    timers: int  # timers of holds no longer pending, deleted


async def expire_holds(
    *, session: Tx, program: Program, as_of: datetime, limit: int = EXPIRE_BATCH
) -> ExpiryRun:
    """Expire up to ``limit`` pending holds whose TTL passed by ``as_of`` (members in id order),
    then delete up to ``SWEEP_BATCH`` due timers of holds no longer pending.

    A hold's timer (``redemption_hold_timer``, migration 0029) is written with the hold and
    left alone by capture and cancel, so they update the hold in place; the timers of holds
    resolved before their TTL go here, in bulk, once due. Concurrent runs and captures are
    safe: each hold is re-checked under its lock, and one that a capture resolved first is
    skipped (its timer goes in this run's sweep or the next).
    """
    conn = await driver(session)
    due = await conn.fetch(
        "SELECT h.id FROM redemption_hold_timer t JOIN redemption_hold h ON h.id = t.hold_id "
        "WHERE t.expires_at <= $1 AND h.state = 'pending' ORDER BY h.member_id, h.id LIMIT $2",
        as_of,
        min(limit, EXPIRE_BATCH),
    )
    holds = points = 0
    for row in due:
        expired = await conn.fetchval("SELECT redemption_expire($1, $2)", row["id"], as_of)
        if expired is not None:
            holds += 1
            points += expired
    swept = await conn.fetchval(
        "WITH gone AS (DELETE FROM redemption_hold_timer WHERE hold_id IN ("
        " SELECT t.hold_id FROM redemption_hold_timer t JOIN redemption_hold h ON h.id = t.hold_id"
        " WHERE t.expires_at <= $1 AND h.state <> 'pending' LIMIT $2) RETURNING 1) "
        "SELECT count(*) FROM gone",
        as_of,
        SWEEP_BATCH,
    )
    return ExpiryRun(holds=holds, points=points, timers=int(swept))
