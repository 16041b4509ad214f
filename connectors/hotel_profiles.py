"""Guest profile readers for ``connectors.hotel``: OPERA Cloud JSON and OpenTravel XML.

Both produce ``Person`` (what one profile says, already normalised, plus the fields that could
not be read), so the mapping onto ``SourceRecord`` and its rules live in one place
(``connectors.hotel``). Field names follow OPERA Cloud 24.4 (``crm`` module) and
``OTA_ProfileReadRS`` 2015B; see formats doc §6.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as safe_etree
from defusedxml import DefusedXmlException

from connectors import fields
from connectors.base import row_error
from connectors.fields import BadField
from connectors.jsonio import json_objects
from hub.core import normalize
from hub.core.errors import ImportFormatError
from hub.core.records import Address, Gender, Identifier, IdentifierKind, RowError

DEFAULT_PMS = "opera"
_CONSENTS = {
    "optInEmail": "email",
    "optInSms": "sms",
    "optInPhone": "phone",
    "optInMailingList": "mailing_list",
    "optInThirdParty": "third_party",
    "optInMarketResearch": "market_research",
}
_ANONYMISED = frozenset({"anonymized", "anonymised", "anonymizationrequested"})
# OpenTravel "Document Type" codes seen in integrations; other codes pass through as written.
_OTA_DOC_TYPES = {"2": "PASSPORT"}


@dataclass
class Person:
    line: int
    key: str
    identifiers: list[Identifier] = field(default_factory=list)
    errors: list[BadField] = field(default_factory=list)
    name: str | None = None
    name_latin: str | None = None
    gender: Gender | None = None
    birthday: date | None = None
    address: Address | None = None
    consents: dict[str, bool] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    observed_at: datetime | None = None

    def names(
        self, latin: tuple[str | None, str | None], script: tuple[str | None, str | None]
    ) -> None:
        """(given, surname) pairs: latin/pinyin and Chinese script (either may be empty)."""
        given_cn, surname_cn = script
        if given_cn or surname_cn:
            self.name = f"{surname_cn or ''}{given_cn or ''}"
        given, surname = latin
        parts = [surname, given] if self.name else [given, surname]
        text = " ".join(p for p in parts if p)
        if text and text.isascii():
            self.name_latin = text
        elif text and self.name is None:
            self.name = text.replace(" ", "")

    def document(self, doc_type: str | None, number: str | None, column: str) -> None:
        if not number:
            return  # only a masked number: not an identifier
        try:
            value = normalize.document_number(doc_type or "UNKNOWN", number)
        except ValueError as exc:
            self.errors.append(BadField(column, str(exc)))
            return
        self.identifiers.append(Identifier(IdentifierKind.ID_DOCUMENT, value))

    def phone(self, raw: str | None, column: str) -> None:
        if raw:
            found = fields.attempt(self.errors, lambda: fields.phone(raw, column))
            if found is not None:
                self.identifiers.append(found)

    def email(self, raw: str | None, column: str) -> None:
        if raw:
            found = fields.attempt(self.errors, lambda: fields.email(raw, column))
            if found is not None:
                self.identifiers.append(found)

    def membership(self, programme: str | None, number: str | None, level: str | None) -> None:
        if number:
            self.identifiers.append(
                Identifier(IdentifierKind.MEMBERSHIP_ID, number, scope=programme)
            )
            if level:
                self.attributes[f"membership_level.{programme or 'default'}"] = level

    def born(self, raw: str | None, column: str) -> None:
        self.birthday = fields.attempt(self.errors, lambda: fields.birthday(raw, column))


# -- OPERA Cloud JSON ----------------------------------------------------------------------------


def _items(obj: Any, *path: str) -> list[Any]:
    """``obj[a][b]...`` as a list: OPERA wraps lists in objects and sends one item bare."""
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    if obj is None:
        return []
    return obj if isinstance(obj, list) else [obj]


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def opera_profiles(stream: BinaryIO, *, filename: str, pms_id: str) -> Iterator[Person | RowError]:
    first = True
    for item in json_objects(stream, filename=filename):
        if isinstance(item, RowError):
            yield item
            continue
        line, obj = item
        if first and not (isinstance(obj, Mapping) and "profileDetails" in obj):
            raise ImportFormatError(
                f"{filename} does not look like OPERA Cloud profiles: expected objects with "
                "profileIdList and profileDetails"
            )
        first = False
        if not isinstance(obj, Mapping):
            yield row_error(filename, line, "expected a profile object")
            continue
        yield from _opera(line, obj, filename, pms_id)


def _opera(
    line: int, obj: Mapping[str, Any], filename: str, pms_id: str
) -> Iterator[Person | RowError]:
    ids = [i for i in _items(obj, "profileIdList") if isinstance(i, Mapping) and i.get("id")]
    chosen = next((i for i in ids if i.get("type") == "Profile"), ids[0] if ids else None)
    if chosen is None:
        yield row_error(filename, line, "profile has no id", column="profileIdList")
        return
    details = _get(obj, "profileDetails") or {}
    customer = _get(details, "customer") or {}
    status = str(_get(customer, "anonymization", "anonymizationStatus") or "").lower()
    if status in _ANONYMISED:
        yield row_error(filename, line, "profile is anonymised in the PMS", code="SKIPPED")
        return
    person = Person(line=line, key=str(chosen["id"]))
    person.identifiers.append(Identifier(IdentifierKind.HOTEL_PROFILE_ID, person.key, scope=pms_id))
    names = {n.get("nameType"): n for n in _items(customer, "personName") if isinstance(n, Mapping)}
    primary, alternate = names.get("Primary") or {}, names.get("Alternate") or {}
    person.names(
        (fields.text(primary.get("givenName")), fields.text(primary.get("surname"))),
        (fields.text(alternate.get("givenName")), fields.text(alternate.get("surname"))),
    )
    person.gender = fields.gender(fields.text(customer.get("gender")))
    person.born(fields.text(customer.get("birthDate")), "birthDate")
    for info in _items(customer, "identifications", "identificationInfo"):
        ident = _get(info, "identification") or {}
        person.document(
            fields.text(ident.get("idType")), fields.text(ident.get("idNumber")), "identifications"
        )
    for info in _items(details, "telephones", "telephoneInfo"):
        person.phone(fields.text(_get(info, "telephone", "phoneNumber")), "telephones")
    for info in _items(details, "emails", "emailInfo"):
        person.email(fields.text(_get(info, "email", "emailAddress")), "emails")
    for m in _items(details, "profileMemberships", "profileMembership"):
        if isinstance(m, Mapping):
            person.membership(
                fields.text(m.get("membershipType")),
                fields.text(m.get("membershipId")),
                fields.text(m.get("membershipLevel")),
            )
    privacy = _get(details, "privacyInfo") or {}
    for key, consent in _CONSENTS.items():
        value = privacy.get(key) if isinstance(privacy, Mapping) else None
        if isinstance(value, bool):
            person.consents[consent] = value
    addresses = [_get(a, "address") for a in _items(details, "addresses", "addressInfo")]
    address = next((a for a in addresses if isinstance(a, Mapping)), None)
    if address is not None:
        person.address = _address(
            fields.text(address.get("state")),
            fields.text(address.get("cityName")),
            fields.text(_get(address, "country", "code")),
        )
    stamp = fields.text(details.get("lastModifyDateTime") or details.get("createDateTime"))
    if stamp:
        person.observed_at = fields.attempt(
            person.errors, lambda: fields.local_time(stamp, "lastModifyDateTime")
        )
    vip = fields.text(customer.get("vipStatus"))
    if vip:
        person.attributes["vip_status"] = vip
    yield person


def _address(province: str | None, city: str | None, country: str | None) -> Address | None:
    if not (province or city or country):
        return None
    return Address(province=province, city=city, country=country.upper() if country else None)


# -- OpenTravel XML ------------------------------------------------------------------------------


class _LineReader:
    """Feeds the XML parser one line at a time so an element's line is the lines read so far."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.line = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.readline(size if size > 0 else -1)
        self.line += data.count(b"\n")
        return data


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: Element, name: str) -> Element | None:
    return next((c for c in elem if _local(c.tag) == name), None)


