"""Customer-service operations on the partition: merge, move, unmerge, review, unmask.

Each operation runs in the caller's unit of work, takes the identity lock, writes one audit row
and the ``identity_event`` rows of every record whose member changed, and lets the ledger follow
(``LoyaltyFollow``). Mutations carry an idempotency key: a replay with the same input returns the
first result, the same key with another input is an ``IdempotencyConflict``. Records an agent
placed are pinned: later automatic resolution never moves them (``hub.flows.resolution``).
Typed errors live in ``hub.flows.identity_errors`` (re-exported here); erasure in
``hub.flows.erasure``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.audit import Actor, record_audit
from hub.core.errors import Conflict, IdempotencyConflict
from hub.core.pii import KeyRing
from hub.flows.identity_errors import (
    MAX_REASON,
    AlreadyMerged,
    ConflictingStrongKeys,
    IdentityError,
    MemberErased,
    MemberNotFound,
    NothingToUnmerge,
    ReasonRequired,
    ReviewAlreadyResolved,
    ReviewItemNotFound,
    SourceRecordNotFound,
)
from hub.flows.resolution import (
    Engine,
    LoyaltyFollow,
    loyalty_follow,
    write_golden,
)
from identity import store
from identity.graph import ReviewReason, ScoreAttempt, build_clusters

# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeResult:
    survivor: int
    absorbed: int
    operation: int
    first_event_id: int | None


@dataclass(frozen=True)
class MoveResult:
    record: int
    from_member: int
    to_member: int
    operation: int
    first_event_id: int | None


@dataclass(frozen=True)
class UnmergeResult:
    member: int
    restored_members: tuple[int, ...]
    moved_records: tuple[int, ...]
    operation: int
    first_event_id: int | None


@dataclass(frozen=True)
class ReviewResult:
    item: int
    status: str
    survivor: int | None


R = TypeVar("R")


# -- shared steps --------------------------------------------------------------------------------


def require_reason(reason: str) -> str:
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_REASON:
        raise ReasonRequired()
    return reason


async def replayed(
    session: AsyncSession,
    actor: Actor,
    key: str | None,
    operation: str,
    request: dict[str, Any],
    result: type[R],
) -> R | None:
    """The stored result of an earlier call with this key, or None (and the key is claimed)."""
    if key is None:
        return None
    conn = await store.driver(session)
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    scope = f"identity:{actor.id}"
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_key (scope, key, operation, request_hash, request) "
        "VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING RETURNING key",
        scope,
        key,
        operation,
        digest,
        json.dumps({k: v for k, v in request.items() if k != "reason"}),
    )
    if claimed is not None:
        return None
    row = await conn.fetchrow(
        "SELECT operation, request_hash, response FROM idempotency_key "
        "WHERE scope = $1 AND key = $2 FOR UPDATE",
        scope,
        key,
    )
    if row["operation"] != operation:
        raise IdempotencyConflict(key, "operation")
    if row["request_hash"] != digest:
        raise IdempotencyConflict(key, "input")
    if row["response"] is None:
        raise Conflict(f"idempotency key {key!r} is in use by a request that did not finish")
    data = json.loads(row["response"]) if isinstance(row["response"], str) else row["response"]
    return result(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


async def remember(session: AsyncSession, actor: Actor, key: str | None, result: Any) -> None:
    if key is None:
        return
    conn = await store.driver(session)
    await conn.execute(
        "UPDATE idempotency_key SET response = $3::jsonb WHERE scope = $1 AND key = $2",
        f"identity:{actor.id}",
        key,
        json.dumps(asdict(result)),
    )


async def lock_active_member(session: AsyncSession, member_id: int) -> None:
    conn = await store.driver(session)
    row = await conn.fetchrow(
        "SELECT status, merged_into FROM member WHERE id = $1 FOR UPDATE", member_id
    )
    if row is None:
        raise MemberNotFound(member_id)
    if row["status"] == "erased":
        raise MemberErased(member_id)
    if row["status"] == "merged":
        raise AlreadyMerged(member_id, row["merged_into"])


async def records_of(session: AsyncSession, member_ids: list[int]) -> dict[int, list[int]]:
    conn = await store.driver(session)
    rows = await conn.fetch(
        "SELECT id, member_id FROM source_record WHERE member_id = ANY($1::bigint[]) "
        "AND erased_at IS NULL ORDER BY id",
        member_ids,
    )
    out: dict[int, list[int]] = {m: [] for m in member_ids}
    for r in rows:
        out[r["member_id"]].append(r["id"])
    return out


async def _check_conflict(
    session: AsyncSession, engine: Engine, left: list[int], right: list[int]
) -> None:
    """Refuse to put two groups of records together when the engine's own protection would."""
    loaded = await store.load_records(session=session, keyring=engine.keyring, ids=[*left, *right])
    feats = {}
    sides: list[list[str]] = [[], []]
    for side, ids in enumerate((left, right)):
        for i in ids:
            rec = loaded.get(i)
            if rec is not None and rec.record is not None:
                f = engine.resolver.extractor.extract(rec.record)
                feats[f.rid] = f
                sides[side].append(f.rid)
    if not sides[0] or not sides[1]:
        return
    # Each side first holds together (it already is one member), then one attempt joins them.
    attempts = [ScoreAttempt(1e9, s[0], r) for s in sides for r in s[1:]]
    attempts.append(ScoreAttempt(-1e9, sides[0][0], sides[1][0]))
    result = build_clusters(feats, feats, [], attempts, config=engine.config)
    for item in result.refused:
        if item.reason is ReviewReason.CONFLICT and {item.a, item.b} == {sides[0][0], sides[1][0]}:
            raise ConflictingStrongKeys(item.detail or "strong key")


