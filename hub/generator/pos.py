"""Store POS: member-card enrolments and receipt lines (§7 hub-normalised layout).

The card carries the phone the member had when enrolling (the *old* one after a number change)
and the name as the cashier typed it (sometimes one character wrong). A return is a new receipt
with negative quantity and amount whose ``original_serial_num`` is the sale's ``serial_num``.
Walk-in sales without a card are written too: real files are full of them.
"""

from __future__ import annotations

import random
from datetime import datetime

from hub.generator import layout, timeline
from hub.generator.catalog import PLACES, POS_NOS, POS_PAY_TYPES, STORE_IDS, TYPO_CHARS
from hub.generator.context import EmitContext
from hub.generator.people import Person
from hub.generator.shopping import Line, basket, order_count

_CARD_SPACE = 10**9
_CARD_MULT = 48_271  # coprime with 10^9: card numbers are unique but not sequential
SALE = "SALE"
RETURN = "RETURN"


def typo(name: str, rng: random.Random) -> str:
    """Substitute one character of the given name (never the surname, never a no-op)."""
    if len(name) < 2:
        return name
    pos = rng.randrange(1, len(name))
    choices = [c for c in TYPO_CHARS if c != name[pos]]
    return name[:pos] + rng.choice(choices) + name[pos + 1 :]


class PosEmitter:
    def __init__(self, ctx: EmitContext) -> None:
        self._rng = ctx.rng
        self._rates = ctx.rates
        self._truth = ctx.truth
        out, sinks = ctx.out, ctx.sinks
        self._members = sinks.csv(
            out / layout.POS_MEMBERS, layout.POS_MEMBERS_HEADER, encoding=layout.UTF8
        )
        self._receipts = sinks.csv(
            out / layout.POS_RECEIPTS, layout.POS_RECEIPTS_HEADER, encoding=layout.UTF8
        )
        self._card_serial = 0
        self._receipt_serial = 0

    def emit(self, person: Person) -> None:
        rng, rates = self._rng, self._rates
        self._card_serial += 1
        card = f"88{(self._card_serial * _CARD_MULT) % _CARD_SPACE:09d}"
        home = STORE_IDS[PLACES.index(person.place) % len(STORE_IDS)]
        enrolled = timeline.moment(rng)
        name = typo(person.name, rng) if rng.random() < rates.pos_name_typo else person.name
        phone = person.first_phone
        self._members.write(
            [
                card,
                phone,
                name,
                "" if rng.random() < rates.pos_no_birthday else timeline.date_text(person.birthday),
                "MALE" if person.gender == "M" else "FEMALE",
                home,
                timeline.dt_text(enrolled),
            ]
        )
        self._truth.write([layout.SOURCE_POS, card, person.person_id])
        for _ in range(order_count(rng, minimum=0, repeat=0.7)):
            store = home if rng.random() < 0.8 else rng.choice(STORE_IDS)
            self._sale(store, card, phone, timeline.moment(rng, after=enrolled))

    def walk_in(self) -> None:
        """A sale with no member card: noise the resolver must leave alone."""
        self._sale(self._rng.choice(STORE_IDS), "", "", timeline.moment(self._rng))

    def _sale(self, store: str, card: str, phone: str, when: datetime) -> None:
        rng = self._rng
        serial = self._next_serial()
        pay_type = rng.choice(POS_PAY_TYPES)
        lines = basket(rng)
        member_discount = bool(card) and rng.random() < 0.5
        amounts = [self._deal_amount(line, member_discount) for line in lines]
        head = [store, rng.choice(POS_NOS), serial, timeline.dt_text(when), SALE, card, phone]
        for number, (line, amount) in enumerate(zip(lines, amounts, strict=True), start=1):
            self._receipts.write(
                [
                    *head,
                    str(number),
                    line.product.barcode,
                    str(line.qty),
                    str(amount),
                    pay_type,
                    "",
                ]
            )
        if rng.random() < self._rates.pos_return:
            returned = rng.randrange(len(lines))
            back = timeline.later(rng, when, 3600, 7 * 86400)
            self._receipts.write(
                [
                    store,
                    rng.choice(POS_NOS),
                    self._next_serial(),
                    timeline.dt_text(back),
                    RETURN,
                    card,
                    phone,
                    "1",
                    lines[returned].product.barcode,
                    str(-lines[returned].qty),
                    str(-amounts[returned]),
                    pay_type,
                    serial,
                ]
            )

    def _deal_amount(self, line: Line, member_discount: bool) -> int:
        amount = line.amount_fen
        return amount - amount * 5 // 100 if member_discount else amount

    def _next_serial(self) -> str:
        self._receipt_serial += 1
        return f"{self._receipt_serial:09d}"
