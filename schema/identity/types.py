"""Views for customer service: members, their source records, links, events and review items.

Agents see masked PII only (``member.golden_masked``, ``source_identifier.masked``); clear values
come only from the audited ``unmaskMember`` mutation.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.core.errors import HubError
from hub.core.pii import mask_text
from schema import ids
from schema.context import Context
from schema.identity.loaders import (
    EventRow,
    IdentifierRow,
    LinkRow,
    MemberRow,
    RecordRow,
    loaders,
)
from schema.loyalty.types import MemberLoyalty


def gid(value: int) -> strawberry.ID:
    return strawberry.ID(str(value))


def opt_gid(value: int | None) -> strawberry.ID | None:
    return None if value is None else gid(value)


def masked_key(source_key: str) -> str:
    """Source keys can be card numbers or hashed phones: never shown whole."""
    if "#" in source_key:
        return source_key.split("#", 1)[0] + "#…"
    return mask_text(source_key, limit=64)


@strawberry.type(description="An identifier of a source record, masked.")
class MaskedIdentifier:
    kind: str
    scope: str | None
    value: str = strawberry.field(description="Masked (e.g. 138****5678), or **** when opaque.")
    verified: bool

    @classmethod
    def from_model(cls, row: IdentifierRow) -> MaskedIdentifier:
        return cls(
            kind=row.kind,
            scope=row.scope or None,
            value=row.masked or "****",
            verified=row.verified,
        )


@strawberry.type(description="What one source knows about the member (PII masked).")
class MemberSourceRecord:
    id: strawberry.ID
    member_id: strawberry.ID | None
    source: str
    source_key: str = strawberry.field(description="Masked where it could identify a person.")
    business_line: str
    observed_at: datetime
    pinned: bool = strawberry.field(description="Placed by an agent; resolution keeps it there.")
    erased: bool
    row: strawberry.Private[RecordRow]

    @classmethod
    def from_model(cls, row: RecordRow) -> MemberSourceRecord:
        return cls(
            id=gid(row.id),
            member_id=opt_gid(row.member_id),
            source=row.source,
            source_key=masked_key(row.source_key),
            business_line=row.business_line,
            observed_at=row.observed_at,
            pinned=row.pinned,
            erased=row.erased,
            row=row,
        )

    @strawberry.field
    async def identifiers(self, info: Info[Context, Any]) -> list[MaskedIdentifier]:
        rows = await loaders(info.context).identifiers_by_source_record.load(self.row.id)
        return [MaskedIdentifier.from_model(r) for r in rows]


@strawberry.type(description="Why a record sits in its member: the rule or score, and explain.")
class IdentityLink:
    source_record_id: strawberry.ID
    linked_to: strawberry.ID | None
    rule: str = strawberry.field(description="key:<kind>, score, first, pinned_member, agent:<op>")
    score_bits: float | None
    explain: JSON = strawberry.field(description="Field comparisons and weights; never values.")
    created_at: datetime
    created_by: str

    @classmethod
    def from_model(cls, row: LinkRow) -> IdentityLink:
        return cls(
            source_record_id=gid(row.record),
            linked_to=opt_gid(row.linked_to),
            rule=row.rule,
            score_bits=row.score,
            explain=cast(JSON, row.explain),
            created_at=row.created_at,
            created_by=row.created_by,
        )


@strawberry.type(description="One change of a record's member (unmergeMember can go back to it).")
class IdentityEvent:
    id: strawberry.ID
    at: datetime
    kind: str
    source_record_id: strawberry.ID | None
    from_member: strawberry.ID | None
    to_member: strawberry.ID | None
    rule: str | None
    actor: str
    operation: strawberry.ID | None

    @classmethod
    def from_model(cls, row: EventRow) -> IdentityEvent:
        return cls(
            id=gid(row.id),
            at=row.at,
            kind=row.kind,
            source_record_id=opt_gid(row.record),
            from_member=opt_gid(row.from_member),
            to_member=opt_gid(row.to_member),
            rule=row.rule,
            actor=row.actor,
            operation=opt_gid(row.operation),
        )


@strawberry.type(description="A masked identifier value of the golden record.")
class MaskedValue:
    kind: str
    value: str


@strawberry.type(description="A unified member profile with masked PII (golden record).")
class MemberProfile:
    id: strawberry.ID
    status: str
    merged_into: strawberry.ID | None
    name: str | None
    name_latin: str | None
    gender: str | None
    birth_year: int | None
    address: str | None
    identifiers: list[MaskedValue]
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[MemberRow]

    @strawberry.field(
        description="Tier, points, ledger and benefits: what the member sees in `me`."
    )
    def loyalty(self) -> MemberLoyalty:
        return MemberLoyalty.from_model(self.row.id)

    @classmethod
    def from_model(cls, row: MemberRow) -> MemberProfile:
        g = row.golden_masked
        return cls(
            id=gid(row.id),
            status=row.status,
            merged_into=opt_gid(row.merged_into),
            name=g.get("name"),
            name_latin=g.get("name_latin"),
            gender=g.get("gender"),
            birth_year=g.get("birth_year"),
            address=g.get("address"),
            identifiers=[
                MaskedValue(kind=k, value=v) for k, v in (g.get("identifiers") or {}).items()
            ],
            created_at=row.created_at,
            updated_at=row.updated_at,
            row=row,
        )

    @strawberry.field
    async def source_records(self, info: Info[Context, Any]) -> list[MemberSourceRecord]:
        rows = await loaders(info.context).source_records_by_member.load(self.row.id)
        return [MemberSourceRecord.from_model(r) for r in rows]

    @strawberry.field
    async def links(self, info: Info[Context, Any]) -> list[IdentityLink]:
        rows = await loaders(info.context).links_by_member.load(self.row.id)
        return [IdentityLink.from_model(r) for r in rows]

    @strawberry.field(description="The newest changes to this member's records, newest first.")
    async def events(self, info: Info[Context, Any]) -> list[IdentityEvent]:
        rows = await loaders(info.context).events_by_member.load(self.row.id)
        return [IdentityEvent.from_model(r) for r in rows]


@strawberry.type(description="A proposed merge for customer service to accept or reject.")
class ReviewItem:
    id: strawberry.ID
    score_bits: float
    reason: str
    rule: str
    detail: str
    explain: JSON
    status: str
    created_at: datetime
    record_a_id: strawberry.Private[int]
    record_b_id: strawberry.Private[int]

    @strawberry.field
    async def record_a(self, info: Info[Context, Any]) -> MemberSourceRecord | None:
        row = await loaders(info.context).source_record_by_id.load(self.record_a_id)
        return MemberSourceRecord.from_model(row) if row else None

    @strawberry.field
    async def record_b(self, info: Info[Context, Any]) -> MemberSourceRecord | None:
        row = await loaders(info.context).source_record_by_id.load(self.record_b_id)
        return MemberSourceRecord.from_model(row) if row else None


@strawberry.type(description="Relay page info (named apart from other domains' page infos).")
class ReviewPageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class ReviewItemEdge:
    cursor: str
    node: ReviewItem


@strawberry.type(description="Open review items, in the order asked for.")
class ReviewItemConnection:
    edges: list[ReviewItemEdge]
    page_info: ReviewPageInfo


@strawberry.enum(description="The order of the review queue.")
class ReviewOrder(Enum):
    OLDEST = strawberry.enum_value("oldest", description="First come, first served.")
    MOST_LIKELY = strawberry.enum_value(
        "most_likely",
        description="Highest score first: the pairs most likely one person (quick accepts), "
        "then the doubtful ones.",
    )


@dataclass(frozen=True, slots=True)
class ReviewPosition:
    """Where the next page starts: after item ``item`` (most likely first: after its score)."""

    item: int
    score: float = 0.0


def cursor_of(item_id: int, score: float, order: ReviewOrder) -> str:
    text = (
        f"review:{item_id}"
        if order is ReviewOrder.OLDEST
        else f"review-likely:{float(score)!r}:{item_id}"
    )
    return base64.urlsafe_b64encode(text.encode()).decode()


def position_of(cursor: str | None, order: ReviewOrder) -> ReviewPosition | None:
    """The position a cursor of ``order`` names; a cursor from anywhere else (another order,
    another connection, not a cursor) is the caller's error, not the first page again."""
    if not cursor:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if order is ReviewOrder.OLDEST and kind == "review":
            item = ids.parse_id(value)
            if item is not None:
                return ReviewPosition(item)
        elif order is ReviewOrder.MOST_LIKELY and kind == "review-likely":
            score, _, item_text = value.rpartition(":")
            item = ids.parse_id(item_text)
            if item is not None:
                # any float, ``inf`` and ``nan`` too: PostgreSQL orders doubles totally
                return ReviewPosition(item, float(score))
    except (ValueError, UnicodeDecodeError):
        pass
    # A HubError reaches the caller as written; a ValueError was masked as an internal error.
    raise HubError(f"after: not a cursor from this review queue in {order.name} order")


