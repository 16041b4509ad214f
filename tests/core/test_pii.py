from __future__ import annotations

import base64

import pytest

from hub.core.errors import ConfigError, DecryptionError, UnknownKeyError
from hub.core.pii import (
    KeyRing,
    aad_for,
    load_or_create_keyring,
    mask_address,
    mask_email,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
)


def _ring(hash_keys: dict[str, bytes], hash_id: str) -> KeyRing:
    return KeyRing(hash_keys, hash_id, {"k1": b"k" * 32}, "k1")


def test_keyed_hash_is_stable_and_depends_on_the_key() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    digest = ring.hash("phone", "+8613800000001")
    assert digest == ring.hash("phone", "+8613800000001")
    assert digest.startswith("h1:")
    # Known value: HMAC-SHA256 over "phone\x1f\x1f+8613800000001" under key "a"*32.
    assert digest == "h1:" + "Yu37LIP19bpxVRggPnm5vGBuYzuJ4aFGmdPIhodFQ40"
    other = _ring({"h1": b"b" * 32}, "h1")
    assert other.hash("phone", "+8613800000001") != digest


def test_keyed_hash_separates_kinds_and_scopes() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    assert ring.hash("phone", "x") != ring.hash("email", "x")
    assert ring.hash("openid", "o1", scope="appA") != ring.hash("openid", "o1", scope="appB")


def test_rotation_keeps_old_hashes_matchable() -> None:
    old = _ring({"h1": b"a" * 32}, "h1")
    rotated = _ring({"h1": b"a" * 32, "h2": b"c" * 32}, "h2")
    stored = old.hash("phone", "+8613800000001")
    candidates = rotated.hashes("phone", "+8613800000001")
    assert candidates[0].startswith("h2:")  # new writes use the new key
    assert stored in candidates  # existing rows still match during the rotation
    with pytest.raises(UnknownKeyError):
        old.hash("phone", "x", key_id="h9")


def test_encryption_round_trips_and_names_its_key() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    aad = aad_for("source_record", "phone", 42)
    token = ring.encrypt("+8613800000001", aad=aad)
    assert token.startswith("k1:")
    assert "13800000001" not in token
    assert ring.decrypt(token, aad=aad) == "+8613800000001"
    assert ring.encrypt("same", aad=aad) != ring.encrypt("same", aad=aad)  # fresh nonce


def test_tampered_ciphertext_is_rejected() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    aad = aad_for("source_record", "phone", 42)
    kid, body = ring.encrypt("secret", aad=aad).split(":")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[-1] ^= 1
    forged = kid + ":" + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(DecryptionError):
        ring.decrypt(forged, aad=aad)


def test_ciphertext_moved_to_another_row_or_column_is_rejected() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    token = ring.encrypt("secret", aad=aad_for("source_record", "phone", 42))
    with pytest.raises(DecryptionError, match="another row/column"):
        ring.decrypt(token, aad=aad_for("source_record", "phone", 43))
    with pytest.raises(DecryptionError):
        ring.decrypt(token, aad=aad_for("source_record", "email", 42))


def test_unknown_encryption_key_id_is_a_clear_error() -> None:
    ring = _ring({"h1": b"a" * 32}, "h1")
    with pytest.raises(UnknownKeyError, match="k7"):
        ring.decrypt("k7:AAAA", aad=b"x")


def test_keyring_validates_its_material() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        KeyRing({"h1": b"short"}, "h1", {"k1": b"k" * 32}, "k1")
    with pytest.raises(ConfigError, match="not among the keys"):
        KeyRing({"h1": b"a" * 32}, "h2", {"k1": b"k" * 32}, "k1")
    with pytest.raises(ConfigError, match="malformed"):
        KeyRing.from_mapping({"hash_keys": {}})


def test_dev_keyring_is_created_once_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys.json"
    first = load_or_create_keyring(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    second = load_or_create_keyring(path)
    assert first.hash("phone", "x") == second.hash("phone", "x")


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+8613812345678", "138****5678"),
        ("13812345678", "138****5678"),
        ("+442071234567", "442*****4567"),
        ("12345", "12*45"),
    ],
)
def test_mask_phone(value: str, masked: str) -> None:
    assert mask_phone(value) == masked


def test_mask_id_name_email_address() -> None:
    assert mask_id_number("ID_CARD:11010519491231002X") == "1101**********002X"
    assert mask_name("张三丰") == "张**"
    assert mask_name("Jia Ceshi") == "J** C****"
    assert mask_email("ceshi.jia@example.com") == "c***@example.com"
    assert mask_address("浙江省", "杭州市", "西湖区文三路 1 号") == "浙江省 杭州市 ******"


def test_mask_text_hides_phones_ids_and_emails_in_free_text() -> None:
    text = "bad row: 测试,13812345678,11010519491231002X,ceshi@example.com"
    masked = mask_text(text)
    assert "13812345678" not in masked
    assert "11010519491231002X" not in masked
    assert "ceshi@example.com" not in masked
    assert "138****5678" in masked


def test_mask_raw_hides_names_in_any_script_but_keeps_the_shape() -> None:
    from hub.core.pii import mask_raw

    raw = "88000099002,13899990007,测试金丝雀,not-a-date,FEMALE,CESHI JINSIQUE,a.b@example.com"
    masked = mask_raw(raw)
    for secret in ("13899990007", "测试金丝雀", "CESHI", "JINSIQUE", "a.b@example.com"):
        assert secret not in masked
    assert masked.count(",") == raw.count(",")
