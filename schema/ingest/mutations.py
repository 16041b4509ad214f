"""Real-time pushes of canonical items: `ingestSourceRecords` / `ingestActivities`.

Up to MAX_ITEMS per call, the same pipeline and idempotency as file imports: an item is keyed by
(source, source_key) or (source, external_id), so a retried call changes nothing. A partner
pushes for its token's business line only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from hub.core import normalize
from hub.core.errors import RecordError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Address,
    Gender,
    Identifier,
    IdentifierKind,
    Parsed,
    SourceRecord,
)
from hub.core.tokens import Role
from hub.flows.hooks import default_hooks
from hub.flows.ingest import IngestReport, ingest
from schema.context import Context
from schema.ingest.types import (
    ActivityInput,
    BusinessLineNotAllowed,
    IdentifierInput,
    IngestActivitiesInput,
    IngestPayload,
    IngestResult,
    IngestSourceRecordsInput,
    ItemError,
    SourceRecordInput,
    TooManyItems,
)
from schema.permissions import IsPartnerOrAdmin

MAX_ITEMS = 1_000
T = TypeVar("T")

_NORMALISERS: dict[IdentifierKind, Callable[[str], str]] = {
    IdentifierKind.PHONE: normalize.phone_e164,
    IdentifierKind.PHONE_MASKED: normalize.masked_phone_pattern,
    IdentifierKind.EMAIL: normalize.email,
    IdentifierKind.ID_DOCUMENT: lambda v: (
        normalize.document_number(*v.split(":", 1))
        if ":" in v
        else normalize.document_number("ID_CARD", v)
    ),
}


def _identifier(i: int, item: IdentifierInput) -> Identifier:
    kind = IdentifierKind(item.kind)
    try:
        value = _NORMALISERS.get(kind, str.strip)(item.value)
    except ValueError as exc:
        raise RecordError(f"identifiers[{i}].value", str(exc)) from None
    return Identifier(kind, value, item.scope, item.verified, item.verified_at)


def _record(item: SourceRecordInput, line: str) -> SourceRecord:
    address = None
    if item.address is not None:
        a = item.address
        address = Address(a.province, a.city, a.district, a.detail, a.country)
    return SourceRecord(
        source=item.source,
        source_key=item.source_key,
        business_line=line,
        observed_at=item.observed_at,
        identifiers=tuple(_identifier(i, x) for i, x in enumerate(item.identifiers)),
        name=item.name,
        name_latin=item.name_latin,
        gender=Gender(item.gender) if item.gender else None,
        birthday=item.birthday,
        address=address,
        consents=_mapping(item.consents, "consents"),
        attributes={k: str(v) for k, v in _mapping(item.attributes, "attributes").items()},
    )


def _mapping(value: object, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(field, "must be a JSON object")
    return {str(k): v for k, v in value.items()}


def _activity(item: ActivityInput, line: str) -> Activity:
    return Activity(
        source=item.source,
        external_id=item.external_id,
        kind=ActivityKind(item.kind),
        business_line=line,
        occurred_at=item.occurred_at,
        status=ActivityStatus(item.status),
        source_key=item.source_key,
        amount_fen=item.amount_fen,
        quantity=item.quantity,
        original_external_id=item.original_external_id,
        details=_mapping(item.details, "details"),
    )


def _line(info: Info[Context, Any], requested: str | None) -> str | BusinessLineNotAllowed:
    principal = info.context.principal
    if principal.role is Role.ADMIN:
        if not requested:
            return BusinessLineNotAllowed(message="admins must name the businessLine")
        return requested
    assert principal.business_line is not None  # partner tokens always carry one
    if requested and requested != principal.business_line:
        return BusinessLineNotAllowed(
            message=f"a {principal.business_line} partner may not push {requested} data"
        )
    return principal.business_line


async def _run(
    info: Info[Context, Any],
    items: list[T],
    line: str,
    build: Callable[[T, str], Parsed],
    kind: str,
) -> IngestPayload:
    errors: list[ItemError] = []
    parsed: list[tuple[str, Parsed]] = []
    for index, item in enumerate(items):
        try:
            parsed.append((f"{kind}[{index}]", build(item, line)))
        except RecordError as exc:
            errors.append(ItemError(index=index, field=exc.field, reason=exc.reason))
    report = IngestReport(connector=f"graphql:{kind}")
    ctx = info.context
    await ingest(
        db=ctx.db,
        keyring=ctx.keyring,
        items=parsed,
        report=report,
        hooks=default_hooks(ctx.keyring),
    )
    return IngestResult(
        read=len(items),
        new=report.total("new"),
        unchanged=report.total("unchanged"),
        updated=report.total("updated"),
        rejected=len(errors),
        errors=errors,
    )


@strawberry.type
class IngestMutation:
    @strawberry.mutation(
        permission_classes=[IsPartnerOrAdmin],
        description=f"Push up to {MAX_ITEMS} source records; idempotent by (source, sourceKey).",
    )
    async def ingest_source_records(
        self, info: Info[Context, Any], input: IngestSourceRecordsInput
    ) -> IngestPayload:
        if len(input.items) > MAX_ITEMS:
            return TooManyItems(limit=MAX_ITEMS, message=f"at most {MAX_ITEMS} items per call")
        line = _line(info, input.business_line)
        if isinstance(line, BusinessLineNotAllowed):
            return line
        return await _run(info, input.items, line, _record, "sourceRecords")

    @strawberry.mutation(
        permission_classes=[IsPartnerOrAdmin],
        description=f"Push up to {MAX_ITEMS} activities; idempotent by (source, externalId).",
    )
    async def ingest_activities(
        self, info: Info[Context, Any], input: IngestActivitiesInput
    ) -> IngestPayload:
        if len(input.items) > MAX_ITEMS:
            return TooManyItems(limit=MAX_ITEMS, message=f"at most {MAX_ITEMS} items per call")
        line = _line(info, input.business_line)
        if isinstance(line, BusinessLineNotAllowed):
            return line
        return await _run(info, input.items, line, _activity, "activities")
