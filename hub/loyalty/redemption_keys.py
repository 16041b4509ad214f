"""Idempotency for redemption calls, in the shared ``idempotency_key`` table (migration 0001).

The key row is inserted first, inside the caller's transaction, with ``ON CONFLICT DO
NOTHING``: a second call with the same key waits on the first one's uncommitted row, then finds
it and replays the stored outcome, so two concurrent calls execute once. A typed error leaves
no writes behind but the key row keeps the error, so a retry gets the same error rather than a
second attempt. The caller's unit of work must commit after a typed error
(``redemption.run_redemption`` does).

Two ways to run a call: ``idempotent`` runs Python work under a savepoint (a typed error it
raises rolls back to it); hold, capture and cancel run as one database function each
(migration 0008) that claims the key, decides every typed error before its first write and
stores the outcome itself — ``key_args`` gives it the key's columns and ``outcome`` reads its
answer, replaying through the same code as ``idempotent``.

Keys are scoped per caller (``redemption:<role>:<subject>``) and kept at least
``KEEP_DAYS`` days (``purge_idempotency_keys``).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hub.core.audit import Actor
from hub.core.errors import IdempotencyConflict
from hub.loyalty import errors as loyalty_errors
from hub.loyalty import redemption_errors as rerrors
from hub.loyalty._sql import as_json

KEEP_DAYS = 30
MAX_KEY = 200
SCOPE_PREFIX = "redemption:"
R = TypeVar("R")

# Outcomes worth remembering: each is what the same input would give again right now.
REPLAYABLE: tuple[type[loyalty_errors.LoyaltyError], ...] = (
    loyalty_errors.InsufficientPoints,
    loyalty_errors.UnknownBusinessLine,
    rerrors.RedemptionError,
)
_BY_CODE: dict[str, type[loyalty_errors.LoyaltyError]] = {
    cls.code: cls
    for cls in (
        loyalty_errors.InsufficientPoints,
        loyalty_errors.UnknownBusinessLine,
        rerrors.InvalidRedemption,
        rerrors.NotRedeemableHere,
        rerrors.HoldNotFound,
        rerrors.AlreadyCaptured,
        rerrors.AlreadyCancelled,
        rerrors.HoldExpired,
        rerrors.NotCaptured,
        rerrors.RefundExceedsCaptured,
        rerrors.InvalidRedemptionCode,
        rerrors.PeriodClosed,
    )
}


def scope_for(actor: Actor) -> str:
    return f"{SCOPE_PREFIX}{actor.role}:{actor.id}"


def check_key(key: str) -> None:
    if not key.strip() or len(key) > MAX_KEY:
        raise rerrors.InvalidRedemption("idempotency_key", f"must be 1 to {MAX_KEY} characters")


# Built once: ``json.dumps`` with any option builds an encoder on every call, and a redemption
# encodes four requests (what these write is exactly what ``json.dumps`` with the same options
# writes, so stored hashes stay valid).
_CANONICAL = json.JSONEncoder(sort_keys=True, default=str)
_PLAIN = json.JSONEncoder(default=str)


def _digest(operation: str, request: Mapping[str, object]) -> str:
    body = _CANONICAL.encode({"op": operation, **request})
    return hashlib.sha256(body.encode()).hexdigest()


def error_payload(exc: loyalty_errors.LoyaltyError) -> dict[str, Any]:
    params = inspect.signature(type(exc).__init__).parameters
    args = {name: getattr(exc, name) for name in params if name != "self"}
    return {"error": exc.code, "args": args}


def error_from(payload: Mapping[str, Any]) -> loyalty_errors.LoyaltyError:
    cls = _BY_CODE[payload["error"]]
    return cls(**payload["args"])


async def idempotent(
    conn: Any,
    *,
    actor: Actor,
    key: str | None,
    operation: str,
    request: Mapping[str, object],
    run: Callable[[], Awaitable[R | loyalty_errors.LoyaltyError]],
    encode: Callable[[R], dict[str, Any]],
    decode: Callable[[dict[str, Any]], R],
) -> R:
    """Run ``run`` once per (caller, key); replay the first outcome for the same request.

    ``run`` may raise a typed error (its writes are undone) or return one (its writes stay,
    e.g. a capture that found the hold past its TTL and expired it).
    """
    scope = scope_for(actor)
    if key is not None:
        check_key(key)
        inserted = await conn.fetchval(
            "INSERT INTO idempotency_key (scope, key, operation, request_hash, request) "
            "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING RETURNING key",
            scope,
            key,
            operation,
            _digest(operation, request),
            json.dumps(dict(request), default=str),
        )
        if inserted is None:
            return await _replay(conn, scope, key, operation, request, decode)
    outcome: R | loyalty_errors.LoyaltyError
    try:
        async with conn.transaction():  # a savepoint inside the unit of work
            outcome = await run()
    except REPLAYABLE as exc:
        outcome = exc
    if key is not None:
        stored = (
            error_payload(outcome)
            if isinstance(outcome, loyalty_errors.LoyaltyError)
            else {"ok": encode(outcome)}
        )
        await conn.execute(
            "UPDATE idempotency_key SET response = $3::jsonb WHERE scope = $1 AND key = $2",
            scope,
            key,
            json.dumps(stored, default=str),
        )
    if isinstance(outcome, loyalty_errors.LoyaltyError):
        raise outcome
    return outcome


# The SQL types of ``key_args``' columns, as the redemption functions take them first.
KEY_TYPES = ("text", "text", "text", "jsonb")


def key_args(
    actor: Actor, key: str | None, operation: str, request: Mapping[str, object]
) -> tuple[str, str | None, str, str]:
    """(scope, key, request hash, request as JSON): the key row a database function claims
    (without a key there is no row, and the hash is not worth computing)."""
    if key is None:
        return scope_for(actor), None, "", "{}"
    check_key(key)
    return (
        scope_for(actor),
        key,
        _digest(operation, request),
        _PLAIN.encode(dict(request)),
    )


def outcome(
    result: object,
    *,
    key: str | None,
    operation: str,
    request: Mapping[str, object],
    decode: Callable[[dict[str, Any]], R],
    fresh: Callable[[dict[str, Any]], R],
) -> R:
    """A database function's answer: its ``ok`` value read by ``fresh``, the first call's
    outcome replayed (``decode``), or a typed error raised."""
    answer = as_json(result)
    if "replay" in answer:
        if key is None:  # pragma: no cover - the function claims no key it was not given
            raise RuntimeError("a replay without an idempotency key")
        return _replayed(as_json(answer["replay"]), key, operation, request, decode)
    if "error" in answer:
        raise error_from(answer)
    return fresh(as_json(answer["ok"]))


async def _replay(
    conn: Any,
    scope: str,
    key: str,
    operation: str,
    request: Mapping[str, object],
    decode: Callable[[dict[str, Any]], R],
) -> R:
    row = await conn.fetchrow(
        "SELECT operation, request_hash, request, response FROM idempotency_key "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    return _replayed(dict(row), key, operation, request, decode)


def _replayed(
    row: Mapping[str, Any],
    key: str,
    operation: str,
    request: Mapping[str, object],
    decode: Callable[[dict[str, Any]], R],
) -> R:
    if row["operation"] != operation:
        raise IdempotencyConflict(key, "operation")
    if row["request_hash"] != _digest(operation, request):
        first = as_json(row["request"])
        fields = sorted(set(first) | set(request))
        differs = [
            f
            for f in fields
            if json.dumps(first.get(f), default=str) != json.dumps(request.get(f), default=str)
        ]
        raise IdempotencyConflict(key, differs[0] if differs else "request")
    response = as_json(row["response"])
    if "error" in response:
        raise error_from(response)
    if "ok" not in response:  # pragma: no cover - the row is written in the same transaction
        raise RuntimeError("idempotency key without a stored outcome")
    return decode(response["ok"])


async def purge_idempotency_keys(*, conn: Any, now: datetime, keep_days: int = KEEP_DAYS) -> int:
    """Delete redemption keys older than ``keep_days`` (never fewer than ``KEEP_DAYS``)."""
    if keep_days < KEEP_DAYS:
        raise ValueError(f"redemption idempotency keys are kept at least {KEEP_DAYS} days")
    status = await conn.execute(
        "DELETE FROM idempotency_key WHERE scope LIKE $1 AND created_at < $2",
        SCOPE_PREFIX + "%",
        now - timedelta(days=keep_days),
    )
    return int(status.split()[-1])
