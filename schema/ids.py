"""Row ids as GraphQL carries them (``ID`` strings, cursors) turned back into integers.

Found by fuzzing (tests/schema/test_fuzz.py): ``str.isdigit`` accepts ``"²"`` (which ``int``
refuses) and ``int`` accepts numbers past ``bigint``, which fail inside the driver as an
internal error. Only plain ASCII digits within ``bigint`` name a row; anything else names none.
"""

from __future__ import annotations

MAX_ID = 2**63 - 1  # PostgreSQL bigint


def parse_id(value: object) -> int | None:
    """The row id ``value`` spells, or None when it spells none."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)):
        return None
    number = int(text)
    return number if number <= MAX_ID else None
