"""Brand app and WeChat mini-program: account NDJSON (§5) and order NDJSON (our layout).

Each account is keyed ``app_id:openid`` in the truth (openids are per app). One person's
accounts share a unionid when the apps are bound to the Open Platform; a native app that is not
bound has none. Phones here are the *current* number, verified (getPhoneNumber / sms_otp) - a
person who changed numbers still has the old one on the POS card.
"""

from __future__ import annotations

import base64
import random
from datetime import datetime
from typing import Any

from hub.generator import layout, timeline
from hub.generator.catalog import APP_MINI, APP_NATIVE, APP_OFFICIAL
from hub.generator.context import EmitContext
from hub.generator.people import Person
from hub.generator.shopping import basket, order_count

# How the phone was verified (§5 source values), and the value for a mini-program login
# where the user declined to share a phone.
VERIFIED_MINI = "getPhoneNumber"
VERIFIED_NATIVE = "sms_otp"
OFFICIAL_FOLLOW = "official_account_follow"
NO_PHONE = "wx_login"


def _wechat_id(rng: random.Random) -> str:
    """28 characters in WeChat's alphabet, starting with ``o`` like real openids/unionids."""
    return "o" + base64.urlsafe_b64encode(rng.randbytes(21)).decode("ascii")[:27]


class AppEmitter:
    def __init__(self, ctx: EmitContext) -> None:
        self._rng = ctx.rng
        self._rates = ctx.rates
        self._truth = ctx.truth
        out, sinks = ctx.out, ctx.sinks
        self._accounts = sinks.ndjson(out / layout.APP_ACCOUNTS)
        self._orders = sinks.ndjson(out / layout.APP_ORDERS)
        self._order_serial = 0
        self._user_serial = 0

    def emit(self, person: Person) -> None:
        rng, rates = self._rng, self._rates
        unionid = _wechat_id(rng)
        first = timeline.moment(rng)
        mini = rng.random() < 0.65
        two = rng.random() < rates.app_two_accounts
        accounts: list[tuple[dict[str, Any], datetime]] = []
        if mini or two:
            declined = rng.random() < rates.app_no_phone
            accounts.append(
                self._account(
                    APP_MINI,
                    _wechat_id(rng),
                    unionid,
                    None if declined else person.phone,
                    NO_PHONE if declined else VERIFIED_MINI,
                    first,
                )
            )
        if not mini or two:
            self._user_serial += 1
            bound = rng.random() >= rates.app_unbound
            accounts.append(
                self._account(
                    rng.choice(APP_NATIVE),
                    f"appuser_{self._user_serial:09d}",
                    unionid if bound else None,
                    person.phone,
                    VERIFIED_NATIVE,
                    timeline.later(rng, first, 0, 200 * 86400) if two else first,
                )
            )
        if rng.random() < rates.app_follows_official_account:
            accounts.append(
                self._account(APP_OFFICIAL, _wechat_id(rng), unionid, None, OFFICIAL_FOLLOW, first)
            )
        for number, (account, signed_up) in enumerate(accounts):
            self._accounts.write(account)
            key = layout.app_truth_key(account["app_id"], account["openid"])
            self._truth.write([layout.SOURCE_APP, key, person.person_id])
            if account["app_id"] == APP_OFFICIAL:
                continue  # followers do not shop through the official account
            count = order_count(rng, minimum=1 if number == 0 else 0, repeat=0.5)
            for _ in range(count):
                self._order(account, timeline.moment(rng, after=signed_up))

    def _account(
        self,
        app_id: str,
        openid: str,
        unionid: str | None,
        phone: str | None,
        source: str,
        signed_up: datetime,
    ) -> tuple[dict[str, Any], datetime]:
        verified = (
            timeline.dt_text(timeline.later(self._rng, signed_up, 10, 3600)) if phone else None
        )
        account = {
            "app_id": app_id,
            "openid": openid,
            "unionid": unionid,
            "phone": phone,
            "phone_verified_at": verified,
            "source": source,
            "signed_up_at": timeline.dt_text(signed_up),
        }
        return account, signed_up

    def _order(self, account: dict[str, Any], placed: datetime) -> None:
        rng, rates = self._rng, self._rates
        self._order_serial += 1
        order_id = f"AO{self._order_serial:012d}"
        lines = basket(rng)
        items = [
            {
                "sku": line.product.sku,
                "title": line.product.title,
                "qty": line.qty,
                "unit_price_fen": line.product.price_fen,
            }
            for line in lines
        ]
        total = sum(line.amount_fen for line in lines)
        coupon = 500 if total >= 9900 and rng.random() < 0.3 else 0
        draw = rng.random()
        refunded = False
        if draw < rates.app_cancelled:
            status, paid_at, amount = "cancelled", None, total
        else:
            paid_at = timeline.dt_text(timeline.later(rng, placed, 5, 300))
            amount = total - coupon
            refunded = draw < rates.app_cancelled + rates.app_refund
            recent = timeline.PERIOD_END - placed < timeline.RETURN_WINDOW
            status = "paid" if recent and not refunded else "completed"
        head = {key: account[key] for key in ("app_id", "openid", "unionid")}
        self._orders.write(
            {
                "order_id": order_id,
                **head,
                "created_at": timeline.dt_text(placed),
                "paid_at": paid_at,
                "status": status,
                "amount_fen": amount,
                "items": items,
                "refund_of": None,
            }
        )
        if refunded:
            # A refund is its own line pointing at the order, negative like the app writes it.
            self._orders.write(
                {
                    "order_id": f"AR{self._order_serial:012d}",
                    **head,
                    "created_at": timeline.dt_text(timeline.later(rng, placed, 3600, 10 * 86400)),
                    "paid_at": None,
                    "status": "refunded",
                    "amount_fen": -amount,
                    "items": items,
                    "refund_of": order_id,
                }
            )
