"""GraphQL input types mirroring hub.core.records, and the ingest result union."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from hub.core.records import ActivityKind, ActivityStatus, Gender, IdentifierKind

IdentifierKindEnum = strawberry.enum(IdentifierKind, name="IdentifierKind")
ActivityKindEnum = strawberry.enum(ActivityKind, name="ActivityKind")
ActivityStatusEnum = strawberry.enum(ActivityStatus, name="ActivityStatus")
GenderEnum = strawberry.enum(Gender, name="Gender")


@strawberry.input(description="One identifier as the source knows it (raw; the hub normalises).")
class IdentifierInput:
    kind: IdentifierKindEnum  # type: ignore[valid-type]
    value: str
    scope: str | None = None
    verified: bool = False
    verified_at: datetime | None = None


@strawberry.input
class AddressInput:
    province: str | None = None
    city: str | None = None
    district: str | None = None
    detail: str | None = None
    country: str | None = None


@strawberry.input(description="What one source knows about one person (see SourceRecord).")
class SourceRecordInput:
    source: str
    source_key: str
    observed_at: datetime
    identifiers: list[IdentifierInput] = strawberry.field(default_factory=list)
    name: str | None = None
    name_latin: str | None = None
    gender: GenderEnum | None = None  # type: ignore[valid-type]
    birthday: date | None = None
    address: AddressInput | None = None
    consents: JSON | None = None
    attributes: JSON | None = None


@strawberry.input(description="Something a member did; amounts in integer fen (see Activity).")
class ActivityInput:
    source: str
    external_id: str
    kind: ActivityKindEnum  # type: ignore[valid-type]
    occurred_at: datetime
    status: ActivityStatusEnum  # type: ignore[valid-type]
    source_key: str | None = None
    amount_fen: int = 0
    quantity: int = 0
    original_external_id: str | None = None
    details: JSON | None = None


@strawberry.input
class IngestSourceRecordsInput:
    items: list[SourceRecordInput]
    business_line: str | None = strawberry.field(
        default=None, description="Admins only; partners push for their token's line."
    )


@strawberry.input
class IngestActivitiesInput:
    items: list[ActivityInput]
    business_line: str | None = None


@strawberry.type(description="An item that was not taken, by its position in the input list.")
class ItemError:
    index: int
    field: str | None
    reason: str


@strawberry.type
class IngestResult:
    read: int
    new: int
    unchanged: int
    updated: int
    rejected: int
    errors: list[ItemError]


@strawberry.type
class TooManyItems:
    limit: int
    message: str


@strawberry.type
class BusinessLineNotAllowed:
    message: str


IngestPayload = Annotated[
    IngestResult | TooManyItems | BusinessLineNotAllowed, strawberry.union("IngestPayload")
]