def _descendants(elem: Element, name: str) -> Iterator[Element]:
    return (e for e in elem.iter() if _local(e.tag) == name)


def ota_profiles(stream: BinaryIO, *, filename: str, pms_id: str) -> Iterator[Person | RowError]:
    reader = _LineReader(stream)
    stack: list[Element] = []
    start_line = 0
    try:
        for event, elem in safe_etree.iterparse(reader, events=("start", "end")):
            name = _local(elem.tag)
            if event == "start":
                if not stack and name != "OTA_ProfileReadRS":
                    raise ImportFormatError(
                        f"{filename} does not look like OpenTravel profiles: expected an "
                        f"OTA_ProfileReadRS document with Profiles/ProfileInfo, not <{name}>"
                    )
                if name == "Errors" and len(stack) == 1:
                    raise ImportFormatError(f"{filename} is an OTA error response, not profiles")
                if name == "ProfileInfo":
                    start_line = reader.line  # the line holding this start tag was just fed
                stack.append(elem)
                continue
            stack.pop()
            if name == "ProfileInfo":
                yield _ota(start_line, elem, filename, pms_id)
                if stack:
                    stack[-1].remove(elem)  # keep memory flat on large files
    except ParseError as exc:
        at = exc.position[0] if exc.position else reader.line
        yield row_error(
            filename, at, f"malformed XML ({exc.msg}); rest of file not read", code="BAD_XML"
        )
    except DefusedXmlException:
        raise ImportFormatError(
            f"{filename} declares XML entities or external references; refused"
        ) from None


