"""The one place the hub asks what time it is, so tests and jobs can pin it."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utcnow() -> datetime:
    return datetime.now(UTC)


def local_naive_to_aware(value: datetime, tz: ZoneInfo = SHANGHAI) -> datetime:
    """Source exports write local wall-clock time with no offset; Chinese platforms mean Shanghai."""
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)
