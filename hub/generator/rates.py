"""How often each real-world mess happens in a generated data set.

Every rate is a probability per person (or per order/stay/receipt where named) drawn from the one
seeded ``random.Random``. The defaults are not measured from any real group; they are set so that
a few thousand people show every case the identity resolver must handle, and so that the hard
cases (shared phones, typos, renamed nicks) are common enough to move precision and recall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCES = ("pos", "app", "taobao", "douyin", "hotel")


@dataclass(frozen=True)
class Rates:
    # People and households ---------------------------------------------------------------------
    # Household sizes: family members share an address and often a surname.
    household_sizes: tuple[tuple[int, float], ...] = ((1, 0.84), (2, 0.12), (3, 0.04))
    # In a multi-person household, the others use the head's phone (child, elderly parent):
    # same phone, different person, which is what keeps a phone-only merge rule honest.
    family_shares_phone: float = 0.35
    family_shares_surname: float = 0.6
    # Got a new number: the old one stays on the POS card, the new one is verified in the app.
    changed_phone: float = 0.10
    email: float = 0.35
    # How many of the five sources a person appears in (1-4), and which ones.
    source_counts: tuple[tuple[int, float], ...] = ((1, 0.40), (2, 0.30), (3, 0.20), (4, 0.10))
    source_weights: dict[str, float] = field(
        default_factory=lambda: {
            "pos": 0.30,
            "app": 0.25,
            "taobao": 0.20,
            "douyin": 0.13,
            "hotel": 0.12,
        }
    )

    # Taobao --------------------------------------------------------------------------------------
    taobao_member: float = 0.45  # buyers who also joined the shop's membership (ouid)
    taobao_nick_change: float = 0.10  # renamed buyer: older orders under the old nick
    taobao_refund: float = 0.08  # per order: 交易关闭 after payment, 买家申请退款
    taobao_unpaid: float = 0.03  # per order: closed before payment
    taobao_receiver_other: float = 0.12  # per order: shipped to a family member / friend

    # Douyin --------------------------------------------------------------------------------------
    douyin_member: float = 0.6
    douyin_second_shop: float = 0.2  # member of a second shop: new open_id, same union_id
    douyin_plain_mobile: float = 0.5  # plaintext mobile (paid order within 90 days), else cipher
    douyin_refund: float = 0.08  # per order: 已关闭 / 售后完成
    douyin_unpaid: float = 0.03
    douyin_receiver_other: float = 0.10

    # App / mini-program --------------------------------------------------------------------------
    app_two_accounts: float = 0.25  # mini-program and native app, same unionid
    app_follows_official_account: float = 0.08  # extra account with a unionid and no phone
    app_unbound: float = 0.05  # account without a unionid (app not bound to the Open Platform)
    app_no_phone: float = 0.15  # mini-program user who declined getPhoneNumber
    app_refund: float = 0.05  # per order
    app_cancelled: float = 0.04  # per order

    # POS -----------------------------------------------------------------------------------------
    pos_name_typo: float = 0.06  # one character of the name substituted by the cashier
    pos_no_birthday: float = 0.15
    pos_return: float = 0.06  # per receipt: a later RETURN receipt for one of its lines
    pos_anonymous_sales: float = 0.3  # per person: an extra walk-in sale with no card

    # Hotel ---------------------------------------------------------------------------------------
    hotel_chinese_only: float = 0.15  # profile holds only the 汉字 name
    hotel_pinyin_only: float = 0.10  # profile holds only the pinyin name
    hotel_duplicate_profile: float = 0.05  # second PMS profile for the same guest (same card)
    hotel_id_document: float = 0.85
    hotel_cancelled: float = 0.10  # per stay
    hotel_no_show: float = 0.03  # per stay


RATES = Rates()


def weighted(rng_value: float, table: tuple[tuple[int, float], ...]) -> int:
    """Pick from ``((value, weight), ...)`` given a uniform draw in [0, 1)."""
    total = sum(w for _, w in table)
    point = rng_value * total
    for value, weight in table:
        point -= weight
        if point < 0:
            return value
    return table[-1][0]
