"""Customer-service mutations: each takes one input and returns a success or a typed error.

Every one runs in its own unit of work through ``hub.flows.members`` (audited, idempotent by
``idempotencyKey``); a typed error rolls everything back, so nothing half-done is left.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.core.errors import IdempotencyConflict
from hub.flows import members as ops
from hub.flows.erasure import erase_member
from schema.context import Context
from schema.identity.queries import parse_id
from schema.identity.types import (
    AlreadyMergedError,
    ConflictingStrongKeysError,
    EraseMemberInput,
    IdempotencyConflictError,
    IdentityProblem,
    MemberErasedError,
    MemberErasedSuccess,
    MemberNotFoundError,
    MembersMerged,
    MemberUnmerged,
    MergeMembersInput,
    MoveSourceRecordInput,
    NothingToUnmergeError,
    ReasonRequiredError,
    ResolveReviewInput,
    ReviewAlreadyResolvedError,
    ReviewDecision,
    ReviewItemNotFoundError,
    ReviewResolved,
    SourceRecordMoved,
    SourceRecordNotFoundError,
    UnmaskedMember,
    UnmaskMemberInput,
    UnmergeMemberInput,
    gid,
    opt_gid,
)
from schema.permissions import IsAdmin, IsAgent

T = TypeVar("T")

MergeMembersResult = Annotated[
    MembersMerged
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | ConflictingStrongKeysError
    | ReasonRequiredError
    | IdempotencyConflictError,
    strawberry.union("MergeMembersResult"),
]
MoveSourceRecordResult = Annotated[
    SourceRecordMoved
    | SourceRecordNotFoundError
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | ConflictingStrongKeysError
    | NothingToUnmergeError
    | ReasonRequiredError
    | IdempotencyConflictError,
    strawberry.union("MoveSourceRecordResult"),
]
UnmergeMemberResult = Annotated[
    MemberUnmerged
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | NothingToUnmergeError
    | ReasonRequiredError
    | IdempotencyConflictError,
    strawberry.union("UnmergeMemberResult"),
]
ResolveReviewResult = Annotated[
    ReviewResolved
    | ReviewItemNotFoundError
    | ReviewAlreadyResolvedError
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | ReasonRequiredError
    | IdempotencyConflictError,
    strawberry.union("ResolveReviewResult"),
]
UnmaskMemberResult = Annotated[
    UnmaskedMember
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | ReasonRequiredError,
    strawberry.union("UnmaskMemberResult"),
]
EraseMemberResult = Annotated[
    MemberErasedSuccess
    | MemberNotFoundError
    | AlreadyMergedError
    | MemberErasedError
    | ReasonRequiredError
    | IdempotencyConflictError,
    strawberry.union("EraseMemberResult"),
]


def _problem(exc: ops.IdentityError | IdempotencyConflict) -> IdentityProblem:
    code, message = exc.code, exc.message
    if isinstance(exc, ops.AlreadyMerged):
        return AlreadyMergedError(code=code, message=message, merged_into=opt_gid(exc.into))
    if isinstance(exc, ops.ConflictingStrongKeys):
        return ConflictingStrongKeysError(code=code, message=message, kind=exc.kind)
    if isinstance(exc, ops.ReviewAlreadyResolved):
        return ReviewAlreadyResolvedError(code=code, message=message, status=exc.status)
    simple: dict[type[Exception], type[IdentityProblem]] = {
        ops.MemberNotFound: MemberNotFoundError,
        ops.SourceRecordNotFound: SourceRecordNotFoundError,
        ops.ReviewItemNotFound: ReviewItemNotFoundError,
        ops.MemberErased: MemberErasedError,
        ops.NothingToUnmerge: NothingToUnmergeError,
        ops.ReasonRequired: ReasonRequiredError,
        IdempotencyConflict: IdempotencyConflictError,
    }
    return simple[type(exc)](code=code, message=message)


async def _run(
    info: Info[Context, Any], work: Callable[[AsyncSession], Awaitable[T]]
) -> T | IdentityProblem:
    try:
        async with info.context.db.unit_of_work() as session:
            return await work(session)
    except (ops.IdentityError, IdempotencyConflict) as exc:
        return _problem(exc)


def _id(value: strawberry.ID | None, missing: Callable[[int], ops.IdentityError]) -> int:
    parsed = parse_id(value)
    if parsed is None:
        raise missing(0)
    return parsed


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(permission_classes=[IsAgent], description="Merge two members (audited).")
    async def merge_members(
        self, info: Info[Context, Any], input: MergeMembersInput
    ) -> MergeMembersResult:
        ctx = info.context

        async def work(session: AsyncSession) -> MembersMerged:
            r = await ops.merge_members(
                session=session,
                keyring=ctx.keyring,
                a=_id(input.member_a, ops.MemberNotFound),
                b=_id(input.member_b, ops.MemberNotFound),
                reason=input.reason,
                actor=ctx.actor,
                idempotency_key=input.idempotency_key,
            )
            return MembersMerged(
                survivor_id=gid(r.survivor),
                absorbed_id=gid(r.absorbed),
                operation=gid(r.operation),
                first_event_id=opt_gid(r.first_event_id),
            )

        return await _run(info, work)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAgent],
        description="Move one source record to another member, or out on its own (audited).",
    )
    async def move_source_record(
        self, info: Info[Context, Any], input: MoveSourceRecordInput
    ) -> MoveSourceRecordResult:
        ctx = info.context

        async def work(session: AsyncSession) -> SourceRecordMoved:
            target = None
            if input.to_member_id is not None:
                target = _id(input.to_member_id, ops.MemberNotFound)
            r = await ops.move_source_record(
                session=session,
                keyring=ctx.keyring,
                record=_id(input.source_record_id, ops.SourceRecordNotFound),
                to_member=target,
                reason=input.reason,
                actor=ctx.actor,
                idempotency_key=input.idempotency_key,
            )
            return SourceRecordMoved(
                source_record_id=gid(r.record),
                from_member_id=gid(r.from_member),
                to_member_id=gid(r.to_member),
                operation=gid(r.operation),
                first_event_id=opt_gid(r.first_event_id),
            )

        return await _run(info, work)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAgent],
        description="Split a member back to its state before an event (default: its last merge).",
    )
    async def unmerge_member(
        self, info: Info[Context, Any], input: UnmergeMemberInput
    ) -> UnmergeMemberResult:
        ctx = info.context

        async def work(session: AsyncSession) -> MemberUnmerged:
            r = await ops.unmerge_member(
                session=session,
                keyring=ctx.keyring,
                member=_id(input.member_id, ops.MemberNotFound),
                # An event id that names no event must not mean "the last merge" (None).
                to_event_id=None if input.to_event_id is None else parse_id(input.to_event_id) or 0,
                reason=input.reason,
                actor=ctx.actor,
                idempotency_key=input.idempotency_key,
            )
            return MemberUnmerged(
                member_id=gid(r.member),
                restored_member_ids=[gid(m) for m in r.restored_members],
                moved_source_record_ids=[gid(i) for i in r.moved_records],
                operation=gid(r.operation),
                first_event_id=opt_gid(r.first_event_id),
            )

        return await _run(info, work)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAgent], description="Accept (merge) or reject a review item."
    )
    async def resolve_review(
        self, info: Info[Context, Any], input: ResolveReviewInput
    ) -> ResolveReviewResult:
        ctx = info.context

        async def work(session: AsyncSession) -> ReviewResolved:
            r = await ops.resolve_review(
                session=session,
                keyring=ctx.keyring,
                item=_id(input.id, ops.ReviewItemNotFound),
                accept=input.decision is ReviewDecision.ACCEPT,
                reason=input.reason,
                actor=ctx.actor,
                idempotency_key=input.idempotency_key,
            )
            return ReviewResolved(id=gid(r.item), status=r.status, survivor_id=opt_gid(r.survivor))

        return await _run(info, work)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAgent],
        description="The member's golden record in clear; needs a reason, always audited.",
    )
    async def unmask_member(
        self, info: Info[Context, Any], input: UnmaskMemberInput
    ) -> UnmaskMemberResult:
        ctx = info.context

        async def work(session: AsyncSession) -> UnmaskedMember:
            member = _id(input.member_id, ops.MemberNotFound)
            g = await ops.unmask_member(
                session=session,
                keyring=ctx.keyring,
                member=member,
                reason=input.reason,
                actor=ctx.actor,
            )
            return UnmaskedMember(
                member_id=gid(member),
                name=g.get("name"),
                name_latin=g.get("name_latin"),
                gender=g.get("gender"),
                birthday=g.get("birthday"),
                address=cast(JSON, g.get("address")),
                identifiers=cast(JSON, g.get("identifiers") or {}),
            )

        return await _run(info, work)  # type: ignore[return-value]

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        description="PIPL deletion: erase the member's PII and keyed hashes; ledger history stays.",
    )
    async def erase_member(
        self, info: Info[Context, Any], input: EraseMemberInput
    ) -> EraseMemberResult:
        ctx = info.context

        async def work(session: AsyncSession) -> MemberErasedSuccess:
            r = await erase_member(
                session=session,
                keyring=ctx.keyring,
                member=_id(input.member_id, ops.MemberNotFound),
                reason=input.reason,
                actor=ctx.actor,
                idempotency_key=input.idempotency_key,
            )
            return MemberErasedSuccess(
                member_id=gid(r.member), source_records=r.records, operation=gid(r.operation)
            )

        return await _run(info, work)  # type: ignore[return-value]
