"""Per-request DataLoaders for the identity views: one SQL statement per batch of keys.

Created lazily in the request's ``Context.loaders.extra`` (so a request never sees another's
cache) and read through the request's shared connection (``Context.reads.fetch``), which
announces every statement to SQLAlchemy's events, so the query-count tests see each one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from strawberry.dataloader import DataLoader

from schema.context import Context, RequestReads

EVENTS_PER_MEMBER = 50


def _json_list(value: Any) -> list[Any]:
    loaded = orjson.loads(value) if isinstance(value, str) else value
    return list(loaded) if isinstance(loaded, list) else []


def json_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        loaded = orjson.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class MemberRow:
    id: int
    status: str
    merged_into: int | None
    golden_masked: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RecordRow:
    id: int
    member_id: int | None
    source: str
    source_key: str
    business_line: str
    observed_at: datetime
    pinned: bool
    erased: bool


@dataclass(frozen=True)
class IdentifierRow:
    kind: str
    scope: str
    masked: str | None
    verified: bool


@dataclass(frozen=True)
class LinkRow:
    record: int
    member: int
    linked_to: int | None
    rule: str
    score: float | None
    explain: dict[str, Any]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class EventRow:
    id: int
    at: datetime
    kind: str
    record: int | None
    from_member: int | None
    to_member: int | None
    rule: str | None
    actor: str
    operation: int | None


async def _rows(reads: RequestReads, statement: str, keys: Sequence[int]) -> list[Any]:
    return await reads.fetch(statement, list(keys))


RECORD_COLUMNS = (
    "id, member_id, source, source_key, business_line, observed_at, member_pinned, "
    "erased_at IS NOT NULL"
)
# asyncpg statements ($1: the batch's keys); the driver keeps each prepared per connection.
_MEMBERS = (
    "SELECT id, status, merged_into, golden_masked, created_at, updated_at "
    "FROM member WHERE id = ANY($1::bigint[])"
)
_RECORDS = f"SELECT {RECORD_COLUMNS} FROM source_record WHERE id = ANY($1::bigint[])"
_RECORDS_OF_MEMBERS = (
    f"SELECT {RECORD_COLUMNS}, (SELECT coalesce(json_agg(json_build_array(i.kind, i.scope, "
    "i.masked, i.verified) ORDER BY i.kind, i.scope), '[]') FROM source_identifier i "
    "WHERE i.source_record_id = r.id) FROM source_record r WHERE member_id = ANY($1::bigint[]) "
    "ORDER BY id"
)
_IDENTIFIERS = (
    "SELECT source_record_id, kind, scope, masked, verified FROM source_identifier "
    "WHERE source_record_id = ANY($1::bigint[]) ORDER BY source_record_id, kind, scope"
)
LINK_COLUMNS = (
    "source_record_id, member_id, linked_to, rule, score, explain, created_at, created_by"
)
_LINKS = (
    f"SELECT {LINK_COLUMNS} FROM identity_link WHERE member_id = ANY($1::bigint[]) "
    "ORDER BY source_record_id"
)
# The newest events that moved records into or out of each member: per member, the newest
# EVENTS_PER_MEMBER of each index range (to_member, id) and (from_member, id), then merged.
EVENT_COLUMNS = "id, at, kind, source_record_id, from_member, to_member, rule, actor, batch"


def events_sql(member: str) -> str:
    """The newest EVENTS_PER_MEMBER events into or out of ``member`` (an SQL expression)."""
    return (
        f"(SELECT {EVENT_COLUMNS} FROM identity_event WHERE to_member = {member} "
        f"ORDER BY id DESC LIMIT {EVENTS_PER_MEMBER}) UNION "
        f"(SELECT {EVENT_COLUMNS} FROM identity_event WHERE from_member = {member} "
        f"ORDER BY id DESC LIMIT {EVENTS_PER_MEMBER}) ORDER BY id DESC LIMIT {EVENTS_PER_MEMBER}"
    )


_EVENTS = (
    f"SELECT k.m, e.* FROM unnest($1::bigint[]) AS k(m) CROSS JOIN LATERAL ({events_sql('k.m')}) e "
    "ORDER BY k.m, e.id DESC"
)


def link_row(r: Any) -> LinkRow:
    return LinkRow(r[0], r[1], r[2], r[3], r[4], json_dict(r[5]), r[6], r[7])


class MemberByIdLoader(DataLoader[int, MemberRow | None]):
    def __init__(self, reads: RequestReads) -> None:
        async def load(keys: list[int]) -> list[MemberRow | None]:
            rows = await _rows(reads, _MEMBERS, keys)
            found = {r[0]: MemberRow(r[0], r[1], r[2], json_dict(r[3]), r[4], r[5]) for r in rows}
            return [found.get(k) for k in keys]

        super().__init__(load_fn=load)


class SourceRecordByIdLoader(DataLoader[int, RecordRow | None]):
    def __init__(self, reads: RequestReads) -> None:
        async def load(keys: list[int]) -> list[RecordRow | None]:
            rows = await _rows(reads, _RECORDS, keys)
            found = {r[0]: RecordRow(*r) for r in rows}
            return [found.get(k) for k in keys]

        super().__init__(load_fn=load)


class SourceRecordsByMemberLoader(DataLoader[int, list[RecordRow]]):
    """Members' records; each record's identifiers come along (a few rows each) and are primed
    into ``identifiers``, so a profile listing records with identifiers is one round trip."""

    def __init__(
        self, reads: RequestReads, identifiers: DataLoader[int, list[IdentifierRow]] | None = None
    ) -> None:
        async def load(keys: list[int]) -> list[list[RecordRow]]:
            rows = await _rows(reads, _RECORDS_OF_MEMBERS, keys)
            out: dict[int, list[RecordRow]] = {k: [] for k in keys}
            found: dict[int, list[IdentifierRow]] = {}
            for r in rows:
                out[r[1]].append(RecordRow(*r[:8]))
                found[r[0]] = [IdentifierRow(*i) for i in _json_list(r[8])]
            if identifiers is not None:
                identifiers.prime_many(found)
            return [out[k] for k in keys]

        super().__init__(load_fn=load)


class IdentifiersBySourceRecordLoader(DataLoader[int, list[IdentifierRow]]):
    def __init__(self, reads: RequestReads) -> None:
        async def load(keys: list[int]) -> list[list[IdentifierRow]]:
            rows = await _rows(reads, _IDENTIFIERS, keys)
            out: dict[int, list[IdentifierRow]] = {k: [] for k in keys}
            for r in rows:
                out[r[0]].append(IdentifierRow(r[1], r[2], r[3], r[4]))
            return [out[k] for k in keys]

        super().__init__(load_fn=load)


class LinksByMemberLoader(DataLoader[int, list[LinkRow]]):
    def __init__(self, reads: RequestReads) -> None:
        async def load(keys: list[int]) -> list[list[LinkRow]]:
            rows = await _rows(reads, _LINKS, keys)
            out: dict[int, list[LinkRow]] = {k: [] for k in keys}
            for r in rows:
                out[r[1]].append(link_row(r))
            return [out[k] for k in keys]

        super().__init__(load_fn=load)


class EventsByMemberLoader(DataLoader[int, list[EventRow]]):
    """The newest events that moved records into or out of each member."""

    def __init__(self, reads: RequestReads) -> None:
        async def load(keys: list[int]) -> list[list[EventRow]]:
            rows = await _rows(reads, _EVENTS, keys)
            out: dict[int, list[EventRow]] = {k: [] for k in keys}
            for r in rows:
                out[r[0]].append(EventRow(*r[1:]))
            return [out[k] for k in keys]

        super().__init__(load_fn=load)


@dataclass
class IdentityLoaders:
    """Typed as plain DataLoaders so the same views can be served from memory (the benchmark's
    GraphQL ceiling) with loaders that answer from a snapshot."""

    member_by_id: DataLoader[int, MemberRow | None]
    source_record_by_id: DataLoader[int, RecordRow | None]
    source_records_by_member: DataLoader[int, list[RecordRow]]
    identifiers_by_source_record: DataLoader[int, list[IdentifierRow]]
    links_by_member: DataLoader[int, list[LinkRow]]
    events_by_member: DataLoader[int, list[EventRow]]


def loaders(context: Context) -> IdentityLoaders:
    """This request's identity loaders (made on first use)."""
    found = context.loaders.extra.get("identity")
    if isinstance(found, IdentityLoaders):
        return found
    reads = context.reads
    identifiers = IdentifiersBySourceRecordLoader(reads)
    made = IdentityLoaders(
        MemberByIdLoader(reads),
        SourceRecordByIdLoader(reads),
        SourceRecordsByMemberLoader(reads, identifiers),
        identifiers,
        LinksByMemberLoader(reads),
        EventsByMemberLoader(reads),
    )
    context.loaders.extra["identity"] = made
    return made