async def _place(
    session: AsyncSession,
    engine: Engine,
    *,
    moves: dict[int, tuple[int, int]],  # record -> (from member, to member)
    kind: str,
    reason: str,
    actor: Actor,
    pin_members: set[int],
) -> tuple[int, int | None]:
    """Move records, pin every record of the members involved, record the events, relink and
    rebuild the golden records. Returns (operation, first event id)."""
    conn = await store.driver(session)
    members = sorted(pin_members | {m for pair in moves.values() for m in pair})
    await conn.execute(
        "UPDATE source_record SET member_id = u.m FROM unnest($1::bigint[], $2::bigint[]) "
        "AS u(id, m) WHERE source_record.id = u.id",
        list(moves),
        [to for _, to in moves.values()],
    )
    await conn.execute(
        "UPDATE source_record SET member_pinned = true WHERE member_id = ANY($1::bigint[]) "
        "AND erased_at IS NULL",
        members,
    )
    operation = await store.next_operation(session=session)
    rule = f"agent:{kind}"
    first = await store.write_events(
        session=session,
        operation=operation,
        events=[
            store.EventRow(kind, i, frm, to, rule, reason, actor.id, {"role": actor.role})
            for i, (frm, to) in sorted(moves.items())
        ],
    )
    records = await records_of(session, members)
    anchor = {m: (ids[0] if ids else None) for m, ids in records.items()}
    await store.write_links(
        session=session,
        links=[
            store.LinkRow(
                i,
                to,
                anchor[to] if anchor[to] != i else None,
                rule,
                None,
                {"rule": rule, "event_id": first},
                actor.id,
            )
            for i, (_, to) in sorted(moves.items())
        ],
    )
    await store.relink_members(session=session, ids=[i for ids in records.values() for i in ids])
    await _rebuild_golden(session, engine, records)
    return operation, first


