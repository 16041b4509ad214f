from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.core.errors import ConfigError
from hub.core.settings import Env, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HUB_DATABASE_URL", "DATABASE_URL", "HUB_ENV", "HUB_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))


def test_defaults_are_a_dev_hub_on_embedded_postgres() -> None:
    s = load_settings()
    assert s.env is Env.DEV
    assert s.embedded


def test_each_bad_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DB_POOL_SIZE", "0")
    monkeypatch.setenv("HUB_PORT", "seventy")
    monkeypatch.setenv("HUB_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = err.value.message
    assert "HUB_DB_POOL_SIZE" in message
    assert "HUB_PORT" in message
    assert "HUB_LOG_LEVEL: Value error, must be DEBUG, INFO, WARNING or ERROR" in message


def test_database_url_must_be_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", "sqlite:///x.db")
    with pytest.raises(ConfigError, match="HUB_DATABASE_URL.*postgresql"):
        load_settings()


def test_plain_database_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/hub")
    assert load_settings().database_url == "postgresql://u@db/hub"


def test_production_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_ENV", "prod")
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://u@db/hub")
    with pytest.raises(ConfigError) as err:
        load_settings()
    for name in ("HUB_JWT_PUBLIC_KEY", "HUB_HASH_KEYS", "HUB_ENCRYPTION_KEYS"):
        assert name in err.value.message


def test_production_reads_keys_from_a_secrets_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    key = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE"  # base64 of 32 bytes
    (secrets / "hub_hash_keys").write_text(json.dumps({"h1": key}))
    (secrets / "hub_hash_key_id").write_text("h1")
    (secrets / "hub_encryption_keys").write_text(json.dumps({"k1": key}))
    (secrets / "hub_encryption_key_id").write_text("k1")
    (secrets / "hub_jwt_public_key").write_text(
        "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----"
    )
    monkeypatch.setenv("HUB_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("HUB_ENV", "prod")
    monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://u@db/hub")
    s = load_settings()
    ring = s.keyring()
    assert ring.hash_key_id == "h1"
    with pytest.raises(ConfigError, match="RS256"):
        s.jwt_signing_secret()


def test_missing_secrets_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_SECRETS_DIR", "/nonexistent/secrets")
    with pytest.raises(ConfigError, match="HUB_SECRETS_DIR"):
        load_settings()


def test_dev_generates_keys_and_jwt_secret_in_the_data_folder(tmp_path: Path) -> None:
    s = load_settings()
    first = s.keyring().hash("phone", "x")
    assert (tmp_path / "data" / "keys.json").exists()
    assert load_settings().keyring().hash("phone", "x") == first
    assert s.jwt_signing_secret() == load_settings().jwt_signing_secret()


def test_every_setting_is_in_the_readme_table() -> None:
    """The README's configuration table names every variable the hub reads (no setting that
    nobody can find, none documented that does nothing)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `HUB_"))
    missing = []
    for field in Settings.model_fields:
        name = f"HUB_{field.upper()}"
        grouped = field.startswith("graphql_") and f"`_{field.removeprefix('graphql_').upper()}`"
        if name not in table and not (grouped and grouped in table):
            missing.append(name)
    assert missing == []
    documented = {word.strip("`,") for line in table.splitlines() for word in line.split()}
    known = {f"HUB_{f.upper()}" for f in Settings.model_fields}
    assert {w for w in documented if w.startswith("HUB_")} <= known | {"HUB_SECRETS_DIR"}
