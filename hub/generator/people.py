"""Synthetic people, generated household by household so only one household is ever in memory.

Everything here is fake and cannot be a real person's:
- names come from Faker ``zh_CN`` (common given names and surnames, not a person registry);
- phones are ``1380`` + 7 digits (the 138000xxxxx test convention widened to fit a million
  people), scrambled by a fixed bijection so neighbours do not get adjacent numbers;
- ID numbers use region codes ``99xxxx``, which GB/T 2260 never assigned, so no real resident
  ID can equal one, yet the GB 11643 check digit is correct (connectors verify it);
- emails are ``@example.com``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from faker import Faker
from pypinyin import lazy_pinyin

from hub.generator import timeline
from hub.generator.catalog import PLACES, STREET_NAMES, Place
from hub.generator.rates import SOURCES, Rates, weighted

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_PHONE_SPACE = 10_000_000
_PHONE_MULT = 2_971_773  # odd and not a multiple of 5: a bijection on 0..10^7-1
_PHONE_OFFSET = 5_281_019


@dataclass(frozen=True, slots=True)
class Person:
    index: int
    household: int
    surname: str
    given: str
    surname_py: str  # upper-case pinyin, as hotels write it: ZHANG
    given_py: str  # XIAOMING
    gender: str  # "M" | "F"
    birthday: date
    phone: str  # the number used today; for a dependant it is the household head's
    old_phone: str | None  # before a number change: still on older records (POS card)
    shares_phone: bool
    email: str | None
    place: Place
    street: str  # shared by the household
    sources: tuple[str, ...]

    @property
    def person_id(self) -> str:
        return f"P{self.index:07d}"

    @property
    def name(self) -> str:
        return self.surname + self.given

    @property
    def first_phone(self) -> str:
        """The number the person had when the oldest records were made."""
        return self.old_phone or self.phone

    def id_number(self) -> str:
        return synthetic_id_number(self.index, self.birthday, self.gender)


def synthetic_id_number(index: int, birthday: date, gender: str) -> str:
    """An 18-character resident ID with a correct check digit under an unassigned 99 region."""
    region = 990000 + (index // 500) % 10000
    sequence = (index % 500) * 2 + (1 if gender == "M" else 0)  # odd = male, as GB 11643 says
    body = f"{region:06d}{birthday:%Y%m%d}{sequence:03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + _ID_CHECK[total % 11]


def synthetic_phone(serial: int) -> str:
    return f"1380{(serial * _PHONE_MULT + _PHONE_OFFSET) % _PHONE_SPACE:07d}"


@lru_cache(maxsize=8192)
def _char_pinyin(char: str) -> str:
    return "".join(lazy_pinyin(char))


def pinyin(text: str) -> str:
    """Upper-case pinyin without tones, character by character (cached: names reuse few chars)."""
    return "".join(_char_pinyin(c) for c in text).upper()


class PeopleFactory:
    """Yields ``Person`` objects in index order, one household at a time."""

    def __init__(self, *, rng: random.Random, rates: Rates) -> None:
        self._rng = rng
        self._rates = rates
        self._fake = Faker("zh_CN")
        # Faker draws from our generator, so one seed drives every value in the data set.
        # (The property exists at runtime; Faker's proxy.pyi stub leaves it out.)
        self._fake.random = rng  # type: ignore[attr-defined]
        self._phone_serial = 0
        self._source_names = tuple(rates.source_weights)
        self._source_weights = tuple(rates.source_weights[s] for s in self._source_names)
        if set(self._source_names) - set(SOURCES):
            raise ValueError("source_weights names an unknown source")

    def people(self, count: int) -> Iterator[Person]:
        index = 1
        household = 0
        while index <= count:
            household += 1
            size = weighted(self._rng.random(), self._rates.household_sizes)
            for person in self._household(household, index, min(size, count - index + 1)):
                yield person
                index += 1

    def _new_phone(self) -> str:
        self._phone_serial += 1
        return synthetic_phone(self._phone_serial)

    def _household(self, household: int, first_index: int, size: int) -> Iterator[Person]:
        rng, rates = self._rng, self._rates
        place = PLACES[rng.randrange(len(PLACES))]
        street = (
            f"{rng.choice(STREET_NAMES)}{rng.randint(1, 999)}号"
            f"{rng.randint(1, 30)}栋{rng.randint(1, 28)}{rng.randint(1, 4):02d}室"
        )
        shared_phone = size > 1 and rng.random() < rates.family_shares_phone
        head: Person | None = None
        for offset in range(size):
            gender = "M" if rng.random() < 0.48 else "F"
            if head is not None and rng.random() < rates.family_shares_surname:
                surname = head.surname
            else:
                surname = self._fake.last_name()
            given = (
                self._fake.first_name_male() if gender == "M" else self._fake.first_name_female()
            )
            dependant = head is not None and shared_phone
            phone = head.phone if dependant and head is not None else self._new_phone()
            old_phone = None
            if not dependant and rng.random() < rates.changed_phone:
                old_phone = self._new_phone()
            index = first_index + offset
            surname_py, given_py = pinyin(surname), pinyin(given)
            email = None
            if rng.random() < rates.email:
                email = f"{given_py.lower()}.{surname_py.lower()}.{index}@example.com"
            person = Person(
                index=index,
                household=household,
                surname=surname,
                given=given,
                surname_py=surname_py,
                given_py=given_py,
                gender=gender,
                birthday=timeline.birthday(rng),
                phone=phone,
                old_phone=old_phone,
                shares_phone=dependant,
                email=email,
                place=place,
                street=street,
                sources=self._pick_sources(),
            )
            head = head or person
            yield person

    def _pick_sources(self) -> tuple[str, ...]:
        count = weighted(self._rng.random(), self._rates.source_counts)
        names = list(self._source_names)
        weights = list(self._source_weights)
        picked: list[str] = []
        for _ in range(min(count, len(names))):
            (choice,) = self._rng.choices(range(len(names)), weights=weights)
            picked.append(names.pop(choice))
            weights.pop(choice)
        return tuple(sorted(picked, key=SOURCES.index))