async def _rebuild_golden(
    session: AsyncSession, engine: Engine, records: dict[int, list[int]]
) -> None:
    ids = [i for group in records.values() for i in group]
    live = await store.load_records(session=session, keyring=engine.keyring, ids=ids)
    member_of = {i: m for m, group in records.items() for i in group if i in live}
    await write_golden(
        session=session, engine=engine, members=records, member_of=member_of, live=live
    )


# -- operations ----------------------------------------------------------------------------------


async def merge_members(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    a: int,
    b: int,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
    loyalty: LoyaltyFollow | None = None,
    engine: Engine | None = None,
    allow_conflict: bool = False,
) -> MergeResult:
    """Merge two members; the older id survives and every record of the other moves to it."""
    reason = require_reason(reason)
    request = {"a": a, "b": b, "reason": reason}
    if done := await replayed(session, actor, idempotency_key, "merge", request, MergeResult):
        return done
    engine = engine or Engine(keyring=keyring)
    await store.lock_identity(session=session)
    if a == b:
        raise AlreadyMerged(a, b)
    survivor, absorbed = sorted((a, b))
    for m in (survivor, absorbed):
        await lock_active_member(session, m)
    records = await records_of(session, [survivor, absorbed])
    if not allow_conflict:
        await _check_conflict(session, engine, records[survivor], records[absorbed])
    operation, first = await _place(
        session,
        engine,
        moves=dict.fromkeys(records[absorbed], (absorbed, survivor)),
        kind="merge",
        reason=reason,
        actor=actor,
        pin_members={survivor},
    )
    await store.retire_members(session=session, retired={absorbed: survivor})
    await _settle_reviews(session, records[survivor] + records[absorbed], "accepted", actor)
    await (loyalty or loyalty_follow()).follow_merge(
        session=session, absorbed=absorbed, survivor=survivor
    )
    result = MergeResult(survivor, absorbed, operation, first)
    await record_audit(
        session=session,
        actor=actor,
        action="identity.merge",
        subject=f"member:{survivor}",
        reason=reason,
        details={"survivor_id": survivor, "absorbed_id": absorbed, "operation_id": operation},
    )
    await remember(session, actor, idempotency_key, result)
    return result


async def _settle_reviews(
    session: AsyncSession, records: list[int], status: str, actor: Actor
) -> None:
    """Open items between records that now share a member are decided by that act."""
    conn = await store.driver(session)
    await conn.execute(
        "UPDATE review_item SET status = $2, resolved_at = now(), resolved_by = $3 "
        "WHERE status = 'open' AND record_a = ANY($1::bigint[]) AND record_b = ANY($1::bigint[])",
        records,
        status,
        actor.id,
    )


async def move_source_record(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    record: int,
    to_member: int | None,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
    loyalty: LoyaltyFollow | None = None,
) -> MoveResult:
    """Move one source record to another member, or out to a member of its own (``None``)."""
    reason = require_reason(reason)
    request = {"record": record, "to_member": to_member, "reason": reason}
    if done := await replayed(session, actor, idempotency_key, "move", request, MoveResult):
        return done
    engine = Engine(keyring=keyring)
    await store.lock_identity(session=session)
    conn = await store.driver(session)
    source = await conn.fetchval(
        "SELECT member_id FROM source_record WHERE id = $1 AND erased_at IS NULL FOR UPDATE",
        record,
    )
    if source is None:
        raise SourceRecordNotFound(record)
    if to_member is not None:
        await lock_active_member(session, to_member)
        if to_member == source:
            raise AlreadyMerged(to_member, to_member)
        target = await records_of(session, [to_member])
        await _check_conflict(session, engine, [record], target[to_member])
    else:
        if len((await records_of(session, [source]))[source]) == 1:
            raise NothingToUnmerge("the record is its member's only record already")
        to_member = (await store.allocate_member_ids(session=session, count=1))[0]
    operation, first = await _place(
        session,
        engine,
        moves={record: (source, to_member)},
        kind="move",
        reason=reason,
        actor=actor,
        pin_members={source, to_member},
    )
    left = await records_of(session, [source])
    if not left[source]:
        # Its last record left: the member is absorbed by the one that took it (its agent
        # adjustments and debt follow).
        await store.retire_members(session=session, retired={source: to_member})
        await (loyalty or loyalty_follow()).follow_merge(
            session=session, absorbed=source, survivor=to_member
        )
    await (loyalty or loyalty_follow()).reattribute(session=session, source_record_ids=[record])
    result = MoveResult(record, source, to_member, operation, first)
    await record_audit(
        session=session,
        actor=actor,
        action="identity.move",
        subject=f"member:{source}",
        reason=reason,
        details={
            "source_record_id": record,
            "from_member_id": source,
            "to_member_id": to_member,
            "operation_id": operation,
        },
    )
    await remember(session, actor, idempotency_key, result)
    return result


