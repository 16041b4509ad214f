"""Bearer tokens: who is calling, in which role, for which member or business line.

Tokens are JWTs. Dev/test/demo sign and verify with HS256 and a configured (or generated)
secret; production verifies RS256 with a public key and issues nothing itself. Claims:

- ``sub``   principal id (agent id, partner client id, member id)
- ``role``  ``member`` | ``partner`` | ``agent`` | ``admin``
- ``mid``   member id (member tokens: the member acts only on itself)
- ``line``  business line (partner and agent tokens)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

import jwt

from hub.core.clock import utcnow
from hub.core.errors import NotAuthenticated

MAX_TOKEN_BYTES = 4096
MAX_TOKEN_TTL = timedelta(days=30)
VERIFIED_CACHE_SIZE = 10_000  # tokens whose signature and claims were checked, per verifier


class Role(StrEnum):
    MEMBER = "member"
    PARTNER = "partner"
    AGENT = "agent"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    role: Role | None  # None: anonymous
    member_id: int | None = None
    business_line: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.role is not None


ANONYMOUS = Principal(subject="anonymous", role=None)


@dataclass(frozen=True)
class TokenVerifier:
    issuer: str
    audience: str
    hs256_secret: str | None = None
    rs256_public_key: str | None = None
    # token -> (principal, exp): a client sends the same token on every request, and checking
    # its signature (HMAC key preparation, base64, JSON) cost 7 % of a profile view's CPU. The
    # key is the whole token, signature included, so only a token verified before can hit;
    # expiry is checked again on every hit.
    _verified: dict[str, tuple[Principal, float]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_BYTES:
            raise NotAuthenticated("token is too long")
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[1]:
                return hit[0]
            del self._verified[token]
        principal, expires = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        if self.rs256_public_key:
            key, algorithms = self.rs256_public_key, ["RS256"]
        elif self.hs256_secret:
            key, algorithms = self.hs256_secret, ["HS256"]
        else:
            raise NotAuthenticated("this hub has no token verification key configured")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("token has expired") from None
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"token is not valid ({exc.__class__.__name__})") from None
        # PyJWT checked that exp is a number in the future.
        return principal_from_claims(claims), float(claims["exp"])


def principal_from_claims(claims: dict[str, object]) -> Principal:
    try:
        role = Role(str(claims["role"]))
    except ValueError:
        raise NotAuthenticated("token has an unknown role") from None
    member_id = claims.get("mid")
    line = claims.get("line")
    if role is Role.MEMBER and not isinstance(member_id, int):
        raise NotAuthenticated("member token lacks its member id")
    if role is Role.PARTNER and not isinstance(line, str):
        raise NotAuthenticated("partner token lacks its business line")
    return Principal(
        subject=str(claims["sub"]),
        role=role,
        member_id=member_id if role is Role.MEMBER and isinstance(member_id, int) else None,
        business_line=line if isinstance(line, str) else None,
    )


def issue_token(
    *,
    secret: str,
    role: Role,
    subject: str,
    member_id: int | None = None,
    business_line: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    issuer: str = "member-hub",
    audience: str = "member-hub",
) -> str:
    """HS256 token for dev, demo and tests (production tokens come from the identity provider)."""
    if ttl > MAX_TOKEN_TTL:
        raise ValueError("token lifetime is capped at 30 days")
    if role is Role.MEMBER and member_id is None:
        raise ValueError("a member token needs --member-id")
    if role is Role.PARTNER and not business_line:
        raise ValueError("a partner token needs --business-line")
    now = utcnow()
    claims: dict[str, object] = {
        "sub": subject,
        "role": role.value,
        "iat": now,
        "exp": now + ttl,
        "iss": issuer,
        "aud": audience,
    }
    if member_id is not None:
        claims["mid"] = member_id
    if business_line:
        claims["line"] = business_line
    return jwt.encode(claims, secret, algorithm="HS256")