# -- mutations: inputs, successes, typed errors --------------------------------------------------


@strawberry.enum
class ReviewDecision(Enum):
    ACCEPT = "accept"
    REJECT = "reject"


@strawberry.input
class MergeMembersInput:
    member_a: strawberry.ID
    member_b: strawberry.ID
    reason: str
    idempotency_key: str


@strawberry.input
class MoveSourceRecordInput:
    source_record_id: strawberry.ID
    to_member_id: strawberry.ID | None = strawberry.field(
        default=None, description="None: the record becomes a member of its own."
    )
    reason: str
    idempotency_key: str


@strawberry.input
class UnmergeMemberInput:
    member_id: strawberry.ID
    to_event_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Restore the state just before this event (default: the last merge).",
    )
    reason: str
    idempotency_key: str


@strawberry.input
class ResolveReviewInput:
    id: strawberry.ID
    decision: ReviewDecision
    reason: str
    idempotency_key: str


@strawberry.input
class UnmaskMemberInput:
    member_id: strawberry.ID
    reason: str


@strawberry.input
class EraseMemberInput:
    member_id: strawberry.ID
    reason: str
    idempotency_key: str


@strawberry.type
class MembersMerged:
    survivor_id: strawberry.ID
    absorbed_id: strawberry.ID
    operation: strawberry.ID
    first_event_id: strawberry.ID | None


