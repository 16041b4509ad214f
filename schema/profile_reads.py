"""A profile view's reads in one statement: `member(id)` for agents and `me` for members.

Before their children resolve, the two root fields look at what the operation selects
(``wants``) and read it all in one round trip (``ProfileReads.load``): the member row; its
source records with their identifiers, its links and its events; loyalty points, tier and
benefit claims; the first ledger page. The answers are primed into the request's DataLoaders,
so the nested resolvers find them there and issue no statement of their own. Anything the
walk does not recognise (a ledger cursor that is not one, a directive) is simply not prefetched:
the loaders read it as before, so this is a shortcut, never a second source of truth.

Each nested part is a correlated ``ARRAY(SELECT ROW(…))``, which asyncpg decodes in binary
(timestamps and numbers come typed), and each part is skipped inside PostgreSQL when its flag
is false, so a view that asks for less costs less.

The member is one scalar parameter, not an array: PostgreSQL then estimates the prepared
statement's generic plan as well as a custom one and keeps it (``plan_cache_mode = auto``).
With ``= ANY($1::bigint[])`` it estimated ten members, so it planned the statement afresh on
every execution: measured on the 100,000-member bench database, 2.0 ms a view against 0.6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    SelectionSetNode,
    StringValueNode,
    VariableNode,
)
from strawberry.types import Info

from hub.loyalty import views
from schema.context import Context, RequestReads
from schema.identity import loaders as identity
from schema.limits import page_size
from schema.loyalty import loaders as loyalty
from schema.loyalty.types import decode_cursor

LOYALTY_SUMMARY = frozenset({"tier", "points", "benefits"})


@dataclass(frozen=True, slots=True)
class Wants:
    member: bool = True  # the member row (the agent view always; `me` for its profile)
    records: bool = False  # source records, with their identifiers
    links: bool = False
    events: bool = False
    summary: bool = False  # points, tier, benefits
    ledger: tuple[int, int | None] | None = None  # (first, after transfer id) of one page

    @property
    def loyalty(self) -> bool:
        return self.summary or self.ledger is not None


_M = "k.id"
_PROFILE = f"""
SELECT k.id, m.id IS NOT NULL, m.status, m.merged_into, m.golden_masked, m.created_at,
  m.updated_at,
  CASE WHEN $6::bool THEN ARRAY(
    SELECT ROW({identity.RECORD_COLUMNS}, ARRAY(
        SELECT ROW(i.kind, i.scope, i.masked, i.verified) FROM source_identifier i
        WHERE i.source_record_id = r.id ORDER BY i.kind, i.scope))
    FROM source_record r WHERE r.member_id = {_M} ORDER BY r.id) END,
  CASE WHEN $7::bool THEN ARRAY(
    SELECT ROW({identity.LINK_COLUMNS}) FROM identity_link
    WHERE member_id = {_M} ORDER BY source_record_id) END,
  CASE WHEN $8::bool THEN ARRAY(
    SELECT ROW({identity.EVENT_COLUMNS}) FROM ({identity.events_sql(_M)}) e ORDER BY e.id DESC)
    END,
  CASE WHEN $9::bool THEN ARRAY(
    SELECT ROW(s.member_id, s.part, s.label, s.amount, s.at)
    FROM ({views.summary_sql("= " + _M)}) s) END,
  CASE WHEN $10::int IS NOT NULL THEN ARRAY(
    SELECT ROW(l.id, l.at, l.code, l.reason, l.delta, l.pending)
    FROM ({views.ledger_sql(_M, "$10::int", "$11::bigint")}) l ORDER BY l.id DESC) END
