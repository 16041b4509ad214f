"""Privacy core: keyed hashes for matching, field encryption at rest, masking for display.

- ``KeyRing.hash(kind, value, scope)`` is HMAC-SHA256 under a versioned pepper held outside the
  database. The key id prefixes the digest (``h1:…``) so a rotation can run side by side:
  ``hashes()`` gives the digest under every key still held, and matching accepts any of them.
- ``KeyRing.encrypt(value, aad=...)`` is AES-256-GCM. The key id travels with the ciphertext
  (``k1:<base64(nonce|ct|tag)>``) and the associated data binds the value to its row and column,
  so a ciphertext copied to another row or column fails to decrypt instead of lying.
- ``KeyRing.content_digest(text)`` is keyed BLAKE2b, for change detection only (never matching):
  it tells whether a stored row differs from an imported one without revealing what either holds.
- ``mask_*`` make values safe to show an agent or write into an import report.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.errors import ConfigError, DecryptionError, UnknownKeyError

_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64e(data: bytes) -> str:
    # What ``base64.urlsafe_b64encode`` gives, without its two Python-level calls (this runs
    # twice per imported row: content digests and identifier hashes).
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def aad_for(table: str, column: str, row_id: object) -> bytes:
    """Associated data that ties a ciphertext to one row and column."""
    return f"{table}.{column}#{row_id}".encode()


@dataclass(frozen=True)
class KeyRing:
    hash_keys: Mapping[str, bytes]
    hash_key_id: str
    enc_keys: Mapping[str, bytes]
    enc_key_id: str

    def __post_init__(self) -> None:
        for label, keys, current in (
            ("hash", self.hash_keys, self.hash_key_id),
            ("encryption", self.enc_keys, self.enc_key_id),
        ):
            if current not in keys:
                raise ConfigError(f"current {label} key id {current!r} is not among the keys")
            for kid, key in keys.items():
                if not _KEY_ID.match(kid):
                    raise ConfigError(f"{label} key id {kid!r} must be 1-16 of [A-Za-z0-9_-]")
                if len(key) != 32:
                    raise ConfigError(f"{label} key {kid!r} must be 32 bytes (base64 of 32 bytes)")

    # -- keyed hashing -------------------------------------------------------------------------
    # An import hashes several values per row. Keying HMAC hashes the key pads each time; a copy
    # of a state that has already absorbed them gives the same digest for half the work. The
    # cached objects live in the instance dict (the dataclass stays frozen and comparable).
    @cached_property
    def _hmac_states(self) -> dict[str, hmac.HMAC]:
        return {kid: hmac.new(key, digestmod=hashlib.sha256) for kid, key in self.hash_keys.items()}

    @cached_property
    def _content_state(self) -> hashlib.blake2b:
        # Personalised so a content digest can never equal an identifier hash of the same bytes.
        key = self.hash_keys[self.hash_key_id]
        return hashlib.blake2b(key=key, digest_size=32, person=b"hub-content-v1")

    @cached_property
    def _ciphers(self) -> dict[str, AESGCM]:
        return {kid: AESGCM(key) for kid, key in self.enc_keys.items()}

    def hash(
        self, kind: str, value: str, scope: str | None = None, key_id: str | None = None
    ) -> str:
        kid = key_id or self.hash_key_id
        try:
            state = self._hmac_states[kid].copy()
        except KeyError:
            raise UnknownKeyError(f"no hash key {kid!r}") from None
        state.update("\x1f".join((kind, scope or "", value)).encode())
        return f"{kid}:{_b64e(state.digest())}"

    def content_digest(self, text: str) -> str:
        """Keyed digest of a row's canonical content, to tell changed rows from unchanged ones.

        Keyed (a plain hash of PII could be brute-forced back to a phone number) and prefixed
        with the hash key id, so a key rotation reads as one round of changed content.
        """
        state = self._content_state.copy()
        state.update(text.encode())
        return f"{self.hash_key_id}:{_b64e(state.digest())}"

    def hashes(self, kind: str, value: str, scope: str | None = None) -> list[str]:
        """The digest under every held key, current first: what to look up during a rotation."""
        order = [self.hash_key_id, *sorted(k for k in self.hash_keys if k != self.hash_key_id)]
        return [self.hash(kind, value, scope, kid) for kid in order]

    # -- encryption ----------------------------------------------------------------------------
    def encrypt(self, plaintext: str, *, aad: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.enc_key_id].encrypt(nonce, plaintext.encode(), aad)
        return f"{self.enc_key_id}:{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: bytes) -> str:
        kid, sep, body = token.partition(":")
        if not sep:
            raise DecryptionError("ciphertext has no key id")
        try:
            cipher = self._ciphers[kid]
        except KeyError:
            raise UnknownKeyError(f"no encryption key {kid!r}") from None
        blob = _b64d(body)
        try:
            return cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad).decode()
        except (InvalidTag, ValueError):
            raise DecryptionError(
                "ciphertext failed authentication (tampered, or bound to another row/column)"
            ) from None

    def needs_reencrypt(self, token: str) -> bool:
        return not token.startswith(self.enc_key_id + ":")

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> KeyRing:
        """From ``{"hash_keys": {id: b64}, "hash_key_id": id, "enc_keys": {...}, "enc_key_id": id}``."""
        try:
            hash_keys = {k: _b64d(str(v)) for k, v in dict(data["hash_keys"]).items()}  # type: ignore[call-overload]
            enc_keys = {k: _b64d(str(v)) for k, v in dict(data["enc_keys"]).items()}  # type: ignore[call-overload]
            return cls(hash_keys, str(data["hash_key_id"]), enc_keys, str(data["enc_key_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"key material is malformed: {exc.__class__.__name__}") from None

    @classmethod
    def generate(cls) -> KeyRing:
        return cls({"h1": secrets.token_bytes(32)}, "h1", {"k1": secrets.token_bytes(32)}, "k1")

    def to_mapping(self) -> dict[str, object]:
        return {
            "hash_keys": {k: _b64e(v) for k, v in self.hash_keys.items()},
            "hash_key_id": self.hash_key_id,
            "enc_keys": {k: _b64e(v) for k, v in self.enc_keys.items()},
            "enc_key_id": self.enc_key_id,
        }


def load_or_create_keyring(path: Path) -> KeyRing:
    """Dev/demo only: keys live in the data folder, created on first use (mode 0600)."""
    if path.exists():
        return KeyRing.from_mapping(json.loads(path.read_text()))
    ring = KeyRing.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(ring.to_mapping(), fh)
    return ring


# -- masking ------------------------------------------------------------------------------------


def mask_phone(value: str) -> str:
    """``+8613812345678`` / ``13812345678`` → ``138****5678``; short numbers keep two at each end."""
    digits = re.sub(r"\D", "", value)
    if value.startswith("+86") or (len(digits) == 13 and digits.startswith("86")):
        digits = digits[2:]
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) > 4:
        return digits[:2] + "*" * (len(digits) - 4) + digits[-2:]
    return "*" * len(digits)


def mask_id_number(value: str) -> str:
    """``TYPE:110101199001011234`` or a bare number → ``1101**********1234``."""
    number = value.split(":", 1)[-1]
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def mask_name(value: str) -> str:
    """``张三丰`` → ``张**``; ``Jia Ceshi`` → ``J** C****``."""
    value = value.strip()
    if not value:
        return value
    if value.isascii():
        return " ".join(p[0] + "*" * (len(p) - 1) for p in value.split())
    return value[0] + "*" * (len(value) - 1)


def mask_email(value: str) -> str:
    local, sep, domain = value.partition("@")
    if not sep:
        return "*" * len(value)
    return (local[:1] + "***") + "@" + domain


def mask_address(province: str | None, city: str | None, detail: str | None = None) -> str:
    """Province and city stay (they are coarse); everything finer becomes ``******``."""
    parts = [p for p in (province, city) if p]
    if detail:
        parts.append("******")
    return " ".join(parts)


_LONG_DIGITS = re.compile(r"(?<!\d)(\+?\d[\d\s-]{5,}\d[\dXx]?)(?!\d)")
_EMAILS = re.compile(r"[^@\s,;\"']+@[^@\s,;\"']+")


def mask_text(text: str, limit: int = 300) -> str:
    """Free text (a bad row, an error) made safe for reports: long digit runs and emails masked.

    Order and receipt numbers are digit runs too and get masked; that is the price of never
    leaking a phone or ID number through a report.
    """
    masked = _EMAILS.sub(lambda m: mask_email(m.group(0)), text)
    masked = _LONG_DIGITS.sub(
        lambda m: mask_phone(m.group(0)) if len(m.group(0)) < 15 else mask_id_number(m.group(0)),
        masked,
    )
    return masked if len(masked) <= limit else masked[:limit] + "…"


_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2,}")
_LATIN_WORD = re.compile(r"(?<![A-Za-z])([A-Za-z])([A-Za-z]{2,})")


def mask_raw(text: str, limit: int = 300) -> str:
    """A bad row as it may appear in an import report: its shape, not its people.

    On top of ``mask_text`` (digits, emails), every run of Chinese characters and every Latin
    word keeps only its first letter — names cannot be told from other words by pattern, so all
    words are treated as if they were one. The file, line and column locate the row.
    """
    masked = mask_text(text, limit=max(limit * 2, limit))
    masked = _CJK_RUN.sub(lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), masked)
    masked = _LATIN_WORD.sub(lambda m: m.group(1) + "*" * len(m.group(2)), masked)
    return masked if len(masked) <= limit else masked[:limit] + "…"