async def unmerge_member(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    member: int,
    to_event_id: int | None,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
    loyalty: LoyaltyFollow | None = None,
) -> UnmergeResult:
    """Split ``member`` back to where its records were just before event ``to_event_id``
    (default: the last operation that merged records into it). Records that joined after that
    point stay; the members they came from come back with their old ids."""
    reason = require_reason(reason)
    request = {"member": member, "to_event_id": to_event_id, "reason": reason}
    if done := await replayed(session, actor, idempotency_key, "unmerge", request, UnmergeResult):
        return done
    engine = Engine(keyring=keyring)
    await store.lock_identity(session=session)
    await lock_active_member(session, member)
    conn = await store.driver(session)
    if to_event_id is None:
        to_event_id = await conn.fetchval(
            "SELECT min(e.id) FROM identity_event e WHERE e.batch = ("
            "  SELECT batch FROM identity_event WHERE to_member = $1 AND kind = 'merge' "
            "  ORDER BY id DESC LIMIT 1) AND e.to_member = $1",
            member,
        )
        if to_event_id is None:
            raise NothingToUnmerge(f"nothing was ever merged into member {member}")
    records = (await records_of(session, [member]))[member]
    rows = await conn.fetch(
        "SELECT DISTINCT ON (source_record_id) source_record_id, to_member FROM identity_event "
        "WHERE source_record_id = ANY($1::bigint[]) AND id < $2 "
        "ORDER BY source_record_id, id DESC",
        records,
        to_event_id,
    )
    moves = {
        r["source_record_id"]: (member, r["to_member"])
        for r in rows
        if r["to_member"] is not None and r["to_member"] != member
    }
    erased = {
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM member WHERE id = ANY($1::bigint[]) AND status = 'erased'",
            sorted({to for _, to in moves.values()}),
        )
    }
    moves = {i: pair for i, pair in moves.items() if pair[1] not in erased}
    if not moves:
        raise NothingToUnmerge(f"member {member} is as it was before event {to_event_id}")
    restored = tuple(sorted({to for _, to in moves.values()}))
    await conn.execute(
        "UPDATE member SET status = 'active', merged_into = NULL, updated_at = now() "
        "WHERE id = ANY($1::bigint[])",
        list(restored),
    )
    operation, first = await _place(
        session,
        engine,
        moves=moves,
        kind="unmerge",
        reason=reason,
        actor=actor,
        pin_members={member},
    )
    await (loyalty or loyalty_follow()).reattribute(session=session, source_record_ids=list(moves))
    result = UnmergeResult(member, restored, tuple(sorted(moves)), operation, first)
    await record_audit(
        session=session,
        actor=actor,
        action="identity.unmerge",
        subject=f"member:{member}",
        reason=reason,
        details={
            "member_id": member,
            "to_event_id": to_event_id,
            "restored_member_ids": list(restored),
            "records": len(moves),
            "operation_id": operation,
        },
    )
    await remember(session, actor, idempotency_key, result)
    return result


