"""Hotel PMS: OPERA profile JSON, one profile per line (§6a shape), and the stay extract CSV.

Names follow the §6a convention: Primary = pinyin, Alternate = 汉字; some front desks keep only
the Chinese name (as the Primary) or only the pinyin. A guest sometimes has a duplicate PMS
profile (created at another property) that shares the loyalty membershipId. Every profile is a
truth row. ID numbers are synthetic (see ``people.synthetic_id_number``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hub.generator import layout, timeline
from hub.generator.catalog import (
    HOTEL_CHANNELS,
    HOTEL_IDS,
    MEMBERSHIP_LEVELS,
    RATE_CODES,
    ROOM_TYPES,
)
from hub.generator.context import EmitContext
from hub.generator.people import Person
from hub.generator.shopping import order_count

_PROFILE_BASE = 900_000
_LAST_ARRIVAL = timeline.PERIOD_END.date() - timedelta(days=5)
CHECKED_OUT = "CheckedOut"
CANCELLED = "Cancelled"
NO_SHOW = "NoShow"


def _masked_id(number: str) -> str:
    return f"{number[:4]}{'*' * 10}{number[-4:]}"


class HotelEmitter:
    def __init__(self, ctx: EmitContext) -> None:
        self._rng = ctx.rng
        self._rates = ctx.rates
        self._truth = ctx.truth
        out, sinks = ctx.out, ctx.sinks
        self._profiles = sinks.ndjson(out / layout.HOTEL_PROFILES)
        self._stays = sinks.csv(
            out / layout.HOTEL_STAYS, layout.HOTEL_STAYS_HEADER, encoding=layout.UTF8
        )
        self._profile_serial = 0
        self._stay_serial = 0
        self._membership_serial = 0

    def emit(self, person: Person) -> None:
        rng, rates = self._rng, self._rates
        membership: dict[str, Any] | None = None
        if rng.random() < 0.6:
            self._membership_serial += 1
            membership = {
                "membershipType": "DEMO",
                "membershipId": f"D{self._membership_serial:09d}",
                "membershipLevel": rng.choice(MEMBERSHIP_LEVELS),
                "memberStatus": "ACTIVE",
                "signupDate": timeline.date_text(timeline.moment(rng).date()),
                "primaryMembership": True,
            }
        profiles = 2 if rng.random() < rates.hotel_duplicate_profile else 1
        for copy in range(profiles):
            profile_id = self._profile(person, membership, duplicate=copy > 0)
            self._truth.write([layout.SOURCE_HOTEL, profile_id, person.person_id])
            for _ in range(order_count(rng, repeat=0.4)):
                self._stay(profile_id)

    def _names(self, person: Person, *, duplicate: bool) -> list[dict[str, str]]:
        chinese = {
            "givenName": person.given,
            "surname": person.surname,
            "language": "zh",
        }
        latin = {"givenName": person.given_py, "surname": person.surname_py}
        draw = self._rng.random()
        if duplicate or draw < self._rates.hotel_chinese_only:
            # A walk-in registered from the ID card: the 汉字 name is all the desk typed.
            return [{**chinese, "nameType": "Primary"}]
        if draw < self._rates.hotel_chinese_only + self._rates.hotel_pinyin_only:
            return [{**latin, "nameType": "Primary"}]
        return [{**latin, "nameType": "Primary"}, {**chinese, "nameType": "Alternate"}]

    def _profile(
        self, person: Person, membership: dict[str, Any] | None, *, duplicate: bool
    ) -> str:
        rng, rates = self._rng, self._rates
        self._profile_serial += 1
        profile_id = str(_PROFILE_BASE + self._profile_serial)
        customer: dict[str, Any] = {
            "personName": self._names(person, duplicate=duplicate),
            "gender": person.gender,
            "birthDate": timeline.date_text(person.birthday),
            "nationality": "CN",
            "language": "zh",
        }
        if rng.random() < rates.hotel_id_document:
            number = person.id_number()
            customer["identifications"] = {
                "identificationInfo": [
                    {
                        "identification": {
                            "idType": "ID_CARD",
                            "idNumber": number,
                            "idNumberMasked": _masked_id(number),
                            "issuedCountry": "CN",
                            "primaryInd": True,
                        }
                    }
                ]
            }
        details: dict[str, Any] = {"customer": customer}
        if rng.random() < 0.5:
            details["addresses"] = {
                "addressInfo": [
                    {
                        "address": {
                            "addressLine": [person.street],
                            "cityName": person.place.city,
                            "state": person.place.province,
                            "postalCode": person.place.postcode,
                            "country": {"code": "CN"},
                            "type": "HOME",
                            "primaryInd": True,
                        }
                    }
                ]
            }
        if rng.random() < 0.95:
            phone = person.old_phone if person.old_phone and rng.random() < 0.5 else person.phone
            details["telephones"] = {
                "telephoneInfo": [
                    {
                        "telephone": {
                            "phoneTechType": "MOBILE",
                            "phoneUseType": "HOME",
                            "phoneNumber": f"+86 {phone}",
                            "primaryInd": True,
                        }
                    }
                ]
            }
        if person.email and not duplicate:
            details["emails"] = {
                "emailInfo": [
                    {"email": {"emailAddress": person.email, "type": "HOME", "primaryInd": True}}
                ]
            }
        if membership is not None:
            details["profileMemberships"] = {"profileMembership": [membership]}
        opt_in = rng.random() < 0.4
        details["privacyInfo"] = {
            "optInEmail": opt_in and person.email is not None,
            "optInSms": opt_in,
            "optInPhone": False,
            "optInMailingList": opt_in,
            "optInThirdParty": False,
            "optInMarketResearch": False,
        }
        self._profiles.write(
            {"profileIdList": [{"id": profile_id, "type": "Profile"}], "profileDetails": details}
        )
        return profile_id

    def _stay(self, profile_id: str) -> None:
        rng, rates = self._rng, self._rates
        self._stay_serial += 1
        nights = rng.choice((1, 1, 1, 2, 2, 3, 4))
        # Every stay in the extract is over by the export: arrivals stop a few days early.
        arrival: date = min(timeline.moment(rng).date(), _LAST_ARRIVAL)
        departure = arrival + timedelta(days=nights)
        room_type, nightly_fen = rng.choice(ROOM_TYPES)
        rate_code, market = rng.choice(RATE_CODES)
        draw = rng.random()
        if draw < rates.hotel_cancelled:
            status, room, fb, other = CANCELLED, 0, 0, 0
        elif draw < rates.hotel_cancelled + rates.hotel_no_show:
            status, room, fb, other = NO_SHOW, nightly_fen, 0, 0  # one night charged
        else:
            discount = 85 if rate_code in ("CORP1", "MEMBER") else 100
            room = nightly_fen * nights * discount // 100
            fb = rng.choice((0, 0, 0, 11800, 23600, 45000))
            other = rng.choice((0, 0, 0, 0, 4500, 9000))
            status = CHECKED_OUT
        self._stays.write(
            [
                rng.choice(HOTEL_IDS),
                f"C{self._stay_serial:09d}",
                profile_id,
                timeline.date_text(arrival),
                timeline.date_text(departure),
                str(nights),
                room_type,
                rate_code,
                market,
                rng.choice(HOTEL_CHANNELS),
                timeline.yuan(room),
                timeline.yuan(fb),
                timeline.yuan(other),
                "CNY",
                status,
            ]
        )
