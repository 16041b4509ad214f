"""Refuse a keyring other than the one a database's data was written under.

Identifiers are matched on keyed hashes and PII is encrypted, both under the keyring's keys. A
command run with another keyring against the same database would hash the same phone to another
digest — people silently stop matching and are created twice — and fail to decrypt what is
stored. Dev and demo keyrings are generated into the data folder (``.hub/keys.json`` below the
working directory), so running ``hub`` from another folder against a shared server is the easy
way to get there; in production it is a wrong ``HUB_HASH_KEYS``.

Each key is known to the database by a check value: the first 16 bytes of HMAC-SHA256 under the
key of a fixed label. It tells whether two keys are equal and nothing about the key itself. The
first command to use a key id records it; a key id the database knows under another check value
is refused (``KeyringMismatch``) before anything is read or written. A key id the database has
not seen (a rotation adds one) is recorded.
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import text

from hub.core.db import Database
from hub.core.errors import ConfigError
from hub.core.migrate import head_revision, known_revisions
from hub.core.pii import KeyRing
from hub.core.settings import Settings

_LABEL = b"member-hub keyring check v1"


class KeyringMismatch(ConfigError):
    code = "KEYRING_MISMATCH"


def check_values(keyring: KeyRing) -> dict[tuple[str, str], bytes]:
    """(kind, key id) → check value, for every key the ring holds."""
    out: dict[tuple[str, str], bytes] = {}
    for kind, keys in (("hash", keyring.hash_keys), ("encryption", keyring.enc_keys)):
        for kid, key in keys.items():
            out[(kind, kid)] = hmac.new(key, _LABEL, hashlib.sha256).digest()[:16]
    return out


async def verify_keyring(db: Database, keyring: KeyRing, *, source: str) -> None:
    """Record the ring's keys the database has not seen; refuse the ring if any key id the
    database knows has another key here. ``source`` says where the ring came from."""
    mine = check_values(keyring)
    kinds, ids = zip(*mine, strict=True)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO keyring_check (kind, key_id, check_value) "
                "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:ids AS text[]), "
                "CAST(:checks AS bytea[])) ON CONFLICT (kind, key_id) DO NOTHING"
            ),
            {"kinds": list(kinds), "ids": list(ids), "checks": list(mine.values())},
        )
        known = (
            await conn.execute(text("SELECT kind, key_id, check_value FROM keyring_check"))
        ).all()
    wrong = sorted(
        f"{kind} key {kid!r}"
        for kind, kid, value in known
        if (kind, kid) in mine and bytes(value) != mine[(kind, kid)]
    )
    if wrong:
        raise KeyringMismatch(
            f"this database was written under other keys than the keyring from {source} "
            f"({', '.join(wrong)} differ): its hashes would not match and its PII would not "
            "decrypt. Use the keyring the data was written with (HUB_HASH_KEYS and "
            "HUB_ENCRYPTION_KEYS, or HUB_DATA_DIR pointing at the folder holding its keys.json)"
        )


async def check_ready(db: Database, settings: Settings) -> KeyRing:
    """What a command that reads or writes the data checks first: the database is migrated,
    and the settings' keyring is the one the data was written under. Returns that keyring."""
    await db.require_migrated(head_revision(), known_revisions())
    keyring = settings.keyring()
    await verify_keyring(db, keyring, source=settings.keyring_source())
    return keyring
