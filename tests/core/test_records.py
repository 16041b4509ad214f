from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from hub.core.errors import RecordError
from hub.core.records import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Identifier,
    IdentifierKind,
    RowError,
    SourceRecord,
    reobserved,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _record(**kw: object) -> SourceRecord:
    base: dict[str, object] = {
        "source": "pos",
        "source_key": "88000000001",
        "business_line": "store",
        "observed_at": NOW,
    }
    base.update(kw)
    return SourceRecord(**base)  # type: ignore[arg-type]


def test_a_valid_source_record_is_built() -> None:
    rec = _record(
        identifiers=(Identifier(IdentifierKind.PHONE, "+8613800000001", verified=True),),
        name="测试甲",
        birthday=date(1990, 1, 1),
        consents={"marketing": True},
    )
    assert rec.identifiers[0].verified


def test_reobserved_is_replace_of_the_observation_time_and_checks_it() -> None:
    rec = _record(
        identifiers=(Identifier(IdentifierKind.PHONE_MASKED, "138****0001"),),
        name="测*",
        consents={"marketing": True},
    )
    later = NOW + timedelta(days=3)
    again = reobserved(rec, later)
    assert again == replace(rec, observed_at=later)
    assert again.observed_at == later
    assert rec.observed_at == NOW
    assert reobserved(rec, NOW) is rec
    with pytest.raises(RecordError, match="observed_at"):
        reobserved(rec, datetime(2026, 1, 2))  # noqa: DTZ001 - naive on purpose


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"source": "Tao Bao"}, "source"),
        ({"source_key": "  "}, "source_key"),
        ({"source_key": "x" * 200}, "source_key"),
        ({"observed_at": datetime(2026, 1, 1)}, "observed_at"),  # noqa: DTZ001 - the point
        ({"birthday": date(1800, 1, 1)}, "birthday"),
        ({"consents": {"sms": "yes"}}, "consents.sms"),
    ],
)
def test_invalid_source_records_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(RecordError) as err:
        _record(**changes)
    assert err.value.field == field


def test_identifier_rules() -> None:
    with pytest.raises(RecordError, match="E.164"):
        Identifier(IdentifierKind.PHONE, "13800000001")
    with pytest.raises(RecordError, match="scope"):
        Identifier(IdentifierKind.WECHAT_OPENID, "oTEST01")
    with pytest.raises(RecordError, match="cannot be verified"):
        Identifier(IdentifierKind.PHONE_MASKED, "138****0001", verified=True)
    assert Identifier(IdentifierKind.WECHAT_OPENID, "oTEST01", scope="wxapp_demo01").scope


def _activity(**kw: object) -> Activity:
    base: dict[str, object] = {
        "source": "taobao",
        "external_id": "3000000000000000001",
        "kind": ActivityKind.PURCHASE,
        "business_line": "taobao",
        "occurred_at": NOW,
        "status": ActivityStatus.CONFIRMED,
        "amount_fen": 12800,
    }
    base.update(kw)
    return Activity(**base)  # type: ignore[arg-type]


def test_activity_amounts_are_non_negative_integers() -> None:
    assert _activity().amount_fen == 12800
    with pytest.raises(RecordError, match="amount_fen"):
        _activity(amount_fen=12.8)
    with pytest.raises(RecordError, match="amount_fen"):
        _activity(amount_fen=-1)
    with pytest.raises(RecordError, match="quantity"):
        _activity(quantity=True)


def test_refunds_must_name_what_they_reverse() -> None:
    with pytest.raises(RecordError, match="original_external_id"):
        _activity(kind=ActivityKind.REFUND)
    refund = _activity(kind=ActivityKind.REFUND, external_id="x:refund", original_external_id="x")
    assert refund.original_external_id == "x"


def test_row_error_says_where() -> None:
    err = RowError(file="orders.csv", line=7, column="订单编号", reason="empty id")
    assert str(err) == "orders.csv:7 [订单编号]: empty id"
    with pytest.raises(RecordError):
        RowError(file="x", line=-1, reason="r")