FROM (SELECT $1::bigint AS id) k LEFT JOIN member m ON m.id = k.id
"""


class ProfileReads:
    """Reads profile views in one statement and primes the request's loaders with them.

    ``ProfileReads(None)`` reads nothing (the benchmark's in-memory loaders answer alone)."""

    def __init__(self, reads: RequestReads | None) -> None:
        self._reads = reads

    async def load(self, info: Info[Context, Any], member: int, wants: Wants) -> None:
        if self._reads is None or not (wants.member or wants.loyalty):
            return
        ident = identity.loaders(info.context)
        loy = loyalty.loaders(info) if wants.loyalty else None
        first, after = wants.ledger if wants.ledger is not None else (None, None)
        args: tuple[Any, ...] = (
            views.summary_args(loyalty.program(), loy.at) if loy else (None, None, [], [])
        )
        rows = await self._reads.fetch(
            _PROFILE,
            member,
            *args,
            wants.records,
            wants.links,
            wants.events,
            wants.summary,
            None if first is None else views.ledger_size(first),
            after,
        )
        for row in rows:
            self._prime(info, ident, loy, row, wants)

    @staticmethod
    def _prime(
        info: Info[Context, Any],
        ident: identity.IdentityLoaders,
        loy: loyalty.LoyaltyLoaders | None,
        row: Any,
        wants: Wants,
    ) -> None:
        member, exists = row[0], row[1]
        ident.member_by_id.prime(
            member,
            identity.MemberRow(member, row[2], row[3], identity.json_dict(row[4]), row[5], row[6])
            if exists
            else None,
        )
        if wants.records and row[7] is not None:
            records = [identity.RecordRow(*r[:8]) for r in row[7]]
            ident.source_records_by_member.prime(member, records)
            ident.identifiers_by_source_record.prime_many(
                {r[0]: [identity.IdentifierRow(*i) for i in r[8]] for r in row[7]}
            )
        if wants.links and row[8] is not None:
            ident.links_by_member.prime(member, [identity.link_row(r) for r in row[8]])
        if wants.events and row[9] is not None:
            ident.events_by_member.prime(member, [identity.EventRow(*r) for r in row[9]])
        if loy is None:
            return
        loy.member_by_id.prime(member, exists)
        if wants.summary and row[10] is not None:
            found = views.build_summaries(loyalty.program(), [member], loy.at, row[10])
            loy.summary_by_member.prime(member, found[member])
        if wants.ledger is not None and row[11] is not None:
            first, after = wants.ledger
            loy.ledger_by_member.prime((member, first, after), views.ledger_page(row[11], first))


def profile_reads(context: Context) -> ProfileReads:
    found = context.loaders.extra.get("profile")
    if not isinstance(found, ProfileReads):
        found = context.loaders.extra["profile"] = ProfileReads(context.reads)
    return found


# -- what the operation selects ------------------------------------------------------------------


def wants(
    info: Info[Context, Any], *, identity_below: str | None, loyalty_below: str | None
) -> Wants:
    """What the field being resolved selects: the profile's parts below ``identity_below``
    (``me { profile }``) and loyalty parts below ``loyalty_below`` (``member { loyalty }``);
    None: directly below the field."""
    raw = info._raw_info
    found: dict[str, Any] = {}
    for node in raw.field_nodes:
        _collect(node.selection_set, raw.fragments, found)
    profile = _below(found, identity_below, raw.fragments)
    loyalty_fields = _below(found, loyalty_below, raw.fragments)
    ledger = None
    variables: Any = raw.variable_values  # graphql-core 3.3: VariableValues; dict at runtime
    for node in loyalty_fields.get("ledger", [])[:1]:
        ledger = _ledger_args(node, getattr(variables, "coerced", variables))
    return Wants(
        member=identity_below is None or identity_below in found,
        records="sourceRecords" in profile,
        links="links" in profile,
        events="events" in profile,
        summary=not LOYALTY_SUMMARY.isdisjoint(loyalty_fields),
        ledger=ledger,
    )


def _below(found: dict[str, Any], name: str | None, fragments: dict[str, Any]) -> dict[str, Any]:
    if name is None:
        return found
    out: dict[str, Any] = {}
    for node in found.get(name, []):
        _collect(node.selection_set, fragments, out)
    return out


def _collect(
    selection_set: SelectionSetNode | None, fragments: dict[str, Any], out: dict[str, Any]
) -> None:
    if selection_set is None:
        return
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            out.setdefault(sel.name.value, []).append(sel)
        elif isinstance(sel, InlineFragmentNode):
            _collect(sel.selection_set, fragments, out)
        elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
            _collect(fragments[sel.name.value].selection_set, fragments, out)


def _ledger_args(node: FieldNode, variables: Mapping[str, Any]) -> tuple[int, int | None] | None:
    """(page size, after transfer id) as the ``ledger`` resolver will ask its loader, or None
    when the arguments are anything but plain (the resolver then reports them itself)."""
    values: dict[str, Any] = {}
    for arg in node.arguments or ():
        v = arg.value
        if isinstance(v, VariableNode):
            values[arg.name.value] = variables.get(v.name.value)
        elif isinstance(v, IntValueNode):
            values[arg.name.value] = int(v.value)
        elif isinstance(v, StringValueNode):
            values[arg.name.value] = v.value
        elif not isinstance(v, NullValueNode):
            return None
    first, after = values.get("first"), values.get("after")
    if not (first is None or isinstance(first, int)) or not (
        after is None or isinstance(after, str)
    ):
        return None
    try:
        return page_size(first), decode_cursor(after)
    except Exception:  # noqa: BLE001 - the resolver raises it properly
        return None
