"""Landing records through the real ingest pipeline with identity resolution plugged in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Address, Identifier, IdentifierKind, Parsed, SourceRecord
from hub.flows.ingest import IngestReport, finish_run, ingest, start_run
from hub.flows.resolution import IdentityHooks

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)

Land = Callable[..., Awaitable[IdentityHooks]]


def person(
    source: str,
    key: str,
    *ids: tuple[str, str] | tuple[str, str, dict[str, Any]],
    name: str | None = "测试甲",
    birthday: date | None = date(1990, 5, 17),
    city: str | None = "上海",
    seen: datetime = T0,
) -> SourceRecord:
    identifiers = []
    for spec in ids:
        kind, value = spec[0], spec[1]
        extra: dict[str, Any] = spec[2] if len(spec) > 2 else {}  # type: ignore[misc]
        identifiers.append(Identifier(IdentifierKind(kind), value, **extra))
    return SourceRecord(
        source=source,
        source_key=key,
        business_line={"taobao": "ecommerce", "douyin": "ecommerce", "app": "app"}.get(
            source, "store"
        ),
        observed_at=seen,
        identifiers=tuple(identifiers),
        name=name,
        birthday=birthday,
        address=Address(province="上海", city=city) if city else None,
    )


def phone(value: str, verified: bool = True) -> tuple[str, str, dict[str, Any]]:
    return ("phone", value, {"verified": verified, "verified_at": T0 if verified else None})


@pytest.fixture
def land(db: Database, keyring: KeyRing) -> Land:
    async def run(
        items: Iterable[Parsed], hooks: IdentityHooks | None = None, **kw: Any
    ) -> IdentityHooks:
        hooks = hooks or IdentityHooks(keyring=keyring)
        report = IngestReport(connector="test")
        report.import_run_id = await start_run(db=db, actor="test", connector="test")
        await ingest(
            db=db,
            keyring=keyring,
            items=(("f.csv", item) for item in items),
            report=report,
            hooks=hooks,
            **kw,
        )
        await finish_run(db=db, report=report)
        return hooks

    return run


async def partition(db: Database) -> set[frozenset[str]]:
    """The stored partition as sets of "source:key" (live records only)."""
    async with db.read() as session:
        rows = await session.execute(
            text(
                "SELECT member_id, source || ':' || source_key FROM source_record "
                "WHERE erased_at IS NULL"
            )
        )
        groups: dict[int, set[str]] = {}
        for member, rid in rows:
            assert member is not None, f"{rid} has no member"
            groups.setdefault(member, set()).add(rid)
    return {frozenset(g) for g in groups.values()}


async def member_of(db: Database, source: str, key: str) -> int:
    async with db.read() as session:
        value = await session.scalar(
            text("SELECT member_id FROM source_record WHERE source = :s AND source_key = :k"),
            {"s": source, "k": key},
        )
    assert value is not None
    return int(value)


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.read() as session:
        return await session.scalar(text(sql), params)
