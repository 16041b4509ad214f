"""One-time redemption codes: a member shows one to a point of sale to redeem on its behalf.

A code is 12 random digits (what a POS scanner or a cashier's keypad takes), valid for
``DEFAULT_TTL_S`` seconds and usable once. Only a keyed hash is stored: twelve digits are few
enough that a plain hash could be reversed by trying them all. A member holds at most
``MAX_ACTIVE`` unexpired, unused codes at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.pii import KeyRing
from hub.loyalty._sql import driver
from hub.loyalty.redemption_errors import InvalidRedemption, InvalidRedemptionCode

DIGITS = 12
DEFAULT_TTL_S = 300
MAX_TTL_S = 900
MAX_ACTIVE = 10
_HASH_KIND = "redemption_code"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    code: str
    expires_at: datetime


def code_hash(keyring: KeyRing, code: str) -> str:
    return keyring.hash(_HASH_KIND, code.strip())


async def issue_redemption_code(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    member_id: int,
    now: datetime,
    ttl_s: int = DEFAULT_TTL_S,
) -> IssuedCode:
    if not 30 <= ttl_s <= MAX_TTL_S:
        raise InvalidRedemption("ttl_s", f"must be from 30 to {MAX_TTL_S} seconds")
    conn = await driver(session)
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM member WHERE id = $1)", member_id):
        raise InvalidRedemption("member", "no such member (merged or erased?)")
    # Serialise one member's issuances so two concurrent calls cannot both pass the cap.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('redemption_code'), $1::int)",
        member_id % 2_147_483_647,
    )
    active = await conn.fetchval(
        "SELECT count(*) FROM redemption_code WHERE member_id = $1 AND used_at IS NULL "
        "AND expires_at > $2",
        member_id,
        now,
    )
    if active >= MAX_ACTIVE:
        raise InvalidRedemption("redemption_code", f"at most {MAX_ACTIVE} unused codes at once")
    code = "".join(secrets.choice("0123456789") for _ in range(DIGITS))
    expires = now + timedelta(seconds=ttl_s)
    await conn.execute(
        "INSERT INTO redemption_code (code_hash, member_id, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4)",
        code_hash(keyring, code),
        member_id,
        now,
        expires,
    )
    return IssuedCode(code=code, expires_at=expires)


def code_format_error(code: str) -> InvalidRedemptionCode | None:
    """What is wrong with a code before it is looked up, if anything.

    The look-up and the one use happen in the hold itself (``redemption_hold_points`` in
    migration 0008): the code row is locked, so only one of two concurrent uses wins, and it is
    marked used only when the hold is placed.
    """
    text = code.strip()
    if not (len(text) == DIGITS and text.isdigit()):
        return InvalidRedemptionCode(f"must be {DIGITS} digits")
    return None