async def resolve_review(
    *,
    session: AsyncSession,
    keyring: KeyRing,
    item: int,
    accept: bool,
    reason: str,
    actor: Actor,
    idempotency_key: str | None = None,
    loyalty: LoyaltyFollow | None = None,
) -> ReviewResult:
    """Accept (merge the two members) or reject (keep them apart for good) a review item.
    Accepting overrides a strong-key conflict: the conflict is what the agent was shown."""
    reason = require_reason(reason)
    request = {"item": item, "accept": accept, "reason": reason}
    if done := await replayed(session, actor, idempotency_key, "review", request, ReviewResult):
        return done
    await store.lock_identity(session=session)
    conn = await store.driver(session)
    row = await conn.fetchrow(
        "SELECT r.status, a.member_id AS ma, b.member_id AS mb FROM review_item r "
        "JOIN source_record a ON a.id = r.record_a JOIN source_record b ON b.id = r.record_b "
        "WHERE r.id = $1 FOR UPDATE OF r",
        item,
    )
    if row is None:
        raise ReviewItemNotFound(item)
    if row["status"] != "open":
        raise ReviewAlreadyResolved(item, row["status"])
    survivor: int | None = None
    members = sorted({row["ma"], row["mb"]})
    if accept and len(members) == 2:
        merged = await merge_members(
            session=session,
            keyring=keyring,
            a=members[0],
            b=members[1],
            reason=reason,
            actor=actor,
            loyalty=loyalty,
            allow_conflict=True,
        )
        survivor = merged.survivor
    elif not accept:
        # Rejected: both members as they are now are the agent's decision.
        await conn.execute(
            "UPDATE source_record SET member_pinned = true WHERE member_id = ANY($1::bigint[])",
            members,
        )
    status = "accepted" if accept else "rejected"
    await conn.execute(
        "UPDATE review_item SET status = $2, resolved_at = now(), resolved_by = $3 WHERE id = $1",
        item,
        status,
        actor.id,
    )
    result = ReviewResult(item, status, survivor)
    await record_audit(
        session=session,
        actor=actor,
        action=f"identity.review.{'accept' if accept else 'reject'}",
        subject=f"review:{item}",
        reason=reason,
        details={"review_item_id": item, "member_ids": members, "survivor_id": survivor},
    )
    await remember(session, actor, idempotency_key, result)
    return result


async def unmask_member(
    *, session: AsyncSession, keyring: KeyRing, member: int, reason: str, actor: Actor
) -> dict[str, Any]:
    """The member's golden record in clear, for an agent with a reason; audited every time.
    Not stored for idempotent replay (that would keep PII); a repeat simply unmasks again."""
    reason = require_reason(reason)
    conn = await store.driver(session)
    row = await conn.fetchrow(
        "SELECT status, merged_into, golden_enc FROM member WHERE id = $1", member
    )
    if row is None:
        raise MemberNotFound(member)
    if row["status"] == "erased":
        raise MemberErased(member)
    if row["status"] == "merged":
        raise AlreadyMerged(member, row["merged_into"])
    golden: dict[str, Any] = {}
    if row["golden_enc"]:
        golden = json.loads(keyring.decrypt(row["golden_enc"], aad=store.golden_aad(member)))
    await record_audit(
        session=session,
        actor=actor,
        action="identity.unmask",
        subject=f"member:{member}",
        reason=reason,
        details={"member_id": member, "fields": sorted(k for k, v in golden.items() if v)},
    )
    return golden


__all__ = [
    "AlreadyMerged",
    "ConflictingStrongKeys",
    "IdentityError",
    "MemberErased",
    "MemberNotFound",
    "MergeResult",
    "MoveResult",
    "NothingToUnmerge",
    "ReasonRequired",
    "ReviewAlreadyResolved",
    "ReviewItemNotFound",
    "ReviewResult",
    "SourceRecordNotFound",
    "UnmergeResult",
    "merge_members",
    "move_source_record",
    "resolve_review",
    "unmask_member",
    "unmerge_member",
]
