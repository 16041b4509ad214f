"""Taobao/Tmall: the legacy GBK order pair (§1a) and the membership file (§2).

A buyer has one nick, or two after a rename (older orders carry the old nick, both are in the
truth). Receiver name and phone are masked as current exports do; some orders ship to someone
else. Some orders are refunded (交易关闭 after payment) or closed unpaid.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from hub.generator import layout, timeline
from hub.generator.catalog import (
    OTHER_SURNAMES,
    TAOBAO_CARRIERS,
    TAOBAO_MEMBER_SHOP,
    TAOBAO_SHOP_ID,
    TAOBAO_SHOP_NAME,
)
from hub.generator.context import EmitContext
from hub.generator.people import Person
from hub.generator.shopping import (
    basket,
    name_mask,
    order_count,
    other_receiver_phone,
    taobao_phone_mask,
)
from hub.generator.sinks import excel_text

_TID_BASE = 3_000_000_000_000_000_000
_SUCCESS = "交易成功"
_CLOSED = "交易关闭"
_SHIPPED = "卖家已发货，等待买家确认"
# Both comma widths occur in real files for the same status (§1a).
_PAID = ("买家已付款，等待卖家发货", "买家已付款,等待卖家发货")
_NOT_CLOSED = "订单未关闭"


class TaobaoEmitter:
    def __init__(self, ctx: EmitContext) -> None:
        self._rng = ctx.rng
        self._rates = ctx.rates
        self._truth = ctx.truth
        out, sinks = ctx.out, ctx.sinks
        self._orders = sinks.csv(
            out / layout.TAOBAO_ORDERS, layout.TAOBAO_ORDERS_HEADER, encoding=layout.GBK
        )
        self._items = sinks.csv(
            out / layout.TAOBAO_ITEMS, layout.TAOBAO_ITEMS_HEADER, encoding=layout.GBK
        )
        self._members = sinks.csv(
            out / layout.TAOBAO_MEMBERS, layout.TAOBAO_MEMBERS_HEADER, encoding=layout.UTF8
        )
        self._order_serial = 0
        self._nick_serial = 0

    def emit(self, person: Person) -> None:
        rng = self._rng
        nicks = [self._nick(person)]
        if rng.random() < self._rates.taobao_nick_change:
            nicks.insert(0, self._nick(person))
        count = order_count(rng, minimum=len(nicks))
        times = sorted(timeline.moment(rng) for _ in range(count))
        # The rename happens between two orders, so each nick owns at least one.
        rename_at = rng.randint(1, count - 1) if len(nicks) == 2 else count
        for i, created in enumerate(times):
            self._order(person, nicks[0] if i < rename_at else nicks[-1], created)
        for nick in nicks:
            self._truth.write([layout.SOURCE_TAOBAO, nick, person.person_id])
        if rng.random() < self._rates.taobao_member:
            self._member(person, nicks[-1], bound_offline="pos" in person.sources)

    def _nick(self, person: Person) -> str:
        """Four nick styles; each embeds a serial in a way that cannot collide across styles."""
        self._nick_serial += 1
        serial = self._nick_serial
        style = self._rng.randrange(4)
        if style == 0:  # the platform's default nick
            return f"tb{(serial * 6_700_417 + 3_141_592_653) % 10**10:010d}"
        if style == 1:
            return f"{person.given_py.lower()}{person.surname_py.lower()}{serial}"
        if style == 2:
            return f"{person.surname_py.lower()}_{person.birthday.year % 100:02d}{serial}"
        return f"{person.name}{serial}"

    def _order(self, person: Person, nick: str, created: datetime) -> None:
        rng, rates = self._rng, self._rates
        self._order_serial += 1
        tid = str(_TID_BASE + self._order_serial * 1000 + rng.randrange(1000))
        lines = basket(rng)
        goods = sum(line.amount_fen for line in lines)
        post = 1000 if goods < 9900 and rng.random() < 0.5 else 0
        discount = goods // 10 if rng.random() < 0.2 else 0
        total = goods + post
        draw = rng.random()
        paid_at = timeline.later(rng, created, 5, 900)
        close_reason = _NOT_CLOSED
        if draw < rates.taobao_unpaid:
            status, close_reason, paid_text, paid = _CLOSED, "交易超时自动关闭", "", 0
        else:
            paid_text, paid = timeline.dt_text(paid_at), total - discount
            if draw < rates.taobao_unpaid + rates.taobao_refund:
                status, close_reason = _CLOSED, "买家申请退款"
            elif timeline.PERIOD_END - created < timeline.RETURN_WINDOW:
                status = _SHIPPED if rng.random() < 0.6 else rng.choice(_PAID)
            else:
                status = _SUCCESS
        shipped = status in (_SUCCESS, _SHIPPED) or close_reason == "买家申请退款"
        if rng.random() < rates.taobao_receiver_other:
            receiver, phone = self._other_receiver(person), other_receiver_phone(rng)
        else:
            receiver, phone = person.name, person.phone
        place = person.place
        address = f"{place.taobao_province} {place.city} {place.district} ****** ({place.postcode})"
        row = [
            excel_text(tid),
            nick,
            "",
            timeline.yuan(goods),
            timeline.yuan(post),
            "0",
            timeline.yuan(total),
            "0",
            timeline.yuan(paid),
            "0",
            status,
            "请尽快发货" if rng.random() < 0.05 else "",
            name_mask(receiver, 1),
            address,
            "快递",
            "",
            taobao_phone_mask(phone),
            timeline.dt_text(created),
            paid_text,
            "，".join(line.product.title for line in lines),
            str(len(lines)),
            f"SF{self._order_serial:013d}" if shipped else "",
            rng.choice(TAOBAO_CARRIERS) if shipped else "",
            "",
            str(sum(line.qty for line in lines)),
            TAOBAO_SHOP_ID,
            TAOBAO_SHOP_NAME,
            close_reason,
            "0",
            "0",
            "",
            "手机订单" if rng.random() < 0.8 else "",
            "",
            "",
            "",
            "",
            "",
        ]
        self._orders.write(row)
        for line in lines:
            self._items.write(
                [
                    excel_text(tid),
                    line.product.title,
                    timeline.yuan(line.product.price_fen),
                    str(line.qty),
                    "",
                    f"规格:{line.product.spec}",
                    "",
                    "",
                    status,
                    line.product.sku,
                ]
            )

    def _other_receiver(self, person: Person) -> str:
        # A family member usually shares the surname; only the surname survives the mask anyway.
        surname = person.surname if self._rng.random() < 0.6 else self._rng.choice(OTHER_SURNAMES)
        return surname + "某"

    def _member(self, person: Person, nick: str, *, bound_offline: bool) -> None:
        rng = self._rng
        ouid = f"AAF{rng.getrandbits(100):025X}"
        omid = f"AAM{rng.getrandbits(100):025X}" if rng.random() < 0.6 else ""
        consent = rng.random()
        mobile = person.phone if consent < 0.4 else ""
        digest = hashlib.sha256(person.phone.encode()).hexdigest() if consent < 0.7 else ""
        self._members.write(
            [
                "tmall",
                TAOBAO_MEMBER_SHOP,
                ouid,
                omid,
                f"{nick[:1]}**{nick[-1:]}_mix",
                mobile,
                digest,
                "1" if bound_offline else "2",
                str(rng.randint(1, 4)),
                timeline.dt_text(timeline.moment(rng)),
            ]
        )
        self._truth.write([layout.SOURCE_TAOBAO_MEMBERS, ouid, person.person_id])
