"""Passwords and tokens.

Passwords are hashed with Argon2id (pwdlib). Tokens are HS256 JWTs with the
algorithm pinned, an issuer, an audience and an expiry; a token is only
trusted after all of those check out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt
from pwdlib import PasswordHash

ALGORITHM = "HS256"
ISSUER = "wrencos-live"
AUDIENCE = "wrencos-apps"

_hasher = PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except Exception:
        return False


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (safe to show)."""


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    role: str
    email: str
    name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class TokenService:
    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def issue(self, user_id: str, role: str, email: str, name: str) -> str:
        now = int(time.time())
        payload = {
            "sub": user_id, "role": role, "email": email, "name": name,
            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + self._ttl,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify(self, token: object) -> Claims:
        if not isinstance(token, str) or not token:
            raise InvalidToken("Token required")
        try:
            payload = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise InvalidToken("Token expired") from e
        except jwt.InvalidTokenError as e:
            raise InvalidToken("Invalid token") from e
        role = payload.get("role")
        if role not in ("admin", "customer") or not isinstance(payload.get("sub"), str):
            raise InvalidToken("Invalid token")
        return Claims(
            user_id=payload["sub"], role=role,
            email=str(payload.get("email", "")), name=str(payload.get("name", "")),
        )
