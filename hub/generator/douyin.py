"""Douyin 抖店: the order export (§3a, one row per sub-order) and the member file (§4).

The order export names no buyer, only a masked receiver (``测**``, ``13*******01``), so order
buyers are not in the truth: there is nothing a connector could key them by. Members are keyed
by ``open_id`` (one per shop); a member of two shops has two open_ids and one ``union_id``.
"""

from __future__ import annotations

import base64
from datetime import datetime

from hub.generator import layout, timeline
from hub.generator.catalog import DOUYIN_CHANNELS, DOUYIN_SHOPS, DOUYIN_TALENTS, OTHER_SURNAMES
from hub.generator.context import EmitContext
from hub.generator.people import Person
from hub.generator.shopping import (
    basket,
    douyin_phone_mask,
    name_mask,
    order_count,
    other_receiver_phone,
)
from hub.generator.sinks import tab_text

_ORDER_BASE = 6_900_000_000_000_000_000
_EMPTY = "-"  # Douyin writes "-" for an empty cell


class DouyinEmitter:
    def __init__(self, ctx: EmitContext) -> None:
        self._rng = ctx.rng
        self._rates = ctx.rates
        self._truth = ctx.truth
        out, sinks = ctx.out, ctx.sinks
        self._orders = sinks.csv(
            out / layout.DOUYIN_ORDERS, layout.DOUYIN_ORDERS_HEADER, encoding=layout.UTF8_BOM
        )
        self._members = sinks.csv(
            out / layout.DOUYIN_MEMBERS, layout.DOUYIN_MEMBERS_HEADER, encoding=layout.UTF8
        )
        self._order_serial = 0

    def emit(self, person: Person) -> None:
        rng = self._rng
        for _ in range(order_count(rng, repeat=0.4)):
            self._order(person, timeline.moment(rng))
        if rng.random() < self._rates.douyin_member:
            union_id = f"dyu_{rng.getrandbits(59):018d}"
            shops = list(DOUYIN_SHOPS[:1])
            if rng.random() < self._rates.douyin_second_shop:
                shops.append(DOUYIN_SHOPS[1])
            for shop in shops:
                self._member(person, shop, union_id)

    def _order(self, person: Person, created: datetime) -> None:
        rng, rates = self._rng, self._rates
        self._order_serial += 1
        # Spaced so the sub-orders (parent + 1, + 2, ...) never reach the next parent's number.
        parent = _ORDER_BASE + self._order_serial * 1000 + rng.randrange(900)
        draw = rng.random()
        unpaid = draw < rates.douyin_unpaid
        refunded = not unpaid and draw < rates.douyin_unpaid + rates.douyin_refund
        if unpaid or refunded:
            status = "已关闭"
        elif timeline.PERIOD_END - created < timeline.RETURN_WINDOW:
            status = "已发货"
        else:
            status = "已完成"
        after_sale = "售后完成" if refunded else _EMPTY
        paid_text = _EMPTY if unpaid else timeline.dt_text(timeline.later(rng, created, 3, 600))
        if rng.random() < rates.douyin_receiver_other:
            receiver = rng.choice(OTHER_SURNAMES) + "某"
            phone = other_receiver_phone(rng)
        else:
            receiver, phone = person.name, person.phone
        talent_id, talent_nick = rng.choice(DOUYIN_TALENTS) if rng.random() < 0.35 else ("-", "-")
        channel = rng.choice(DOUYIN_CHANNELS)
        place = person.place
        for offset, line in enumerate(basket(rng)):
            price = line.product.price_fen
            # Platform/shop coupons land on the sub-order's payable amount.
            payable = line.amount_fen - (line.amount_fen // 10 if rng.random() < 0.25 else 0)
            self._orders.write(
                [
                    tab_text(str(parent)),
                    tab_text(str(parent + offset)),  # the first sub-order shares the parent's id
                    line.product.title,
                    line.product.spec,
                    str(line.qty),
                    tab_text(line.product.douyin_id),
                    line.product.sku,
                    timeline.yuan(price),
                    timeline.yuan(payable),
                    "0.00",
                    name_mask(receiver, 2),
                    douyin_phone_mask(phone),
                    place.province,
                    place.city,
                    place.district,
                    "示例街道",
                    "******",
                    timeline.dt_text(created),
                    paid_text,
                    status,
                    after_sale,
                    talent_id,
                    talent_nick,
                    channel,
                ]
            )

    def _member(self, person: Person, shop: str, union_id: str) -> None:
        rng = self._rng
        open_id = f"dyo_{rng.getrandbits(59):018d}"
        if rng.random() < self._rates.douyin_plain_mobile:
            mobile, cipher = person.phone, ""
        else:
            mobile = ""
            cipher = "$" + base64.b64encode(rng.randbytes(24)).decode("ascii") + "$"
        self._members.write(
            [
                "douyin",
                shop,
                open_id,
                union_id,
                mobile,
                cipher,
                "true",
                timeline.dt_text(timeline.moment(rng)),
            ]
        )
        self._truth.write([layout.SOURCE_DOUYIN_MEMBERS, f"{shop}:{open_id}", person.person_id])
