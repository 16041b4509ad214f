"""Shared builders for the identity tests (a uniquely named module: tests are rootdir-imported)."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from hub.core.records import Address, Identifier, IdentifierKind, SourceRecord
from identity.config import MatchingConfig, parse_config

T0 = datetime(2024, 6, 1, tzinfo=UTC)


def default_toml() -> dict[str, Any]:
    text = resources.files("identity").joinpath("default_matching.toml").read_text("utf-8")
    return tomllib.loads(text)


def config_with(**sections: dict[str, Any]) -> MatchingConfig:
    data = default_toml()
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


def rec(
    source: str,
    key: str,
    *ids: Identifier,
    name: str | None = None,
    name_latin: str | None = None,
    birthday: date | None = None,
    city: str | None = None,
    province: str | None = None,
    seen: datetime = T0,
    **kw: Any,
) -> SourceRecord:
    address = Address(province=province, city=city) if city or province else None
    return SourceRecord(
        source=source,
        source_key=key,
        business_line=source,
        observed_at=seen,
        identifiers=ids,
        name=name,
        name_latin=name_latin,
        birthday=birthday,
        address=address,
        **kw,
    )


def ident(kind: str, value: str, **kw: Any) -> Identifier:
    return Identifier(IdentifierKind(kind), value, **kw)
