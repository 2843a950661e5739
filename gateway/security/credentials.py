"""Passwords and tokens.

Passwords are hashed with Argon2id (pwdlib); a login for an unknown account
is verified against a dummy hash of the same parameters, so it costs the same.
These calls take tens of milliseconds of CPU: the gateway runs them in its
`PasswordPool` (`password_pool.py`), never on the event loop. Tokens are HS256 JWTs with the
algorithm pinned, an issuer, an audience and an expiry; a token is only
trusted after all of those check out. Refused, always: `alg: none` and any
other algorithm (RS256/HS512 swaps included), a missing or past `exp`, a wrong
`iss` or `aud`, a `crit` header (no extension is understood here), a role
that is not one of `ROLES`, and any token signed with another secret.

Rotation: tokens are signed with the current secret only; `previous_secrets`
(`JWT_PREVIOUS_SECRETS`) are accepted for verification, so a new secret can be
rolled out gateway by gateway while tokens signed with the old one stay valid
until the old secret is removed (at the latest `JWT_TTL_SECONDS` later).
"""

from __future__ import annotations

import functools
import secrets
import time
from dataclasses import dataclass

import jwt
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError

ALGORITHM = "HS256"
ISSUER = "wrencos-live"
AUDIENCE = "wrencos-apps"
ROLES = ("admin", "moderator", "customer")

_hasher = PasswordHash.recommended()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except UnknownHashError:  # not a hash of ours (the hasher itself answers False for a malformed one of ours)
        return False


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password nobody knows, made once with the same
    hasher (so the same Argon2 parameters) as every account's."""
    return _hasher.hash(secrets.token_urlsafe(24))


def verify_login(password: str, password_hash: str | None) -> bool:
    """Whether `password` opens the account whose hash is `password_hash`.
    With no account (`None`), the password is verified against `dummy_hash()`
    and the answer is False: a login costs the same whether or not the account
    exists, so its time does not tell who has one."""
    if password_hash is None:
        verify_password(password, dummy_hash())
        return False
    return verify_password(password, password_hash)


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why (safe to show), and
    `code` says it for programs: `token_expired` past its `exp`, else `invalid_token`."""

    def __init__(self, message: str, code: str = "invalid_token") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    role: str
    email: str
    name: str
    expires_at: int | None = None  # the token's `exp` (seconds since the epoch); None for claims made in code

    def expired(self, now: float | None = None) -> bool:
        """Whether the token these claims came from has expired. A WebSocket connection
        outlives the token it registered with: what the token allowed ends with it."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at  # as PyJWT: expired at `exp`

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_moderate(self) -> bool:
        """Admins and moderators may moderate chat (delete, mute, blocked words, slow mode)."""
        return self.role in ("admin", "moderator")


class TokenService:
    """Issues tokens with `secret`; verifies with it or any of `previous_secrets`.
    Every token it issues carries `exp` = now + `ttl_seconds` (settings refuse a
    TTL that is not positive), and a token without `exp` is never accepted."""

    def __init__(self, secret: str, ttl_seconds: int, previous_secrets: tuple[str, ...] = ()) -> None:
        self._secret = secret
        self._verify_with = (secret, *previous_secrets)
        self._ttl = ttl_seconds

    def issue(self, user_id: str, role: str, email: str, name: str) -> str:
        now = int(time.time())
        payload = {
            "sub": user_id,
            "role": role,
            "email": email,
            "name": name,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + self._ttl,
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify(self, token: object) -> Claims:
        if not isinstance(token, str) or not token:
            raise InvalidToken("Token required")
        if len(token) > 8192:
            raise InvalidToken("Invalid token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as e:
            raise InvalidToken("Invalid token") from e
        if header.get("alg") != ALGORITHM or "crit" in header:
            raise InvalidToken("Invalid token")
        payload: dict[str, object] | None = None
        for secret in self._verify_with:
            try:
                payload = jwt.decode(
                    token,
                    secret,
                    algorithms=[ALGORITHM],
                    audience=AUDIENCE,
                    issuer=ISSUER,
                    options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                )
                break
            except jwt.ExpiredSignatureError as e:
                raise InvalidToken("Token expired", "token_expired") from e
            except jwt.InvalidSignatureError:
                continue  # perhaps signed with a previous secret
            except jwt.InvalidTokenError as e:
                raise InvalidToken("Invalid token") from e
        if payload is None:
            raise InvalidToken("Invalid token")
        role = payload.get("role")
        if role not in ROLES or not isinstance(payload.get("sub"), str):
            raise InvalidToken("Invalid token")
        return Claims(
            user_id=str(payload["sub"]),
            role=str(role),
            email=str(payload.get("email", "")),
            name=str(payload.get("name", "")),
            expires_at=int(str(payload["exp"])),
        )
