"""Cross-business redemption, two-phase: quote → hold → capture / cancel / expire → refund.

Postings (every transfer keyed ``redeem:<hold>:<event>/<leg>``):

    hold      member available → redemption_hold[B]        points leave ``available`` at once
    capture   redemption_hold[B] → redemption_clearing[B]  B took the points as payment
              redemption_clearing[A] → issuance[A]         per issuing line A: its points used up
    void      redemption_hold[B] → member available        cancel, expiry, uncaptured remainder
    refund    redemption_clearing[B] → member available    the points go back to their lots
              issuance[A] → redemption_clearing[A]

Lots: a hold takes points from the member's lots FIFO by expiry across issuers and remembers
how much from each (``redemption_hold_lot``); whatever comes back goes to the very same lots,
or to the issuer's expiry account when the lot expired in the meantime. So available = Σ lots
still holds, and every hold's points are accounted for in exactly one place.

Exactly once: the hold row is locked and its state checked before anything moves; a second
resolve is a typed error (``AlreadyCaptured``, ``AlreadyCancelled``, ``HoldExpired``) and a
trigger refuses any illegal state change. Capture or cancel of a pending hold past its TTL
expires it (the points come back) and reports ``HoldExpired``.

Concurrency: rows are locked in one order (``redemption_store``); the member's available
balance is checked under its row lock and a CHECK constraint backs it up, so N concurrent holds
on one balance succeed exactly as far as it goes. ``run_redemption`` runs a service in its own
unit of work, retries deadlock and serialization failures a bounded number of times, and
commits typed errors so the idempotency key remembers them (``redemption_keys``).

Round trips: hold, capture and cancel (and each hold an expiry run resolves) are one PL/pgSQL
function each (migrations 0008 and 0010), which claims the idempotency key, locks, checks,
posts and stores the outcome. ``run_redemption`` sends each as one statement, atomic and
committed on its own, so a hold plus its capture is two round trips (~37 before 0008, 6 with
BEGIN and COMMIT around each); calls other requests make at the same moment share that
statement and its commit (``hub.core.batch``: same outcomes, half the database's work per
redemption at eight concurrent ones). Python validates the input, prices it from the program
and shapes the answer.

Modules: this one (quote, hold, the retrying runner), ``redemption_resolve`` (capture, cancel,
expiry), ``redemption_refund``, ``redemption_store`` (rows, locks, returns to lots),
``redemption_keys`` (idempotency), ``redemption_codes`` (one-time codes), ``settlement``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from hub.core.audit import Actor, record_audit_on
from hub.core.batch import DbFunction
from hub.core.clock import utcnow
from hub.core.db import Database
from hub.core.errors import IdempotencyConflict
from hub.core.pii import KeyRing
from hub.loyalty._sql import Deferred, Tx, call, driver, has_sqlstate
from hub.loyalty.errors import LoyaltyError
from hub.loyalty.lots import Lot, allocate, usable
from hub.loyalty.model import Program
from hub.loyalty.redemption_codes import code_format_error, code_hash
from hub.loyalty.redemption_errors import InvalidRedemption
from hub.loyalty.redemption_keys import KEY_TYPES, error_payload, key_args, outcome
from hub.loyalty.redemption_refund import refund_redemption
from hub.loyalty.redemption_resolve import ExpiryRun, cancel, capture, expire_holds
from hub.loyalty.redemption_store import PENDING, HoldScope
from hub.loyalty.redemption_views import (
    MAX_POINTS,
    HoldLot,
    LotUse,
    Quote,
    Redemption,
    check_points,
    points_for_fen,
    rate_of,
    value_fen,
)

__all__ = [
    "ExpiryRun",
    "HoldLot",
    "HoldScope",
    "LotUse",
    "Quote",
    "Redemption",
    "Tx",
    "cancel",
    "capture",
    "expire_holds",
    "place_hold",
    "points_for_fen",
    "quote_redemption",
    "rate_of",
    "refund_redemption",
    "run_redemption",
    "value_fen",
]

DEFAULT_HOLD_TTL_S = 900
MIN_HOLD_TTL_S = 10
MAX_HOLD_TTL_S = 86_400
MAX_ORDER_REF = 128
MAX_REASON = 500
MAX_ATTEMPTS = 6
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
PLACE_HOLD = DbFunction(
    "redemption_place_hold",
    (
        *KEY_TYPES,
        *("jsonb", "bigint", "text", "text", "text", "text", "bigint", "text", "numeric", "text"),
        *("timestamptz", "timestamptz", "jsonb"),
    ),
)
R = TypeVar("R")


async def quote_redemption(
    *,
    session: Tx,
    program: Program,
    member_id: int,
    line: str,
    points: int | None = None,
    amount_fen: int | None = None,
    now: datetime | None = None,
) -> Quote:
    """Points for a value (or the value of points) at ``line``, and the lots a hold would use."""
    at = now or utcnow()
    rate = rate_of(program, line)
    if (points is None) == (amount_fen is None):
        raise InvalidRedemption("points", "give either points or amountFen")
    if amount_fen is not None:
        if not 0 < amount_fen <= value_fen(MAX_POINTS, rate):
            raise InvalidRedemption("amount_fen", "must be positive and within the points cap")
        points = points_for_fen(amount_fen, rate)
    assert points is not None
    check_points(points)
    conn = await driver(session)
    rows = await conn.fetch(
        "SELECT id, issuer_line, earned_at, expires_at, remaining FROM loyalty_lot "
        "WHERE member_id = $1 AND state = 'available' AND has_points",
        member_id,
    )
    lots = usable(
        (
            Lot(r["id"], r["issuer_line"], r["earned_at"], r["expires_at"], r["remaining"])
            for r in rows
        ),
        at=at,
    )
    have = sum(lot.remaining for lot in lots)
    take = min(points, have)
    expires = {lot.id: lot.expires_at for lot in lots}
    uses = allocate(lots, take, at=at) if take else []
    return Quote(
        line=line,
        points=points,
        amount_fen=value_fen(points, rate),
        fen_per_point=rate,
        available=have,
        enough=have >= points,
        lots=tuple(LotUse(int(b.lot_id), b.issuer_line, b.points, expires[b.lot_id]) for b in uses),
    )


async def place_hold(
    *,
    session: Tx,
    program: Program,
    actor: Actor,
    line: str,
    points: int,
    order_ref: str,
    idempotency_key: str,
    member_id: int | None = None,
    redemption_code: str | None = None,
    keyring: KeyRing | None = None,
    hold_ttl_s: int | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> Redemption:
    """Reserve ``points`` of a member (named, or by its one-time code) for an order at ``line``."""
    at = now or utcnow()
    ttl = DEFAULT_HOLD_TTL_S if hold_ttl_s is None else hold_ttl_s
    rate = rate_of(program, line)
    check_points(points)
    if not MIN_HOLD_TTL_S <= ttl <= MAX_HOLD_TTL_S:
        raise InvalidRedemption("hold_ttl_s", f"must be from {MIN_HOLD_TTL_S} to {MAX_HOLD_TTL_S}")
    if not order_ref.strip() or len(order_ref) > MAX_ORDER_REF:
        raise InvalidRedemption("order_ref", f"must be 1 to {MAX_ORDER_REF} characters")
    if reason is not None and not (reason.strip() and len(reason) <= MAX_REASON):
        raise InvalidRedemption("reason", f"must be 1 to {MAX_REASON} characters")
    if redemption_code is not None and keyring is None:
        raise ValueError("a redemption code needs the keyring to look it up")
    expires_at = at + timedelta(seconds=ttl)
    digest = code_hash(keyring, redemption_code) if redemption_code and keyring else None
    request = {
        "line": line,
        "points": points,
        "order_ref": order_ref,
        "hold_ttl_s": ttl,
        "member_id": member_id,
        "redemption_code": digest,
        "reason": reason,
    }
    # Errors known before asking the database are still remembered under the key, like every
    # outcome of the call (a replay with a valid code must not run what failed the first time).
    early: LoyaltyError | None = None
    if redemption_code is not None:
        early = code_format_error(redemption_code)
    elif member_id is None:
        early = InvalidRedemption("member_id", "name the member or give its redemption code")
    # What the database does not decide, as the caller will see it; the function fills in the
    # hold's id, member, lots and the available points left.
    view = Redemption(
        id=0,
        member_id=member_id or 0,
        line=line,
        points=points,
        order_ref=order_ref,
        state=PENDING,
        captured_points=0,
        refunded_points=0,
        amount_fen=value_fen(points, rate),
        created_at=at,
        expires_at=expires_at,
        resolved_at=None,
        available=0,
        lots=(),
    )
    args = (
        *key_args(actor, idempotency_key, "redeem_points", request),
        json.dumps(error_payload(early)) if early else None,
        member_id,
        digest if early is None else None,
        actor.id,
        actor.role,
        line,
        points,
        order_ref,
        rate,
        reason,
        at,
        expires_at,
        json.dumps(view.to_json()) if idempotency_key is not None else None,
    )
    # One call, batched with other holds (ordered by member), unless an agent's reason is
    # audited next to it in the same transaction.
    if reason is not None:
        conn = await driver(session)
        result = await conn.fetchval(PLACE_HOLD.sql, *args)
    else:
        result = await call(session, PLACE_HOLD, args, order=member_id or 0)
    hold = outcome(
        result,
        key=idempotency_key,
        operation="redeem_points",
        request=request,
        decode=Redemption.from_json,
        fresh=lambda ok: replace(
            view,
            id=ok["id"],
            member_id=ok["member_id"],
            available=ok["available"],
            lots=tuple(HoldLot(**lot) for lot in ok["lots"]),
        ),
    )
    if reason is not None and not hold.replayed:
        await record_audit_on(
            conn,
            actor=actor,
            action="loyalty.redeem_points",
            subject=f"member:{hold.member_id}",
            reason=reason.strip(),
            details={"hold_id": hold.id, "points": points, "line": line},
        )
    return hold


async def run_redemption(
    *,
    db: Database,
    work: Callable[[Tx], Awaitable[R]],
    attempts: int = MAX_ATTEMPTS,
) -> R:
    """Run ``work`` in its own transaction; retry deadlocks and serialization failures.

    ``work`` gets a ``Deferred`` transaction: a service that is one database function sends it
    through ``call`` (batched with other tasks' calls, ``hub.core.batch``), one that needs more
    takes ``driver`` (a transaction on a connection of its own, BEGIN first). A typed loyalty
    error (or an idempotency conflict) still commits — the idempotency key must keep the error
    it produced — and is raised after the commit. No deadlock reaches a client unless it
    repeats ``attempts`` times.
    """
    for attempt in range(1, attempts + 1):
        failure: LoyaltyError | IdempotencyConflict | None = None
        try:
            async with AsyncExitStack() as stack:
                try:
                    return await work(Deferred(db, stack))
                except (LoyaltyError, IdempotencyConflict) as exc:
                    failure = exc
        except Exception as exc:
            if attempt < attempts and has_sqlstate(exc, _RETRY_SQLSTATES):
                await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
                continue
            raise
        raise failure
    raise AssertionError("unreachable")  # pragma: no cover