@strawberry.type
class SourceRecordMoved:
    source_record_id: strawberry.ID
    from_member_id: strawberry.ID
    to_member_id: strawberry.ID
    operation: strawberry.ID
    first_event_id: strawberry.ID | None


@strawberry.type
class MemberUnmerged:
    member_id: strawberry.ID
    restored_member_ids: list[strawberry.ID]
    moved_source_record_ids: list[strawberry.ID]
    operation: strawberry.ID
    first_event_id: strawberry.ID | None


@strawberry.type
class ReviewResolved:
    id: strawberry.ID
    status: str
    survivor_id: strawberry.ID | None


@strawberry.type(description="The golden record in clear; this act is in the audit log.")
class UnmaskedMember:
    member_id: strawberry.ID
    name: str | None
    name_latin: str | None
    gender: str | None
    birthday: str | None
    address: JSON | None
    identifiers: JSON


@strawberry.type
class MemberErasedSuccess:
    member_id: strawberry.ID
    source_records: int
    operation: strawberry.ID


@strawberry.interface(description="A rule the request broke; nothing was changed.")
class IdentityProblem:
    code: str
    message: str


@strawberry.type
class MemberNotFoundError(IdentityProblem):
    pass


@strawberry.type
class SourceRecordNotFoundError(IdentityProblem):
    pass


@strawberry.type
class ReviewItemNotFoundError(IdentityProblem):
    pass


@strawberry.type
class AlreadyMergedError(IdentityProblem):
    merged_into: strawberry.ID | None = None


@strawberry.type
class MemberErasedError(IdentityProblem):
    pass


@strawberry.type
class ConflictingStrongKeysError(IdentityProblem):
    kind: str = ""


@strawberry.type
class ReviewAlreadyResolvedError(IdentityProblem):
    status: str = ""


@strawberry.type
class NothingToUnmergeError(IdentityProblem):
    pass


@strawberry.type
class ReasonRequiredError(IdentityProblem):
    pass


@strawberry.type
class IdempotencyConflictError(IdentityProblem):
    pass
