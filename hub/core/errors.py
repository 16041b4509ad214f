"""One exception tree for the whole hub.

    HubError
    ├── ConfigError                 settings or program file invalid at start-up
    │   └── KeyringMismatch         keys other than the data's (hub.core.keycheck)
    ├── DatabaseError
    │   ├── DatabaseUnavailable     cannot reach PostgreSQL
    │   └── NotMigrated             schema older than the code (run `hub migrate`)
    ├── PrivacyError
    │   ├── UnknownKeyError         ciphertext or hash names a key id we do not hold
    │   └── DecryptionError         tampered ciphertext, or one moved to another row/column
    ├── RecordError                 a canonical record failed validation (carries field)
    ├── ImportFormatError           wrong file for a connector (names the expected headers)
    ├── AuthError
    │   ├── NotAuthenticated        missing, malformed, expired or badly signed token
    │   └── PermissionDenied        authenticated, but not allowed to do this
    ├── NotFound
    ├── Conflict
    │   └── IdempotencyConflict     same key, different input (names the field)
    └── LimitExceeded               request too big, too deep, too many items

Every error has a stable ``code`` (used in GraphQL error extensions and in import reports) and a
message written for the person who has to fix it. Messages never contain PII values.
"""

from __future__ import annotations


class HubError(Exception):
    code = "HUB_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(HubError):
    code = "CONFIG_ERROR"


class DatabaseError(HubError):
    code = "DATABASE_ERROR"


class DatabaseUnavailable(DatabaseError):
    code = "DATABASE_UNAVAILABLE"


class NotMigrated(DatabaseError):
    code = "NOT_MIGRATED"


class PrivacyError(HubError):
    code = "PRIVACY_ERROR"


class UnknownKeyError(PrivacyError):
    code = "UNKNOWN_KEY"


class DecryptionError(PrivacyError):
    code = "DECRYPTION_FAILED"


class RecordError(HubError):
    """A canonical record is invalid; ``field`` names the offending field."""

    code = "INVALID_RECORD"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ImportFormatError(HubError):
    """The file is not what the connector reads (e.g. a Douyin export given to `taobao`)."""

    code = "WRONG_FORMAT"


class AuthError(HubError):
    code = "AUTH_ERROR"


class NotAuthenticated(AuthError):
    code = "NOT_AUTHENTICATED"


class PermissionDenied(AuthError):
    code = "PERMISSION_DENIED"


class NotFound(HubError):
    code = "NOT_FOUND"


class Conflict(HubError):
    code = "CONFLICT"


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"

    def __init__(self, key: str, field: str) -> None:
        super().__init__(f"idempotency key {key!r} was used before with a different {field!r}")
        self.key = key
        self.field = field


class LimitExceeded(HubError):
    code = "LIMIT_EXCEEDED"
