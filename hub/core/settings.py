"""Settings: environment variables with the ``HUB_`` prefix, a ``.env`` file, or secret files.

Validated once at start-up (``load_settings``): a bad value stops the hub with a message naming
the variable, never a stack trace. Production (``HUB_ENV=prod``) refuses to start without its
key material and JWT verification key; dev/test/demo generate keys into the data folder.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.core.batch import MAX_CALLS
from hub.core.errors import ConfigError
from hub.core.pii import KeyRing, load_or_create_keyring


class Env(StrEnum):
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class Exporter(StrEnum):
    NONE = "none"
    CONSOLE = "console"
    OTLP = "otlp"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Env = Env.DEV
    data_dir: Path = Path(".hub")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("HUB_DATABASE_URL", "DATABASE_URL")
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)
    db_pool_timeout_s: float = Field(default=10.0, gt=0, le=300)
    db_statement_timeout_ms: int = Field(default=30_000, ge=100, le=3_600_000)
    # Redemption calls made at the same moment go to the server together, up to this many to a
    # statement (hub.core.batch); 1 sends each alone.
    db_batch_calls: int = Field(default=MAX_CALLS, ge=1, le=64)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_ingest_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)

    jwt_secret: SecretStr | None = None  # HS256, dev/test/demo
    jwt_public_key: str | None = None  # RS256 PEM, production
    jwt_issuer: str = "member-hub"
    jwt_audience: str = "member-hub"

    hash_keys: dict[str, str] | None = None  # key id -> base64 of 32 bytes
    hash_key_id: str | None = None
    encryption_keys: dict[str, str] | None = None
    encryption_key_id: str | None = None

    graphql_max_depth: int = Field(default=12, ge=2, le=50)
    graphql_max_tokens: int = Field(default=2_000, ge=100)
    graphql_max_aliases: int = Field(default=30, ge=1)
    graphql_max_cost: int = Field(default=5_000, ge=10)
    rate_limit_cost_per_s: float = Field(default=2_000.0, ge=0)  # 0 turns rate limiting off
    rate_limit_burst: float = Field(default=20_000.0, ge=1)
    persisted_operations: str | None = None  # off | log | enforce; default: enforce in prod

    @field_validator("persisted_operations")
    @classmethod
    def _persisted(cls, value: str | None) -> str | None:
        if value is not None and value not in ("off", "log", "enforce"):
            raise ValueError("must be off, log or enforce")
        return value

    otel_exporter: Exporter = Exporter.NONE
    log_level: str = "INFO"
    log_json: bool = True
    program: Path | None = None

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @field_validator("database_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _prod_needs_secrets(self) -> Settings:
        if self.env is Env.PROD:
            missing = [
                name
                for name, value in (
                    ("HUB_DATABASE_URL", self.database_url),
                    ("HUB_JWT_PUBLIC_KEY", self.jwt_public_key),
                    ("HUB_HASH_KEYS", self.hash_keys),
                    ("HUB_HASH_KEY_ID", self.hash_key_id),
                    ("HUB_ENCRYPTION_KEYS", self.encryption_keys),
                    ("HUB_ENCRYPTION_KEY_ID", self.encryption_key_id),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"production needs {', '.join(missing)} (env or secret files)")
        if self.db_max_overflow > self.db_pool_size * 4:
            raise ValueError("HUB_DB_MAX_OVERFLOW should not exceed 4x HUB_DB_POOL_SIZE")
        return self

    # -- derived ----------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        return self.database_url is None

    def keyring(self) -> KeyRing:
        if self.hash_keys and self.encryption_keys:
            return KeyRing.from_mapping(
                {
                    "hash_keys": self.hash_keys,
                    "hash_key_id": self.hash_key_id or sorted(self.hash_keys)[-1],
                    "enc_keys": self.encryption_keys,
                    "enc_key_id": self.encryption_key_id or sorted(self.encryption_keys)[-1],
                }
            )
        if self.env is Env.PROD:
            raise ConfigError("production needs HUB_HASH_KEYS and HUB_ENCRYPTION_KEYS")
        return load_or_create_keyring(self.data_dir / "keys.json")

    def keyring_source(self) -> str:
        """Where ``keyring()`` takes its keys from, for messages (names, never key material)."""
        if self.hash_keys and self.encryption_keys:
            return "HUB_HASH_KEYS and HUB_ENCRYPTION_KEYS"
        return str((self.data_dir / "keys.json").resolve())

    def jwt_signing_secret(self) -> str:
        """Dev/demo HS256 secret: configured, or generated once into the data folder."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        if self.env is Env.PROD:
            raise ConfigError("production verifies RS256 tokens; HS256 secrets are for dev")
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        name = loc if loc.startswith("HUB_") or loc == "settings" else "HUB_" + loc.upper()
        lines.append(f"{name}: {err['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings; raise ConfigError with one line per bad variable."""
    import os

    secrets_dir = os.environ.get("HUB_SECRETS_DIR")
    kwargs: dict[str, Any] = dict(overrides)
    if secrets_dir:
        if not Path(secrets_dir).is_dir():
            raise ConfigError(f"HUB_SECRETS_DIR: {secrets_dir!r} is not a folder")
        kwargs["_secrets_dir"] = secrets_dir
    try:
        return Settings(**kwargs)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    except json.JSONDecodeError as exc:  # malformed JSON in a dict-valued variable
        raise ConfigError(
            f"invalid settings: a JSON-valued variable does not parse ({exc.msg})"
        ) from None
