from __future__ import annotations

from hub.core.audit import Actor
from hub.core.db import Database
from hub.core.pii import KeyRing
from hub.core.records import Activity, ActivityKind, ActivityStatus
from hub.flows.erasure import erase_member
from tests.identity_store.conftest import T0, Land, member_of, partition, person, phone, scalar

ADMIN = Actor(id="admin-1", role="admin")


def sale(ext: str, key: str) -> Activity:
    return Activity(
        source="pos",
        external_id=ext,
        kind=ActivityKind.PURCHASE,
        business_line="store",
        occurred_at=T0,
        status=ActivityStatus.CONFIRMED,
        source_key=key,
        amount_fen=12900,
    )


async def test_erasure_leaves_no_pii_or_hashes_but_keeps_history(
    db: Database, keyring: KeyRing, land: Land
) -> None:
    await land(
        [
            person("app", "u1", phone("+8613800001111"), name="测试甲"),
            person("pos", "mobile:+8613800001111", phone("+8613800001111", verified=False)),
            person("hotel", "h1", phone("+8613800002222"), name="样例乙"),
            sale("S1:01:1", "mobile:+8613800001111"),
        ]
    )
    m = await member_of(db, "app", "u1")
    records = await scalar(db, "SELECT array_agg(id) FROM source_record WHERE member_id = :m", m=m)
    assert len(records) == 2
    async with db.unit_of_work() as session:
        erased = await erase_member(
            session=session, keyring=keyring, member=m, reason="PIPL request 42", actor=ADMIN
        )
    assert erased.records == 2
    ids = {"ids": records}
    for sql in (
        "SELECT count(*) FROM source_identifier WHERE source_record_id = ANY(:ids)",
        "SELECT count(*) FROM source_block WHERE source_record_id = ANY(:ids)",
        "SELECT count(*) FROM source_observation WHERE source_record_id = ANY(:ids)",
        "SELECT count(*) FROM source_record WHERE id = ANY(:ids) AND (pii_enc IS NOT NULL "
        "OR source_key NOT LIKE 'erased:%' OR erased_at IS NULL)",
    ):
        assert await scalar(db, sql, **ids) == 0, sql
    row = await scalar(
        db,
        "SELECT status || ':' || (golden_enc IS NULL) || ':' || golden_masked::text "
        "FROM member WHERE id = :m",
        m=m,
    )
    assert row == "erased:true:{}"
    # The sale is still there, pointing at the record under its pseudonymous key.
    assert await scalar(db, "SELECT count(*) FROM activity WHERE source_key LIKE 'erased:%'") == 1
    assert await scalar(db, "SELECT count(*) FROM identity_event WHERE kind = 'erase'") == 2
    assert await scalar(db, "SELECT action FROM audit_log") == "identity.erase"
    assert await partition(db) == {frozenset({"hotel:h1"})}