def _ota(line: int, info: Element, filename: str, pms_id: str) -> Person | RowError:
    unique = _child(info, "UniqueID")
    key = fields.text(unique.get("ID")) if unique is not None else None
    customer = next(_descendants(info, "Customer"), None)
    if key is None or customer is None:
        return row_error(filename, line, "profile has no UniqueID or Customer", column="UniqueID")
    scope = (fields.text(unique.get("ID_Context")) if unique is not None else None) or pms_id
    person = Person(line=line, key=key)
    person.identifiers.append(Identifier(IdentifierKind.HOTEL_PROFILE_ID, key, scope=scope.lower()))
    latin: tuple[str | None, str | None] = (None, None)
    script: tuple[str | None, str | None] = (None, None)
    for pn in _descendants(customer, "PersonName"):
        given, surname = _text(pn, "GivenName"), _text(pn, "Surname")
        if (given or surname or "").isascii():
            latin = latin if any(latin) else (given, surname)
        else:
            script = script if any(script) else (given, surname)
    person.names(latin, script)
    person.gender = fields.gender(fields.text(customer.get("Gender")))
    person.born(fields.text(customer.get("BirthDate")), "BirthDate")
    for tel in _descendants(customer, "Telephone"):
        person.phone(fields.text(tel.get("PhoneNumber")), "Telephone")
    for mail in _descendants(customer, "Email"):
        person.email(fields.text(mail.text), "Email")
    for doc in _descendants(customer, "Document"):
        doc_type = fields.text(doc.get("DocType"))
        person.document(
            _OTA_DOC_TYPES.get(doc_type or "", doc_type), fields.text(doc.get("DocID")), "Document"
        )
    for loyalty in _descendants(info, "CustLoyalty"):
        person.membership(
            fields.text(loyalty.get("ProgramID")),
            fields.text(loyalty.get("MembershipID")),
            fields.text(loyalty.get("LoyalLevel")),
        )
    address = next(_descendants(customer, "Address"), None)
    if address is not None:
        country = _child(address, "CountryName")
        person.address = _address(
            _text(address, "StateProv"),
            _text(address, "CityName"),
            fields.text(country.get("Code")) if country is not None else None,
        )
    return person


def _text(elem: Element, name: str) -> str | None:
    found = _child(elem, name)
    return fields.text(found.text) if found is not None else None
