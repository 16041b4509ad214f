"""Golden record: one value per attribute, chosen from a cluster's source records.

For each attribute the candidates are the records that carry a usable value (masked values such
as ``测**`` or a ``******`` street never survive). The winner is the first by:

1. verified over unverified (for identifiers: the identifier's ``verified`` flag);
2. source priority (``survivorship.source_priority``, earlier wins, unlisted sources last);
3. the most recent observation;
4. the record id, so ties resolve the same way on every run.

Every attribute remembers the record it came from (``sources``), so an agent can see why the
golden name is what it is. The function is pure; the resolver calls it on every change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from hub.core.records import Address, Gender, IdentifierKind, SourceRecord
from identity.config import MatchingConfig
from identity.features import record_id

_MASK = ("*", "＊", "•", "●")
GOLDEN_IDENTIFIERS = (
    IdentifierKind.PHONE,
    IdentifierKind.EMAIL,
    IdentifierKind.ID_DOCUMENT,
    IdentifierKind.WECHAT_UNIONID,
)


@dataclass(frozen=True, slots=True)
class GoldenRecord:
    records: frozenset[str]  # record ids of the cluster
    name: str | None = None
    name_latin: str | None = None
    gender: Gender | None = None
    birthday: date | None = None
    address: Address | None = None
    identifiers: Mapping[str, str] = field(default_factory=dict)  # kind -> surviving value
    sources: Mapping[str, str] = field(default_factory=dict)  # attribute -> record id


def _usable(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip()) and not any(m in value for m in _MASK)
    return True


def _clean_address(address: Address) -> Address:
    if address.detail is not None and not _usable(address.detail):
        return replace(address, detail=None)
    return address


def _ranker(config: MatchingConfig) -> Callable[[SourceRecord, bool], tuple[Any, ...]]:
    order = {s: i for i, s in enumerate(config.source_priority)}
    last = len(order)

    def rank(rec: SourceRecord, verified: bool) -> tuple[Any, ...]:
        return (
            not verified,
            order.get(rec.source, last),
            -rec.observed_at.timestamp(),
            record_id(rec.source, rec.source_key),
        )

    return rank


def build_golden(records: Iterable[SourceRecord], *, config: MatchingConfig) -> GoldenRecord:
    recs = list(records)
    rank = _ranker(config)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def pick(attr: str, candidates: list[tuple[SourceRecord, Any, bool]]) -> None:
        usable = [c for c in candidates if _usable(c[1])]
        if usable:
            rec, value, _ = min(usable, key=lambda c: rank(c[0], c[2]))
            values[attr] = value
            sources[attr] = record_id(rec.source, rec.source_key)

    for attr in ("name", "name_latin", "gender", "birthday"):
        pick(attr, [(r, getattr(r, attr), False) for r in recs])
    pick(
        "address",
        [
            (r, _clean_address(r.address), False)
            for r in recs
            if r.address is not None and _usable(r.address.city or r.address.province)
        ],
    )
    idents: dict[str, str] = {}
    for kind in GOLDEN_IDENTIFIERS:
        cands = [(r, i.value, i.verified) for r in recs for i in r.identifiers if i.kind is kind]
        before = dict(values)
        pick(kind.value, cands)
        if kind.value in values:
            idents[kind.value] = values.pop(kind.value)
        values.update(before)
    return GoldenRecord(
        records=frozenset(record_id(r.source, r.source_key) for r in recs),
        name=values.get("name"),
        name_latin=values.get("name_latin"),
        gender=values.get("gender"),
        birthday=values.get("birthday"),
        address=values.get("address"),
        identifiers=idents,
        sources=sources,
    )
