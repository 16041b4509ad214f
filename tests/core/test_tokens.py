from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.core.errors import NotAuthenticated
from hub.core.tokens import Role, TokenVerifier, issue_token


def _rsa_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _claims(**extra: object) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "sub": "agent-7",
        "role": "agent",
        "line": "hotel",
        "iss": "member-hub",
        "aud": "member-hub",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **extra,
    }


def test_production_verifies_rs256_tokens_from_the_identity_provider() -> None:
    private, public = _rsa_pair()
    verifier = TokenVerifier(issuer="member-hub", audience="member-hub", rs256_public_key=public)
    principal = verifier.verify(jwt.encode(_claims(), private, algorithm="RS256"))
    assert (principal.subject, principal.role, principal.business_line) == (
        "agent-7",
        Role.AGENT,
        "hotel",
    )


def test_production_refuses_hs256_tokens_even_with_a_known_secret() -> None:
    _, public = _rsa_pair()
    verifier = TokenVerifier(issuer="member-hub", audience="member-hub", rs256_public_key=public)
    forged = issue_token(secret="x" * 40, role=Role.ADMIN, subject="x")
    with pytest.raises(NotAuthenticated):
        verifier.verify(forged)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"role": "superuser"}, "unknown role"),
        ({"role": "member"}, "member id"),
        ({"role": "partner", "line": None}, "business line"),
        ({"aud": "someone-else"}, "not valid"),
    ],
)
def test_bad_claims_are_refused(claims: dict[str, object], reason: str) -> None:
    secret = "s" * 40
    verifier = TokenVerifier(issuer="member-hub", audience="member-hub", hs256_secret=secret)
    body = {k: v for k, v in _claims(**claims).items() if v is not None}
    with pytest.raises(NotAuthenticated, match=reason):
        verifier.verify(jwt.encode(body, secret, algorithm="HS256"))


def test_member_tokens_carry_the_member_id() -> None:
    secret = "s" * 40
    token = issue_token(secret=secret, role=Role.MEMBER, subject="m", member_id=42)
    principal = TokenVerifier(
        issuer="member-hub", audience="member-hub", hs256_secret=secret
    ).verify(token)
    assert principal.member_id == 42
    with pytest.raises(ValueError, match="member-id"):
        issue_token(secret=secret, role=Role.MEMBER, subject="m")


def test_a_verified_token_is_remembered_only_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s" * 40
    verifier = TokenVerifier(issuer="member-hub", audience="member-hub", hs256_secret=secret)
    token = jwt.encode(_claims(), secret, algorithm="HS256")
    assert verifier.verify(token).subject == "agent-7"
    assert verifier.verify(token).subject == "agent-7"  # from the cache
    # A token differing in one signature character is checked, not served from the cache.
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(NotAuthenticated):
        verifier.verify(tampered)
    later = datetime.now(UTC) + timedelta(minutes=6)  # past the token's 5 minutes
    monkeypatch.setattr("hub.core.tokens.time.time", later.timestamp)
    monkeypatch.setattr("jwt.api_jwt.datetime", _FrozenDatetime(later))
    with pytest.raises(NotAuthenticated, match="expired"):
        verifier.verify(token)


class _FrozenDatetime:
    """``datetime`` for PyJWT's clock, frozen at one instant."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self, tz: object = None) -> datetime:
        return self.at

    def __getattr__(self, name: str) -> object:
        return getattr(datetime, name)
