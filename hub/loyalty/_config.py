"""A strict reader over parsed TOML that names the key path in every error.

The program file is hand-edited by operators, so a typo must fail start-up with a message that
points at the exact key (``earn_rules[2].points_per_yuan: must be ...``), and unknown keys are
errors rather than silently ignored settings. Array indexes in paths are 0-based.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from hub.core.errors import ConfigError

_MISSING: Final = object()
MAX_DECIMAL: Final = Decimal(1_000_000)
MAX_DECIMAL_PLACES: Final = 6
MAX_INT: Final = 10**12


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def fail(path: str, reason: str) -> ConfigError:
    return ConfigError(f"{path}: {reason}" if path else reason)


class Section:
    """One TOML table; every read records the key so ``finish`` can reject the leftovers."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise fail(path, "must be a table")
        self._data: Mapping[str, Any] = data
        self._seen: set[str] = set()
        self.path = path

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def at(self, key: str) -> str:
        return join(self.path, key)

    def _get(self, key: str, default: object) -> Any:
        self._seen.add(key)
        if key in self._data:
            return self._data[key]
        if default is _MISSING:
            raise fail(self.at(key), "is required")
        return default

    def text(self, key: str, *, default: object = _MISSING, max_len: int = 200) -> str:
        value = self._get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise fail(self.at(key), "must be non-blank text")
        if len(value) > max_len:
            raise fail(self.at(key), f"must be at most {max_len} characters")
        return value

    def choice(self, key: str, choices: tuple[str, ...], *, default: object = _MISSING) -> str:
        value = self._get(key, default)
        if value not in choices:
            allowed = ", ".join(repr(str(c)) for c in choices)
            raise fail(self.at(key), f"must be one of {allowed}")
        return str(value)

    def integer(
        self, key: str, *, minimum: int = 0, maximum: int = MAX_INT, default: object = _MISSING
    ) -> int:
        value = self._get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            raise fail(self.at(key), f"must be an integer from {minimum} to {maximum}")
        return value

    def optional_integer(self, key: str, *, minimum: int = 1) -> int | None:
        if key not in self._data:
            self._seen.add(key)
            return None
        return self.integer(key, minimum=minimum)

    def decimal(self, key: str, *, default: object = _MISSING) -> Decimal:
        """A positive integer or decimal; floats go through ``str`` so ``1.1`` stays exactly 1.1."""
        return to_decimal(self._get(key, default), self.at(key))

    def section(self, key: str, *, default: object = _MISSING) -> Section:
        return Section(self._get(key, default), self.at(key))

    def sections(self, key: str, *, limit: int) -> list[Section]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise fail(self.at(key), "must be an array of tables ([[...]])")
        if len(value) > limit:
            raise fail(self.at(key), f"has {len(value)} entries, at most {limit} are allowed")
        return [Section(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]

    def named_sections(self, key: str, *, limit: int) -> list[tuple[str, Section]]:
        table = self.section(key)
        keys = table.names()
        if not keys:
            raise fail(table.path, "must declare at least one entry")
        if len(keys) > limit:
            raise fail(table.path, f"has {len(keys)} entries, at most {limit} are allowed")
        return [(k, table.section(k)) for k in keys]

    def text_list(self, key: str, *, limit: int = 16) -> tuple[str, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or len(value) > limit:
            raise fail(self.at(key), f"must be a list of at most {limit} texts")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise fail(f"{self.at(key)}[{i}]", "must be non-blank text")
        return tuple(value)

    def names(self) -> list[str]:
        self._seen.update(self._data)
        return list(self._data)

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise fail(self.at(unknown[0]), "unknown key (check the spelling)")


def to_decimal(value: object, path: str) -> Decimal:
    reason = "must be a positive integer or decimal"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fail(path, reason)
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(path, reason)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise fail(path, reason) from None
    if not number.is_finite() or number <= 0:
        raise fail(path, reason)
    if number > MAX_DECIMAL:
        raise fail(path, f"must be at most {MAX_DECIMAL}")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMAL_PLACES:
        raise fail(path, f"must have at most {MAX_DECIMAL_PLACES} decimal places")
    return number
