"""PIPL deletion: a member's PII and keyed hashes go, its pseudonymous history stays.

Every source record of the member loses its encrypted PII, its identifiers' keyed hashes, its
lookup keys, its observations' content digests and a PII-bearing source key (activities keep
pointing at it under ``erased:<id>``). The member row, identity events, links (without explain)
and every ledger row stay, so points history and settlement remain whole. Neighbours that shared a
blocking key or identifier with the erased records are re-resolved: the counts behind the limits
changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor, record_audit
from hub.core.pii import KeyRing
from hub.flows.members import (
    lock_active_member,
    records_of,
    remember,
    replayed,
    require_reason,
)
from hub.flows.resolution import Engine, loyalty_follow, resolve_records
from identity import store


@dataclass(frozen=True)
class EraseResult:
    member: int
    records: int
    operation: int


async def erase_member(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    member: int,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
) -> EraseResult:
    """PIPL deletion: every linked record loses its PII, keyed hashes and PII-bearing source
    key; the member keeps its id, so ledger history stays, pseudonymous."""
    reason = require_reason(reason)
    request = {"member": member, "reason": reason}
    if done := await replayed(session, actor, idempotency_key, "erase", request, EraseResult):
        return done
    engine = Engine(keyring=keyring)
    await store.lock_identity(session=session)
    await lock_active_member(session, member)
    conn = await store.driver(session)
    records = (await records_of(session, [member]))[member]
    removed = await store.drop_keys(session=session, ids=records)
    await _erase_rows(conn, member, records)
    operation = await store.next_operation(session=session)
    await store.write_events(
        session=session,
        operation=operation,
        events=[
            store.EventRow("erase", i, member, member, "agent:erase", None, actor.id, {})
            for i in records
        ],
    )
    # Its keys left the block and fan-out counts: neighbours may resolve differently now.
    neighbours = await store.key_holders(
        session=session, keys={k for keys in removed.values() for k in keys}
    )
    if neighbours:
        await resolve_records(
            session=session,
            engine=engine,
            record_ids=neighbours,
            loyalty=loyalty_follow(),
            actor=f"erase:{actor.id}",
            removed=removed,
        )
    result = EraseResult(member, len(records), operation)
    await record_audit(
        session=session,
        actor=actor,
        action="identity.erase",
        subject=f"member:{member}",
        reason=reason,
        details={"member_id": member, "records": len(records), "operation_id": operation},
    )
    await remember(session, actor, idempotency_key, result)
    return result


# Found through ``activity_person`` (a hash index on ``source_key``, migration 0023).
REKEY_ACTIVITIES = (
    "UPDATE activity a SET source_key = 'erased:' || s.id FROM source_record s "
    "WHERE s.id = ANY($1::bigint[]) AND a.source = s.source AND a.source_key = s.source_key"
)


async def _erase_rows(conn: Any, member: int, records: list[int]) -> None:
    await conn.execute(
        "DELETE FROM source_identifier WHERE source_record_id = ANY($1::bigint[])", records
    )
    await conn.execute(
        "DELETE FROM source_observation WHERE source_record_id = ANY($1::bigint[])", records
    )
    await conn.execute(
        "DELETE FROM review_item WHERE record_a = ANY($1::bigint[]) OR record_b = ANY($1::bigint[])",
        records,
    )
    # Activities keep pointing at the record, under its new pseudonymous key.
    await conn.execute(REKEY_ACTIVITIES, records)
    await conn.execute(
        "UPDATE source_record SET pii_enc = NULL, content_hash = 'erased', gender = NULL, "
        "attributes = '{}'::jsonb, source_key = 'erased:' || id, erased_at = now(), "
        "engine_root = NULL WHERE id = ANY($1::bigint[])",
        records,
    )
    await conn.execute(
        "UPDATE identity_link SET explain = '{}'::jsonb WHERE source_record_id = ANY($1::bigint[])",
        records,
    )
    await conn.execute(
        "UPDATE member SET status = 'erased', golden_enc = NULL, golden_masked = '{}'::jsonb, "
        "updated_at = now(), version = version + 1 WHERE id = $1",
        member,
    )
