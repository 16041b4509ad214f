"""Database helpers for ledger tests: members, source records and activities in plain SQL.

Identity resolution is someone else's module; these tests attach records to members directly,
the way it will, and call ``hub.loyalty.attribution`` for merges and unmerges.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from hub.loyalty.invariants import run_checks


async def make_member(session: AsyncSession) -> int:
    return int(await session.scalar(text("INSERT INTO member DEFAULT VALUES RETURNING id")))


async def make_record(
    session: AsyncSession,
    *,
    source: str = "pos",
    key: str,
    line: str = "store",
    member_id: int | None = None,
) -> int:
    return int(
        await session.scalar(
            text(
                "INSERT INTO source_record (source, source_key, business_line, observed_at, "
                "content_hash, member_id) VALUES (:s, :k, :l, now(), 'h', :m) RETURNING id"
            ),
            {"s": source, "k": key, "l": line, "m": member_id},
        )
    )


async def attach(session: AsyncSession, record_id: int, member_id: int | None) -> None:
    await session.execute(
        text("UPDATE source_record SET member_id = :m WHERE id = :r"),
        {"m": member_id, "r": record_id},
    )


async def make_activity(
    session: AsyncSession,
    *,
    external_id: str,
    key: str | None,
    occurred_at: datetime,
    amount_fen: int = 0,
    source: str = "pos",
    line: str = "store",
    kind: str = "purchase",
    status: str = "confirmed",
    quantity: int = 0,
    original: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    return int(
        await session.scalar(
            text(
                "INSERT INTO activity (source, external_id, kind, business_line, source_key, "
                "amount_fen, quantity, occurred_at, status, original_external_id, details, "
                "content_hash) VALUES (:s, :e, :kind, :l, :k, :a, :q, :at, :st, :o, "
                "CAST(:d AS jsonb), 'h') RETURNING id"
            ),
            {
                "s": source,
                "e": external_id,
                "kind": kind,
                "l": line,
                "k": key,
                "a": amount_fen,
                "q": quantity,
                "at": occurred_at,
                "st": status,
                "o": original,
                "d": json.dumps(details or {}),
            },
        )
    )


async def set_status(session: AsyncSession, activity_id: int, status: str) -> None:
    await session.execute(
        text("UPDATE activity SET status = :s WHERE id = :id"), {"s": status, "id": activity_id}
    )


async def balances(session: AsyncSession, member_id: int) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT kind, balance FROM loyalty_account WHERE member_id = :m"), {"m": member_id}
    )
    found = {k.removeprefix("member_"): int(b) for k, b in rows}
    return {k: found.get(k, 0) for k in ("available", "pending", "debt")}


async def problems(session: AsyncSession) -> list[str]:
    results = await run_checks(session)
    return [f"{p.check}: {p.detail}" for found in results.values() for p in found]
