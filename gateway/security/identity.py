"""Who a request comes from, beyond the JWT: anonymous customers and limits.

Anonymous customers are identified by the `X-Session-Id` header (the app's
`sessionId`, the same one it registers with on the WebSocket). It is a
self-chosen name, not a secret: it may read, record views, like and get
audience video tokens, never order or pay (those need an account).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request

from gateway.errors import ApiError
from gateway.security.credentials import Claims
from gateway.security.ratelimit import TokenBucket

SESSION_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"

SessionHeader = Annotated[
    str | None,
    Header(
        alias="X-Session-Id",
        pattern=SESSION_PATTERN,
        description="The app's session id: identifies an anonymous customer",
    ),
]


def viewer_key(claims: Claims | None, session_id: str | None) -> str | None:
    """The key a like is counted under: the user id when logged in (as on the
    WebSocket), else the session id; None when neither is known."""
    if claims is not None:
        return claims.user_id
    return session_id


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def enforce(bucket: TokenBucket, key: str, what: str) -> None:
    """Take a token or answer 429 with `Retry-After`."""
    wait = bucket.take(key)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        raise ApiError(429, f"Too many {what}: try again in {seconds} s", headers={"Retry-After": str(seconds)})
