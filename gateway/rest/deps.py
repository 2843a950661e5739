"""FastAPI dependencies: the gateway context and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.context import GatewayContext
from gateway.errors import ApiError
from gateway.security.credentials import Claims, InvalidToken
from gateway.services.moderation import may_moderate

_bearer = HTTPBearer(auto_error=False)


def context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.ctx  # set by the app's lifespan
    return ctx


Ctx = Annotated[GatewayContext, Depends(context)]


AuthorizationHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]


def optional_claims(ctx: Ctx, authorization: AuthorizationHeader = None) -> Claims | None:
    """Who calls, for endpoints open to anyone: nobody without an
    `Authorization` header; a 401 for one that is not a valid bearer token
    (never silently anonymous). Not declared as a security requirement in the
    OpenAPI document, since the endpoint works without it."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Send 'Authorization: Bearer <token>' from /auth/login")
    try:
        return ctx.tokens.verify(token.strip())
    except InvalidToken as e:
        raise ApiError(401, f"{e}: log in again") from e


def require_user(
    claims: Annotated[Claims | None, Depends(optional_claims)],
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],  # documents the bearer scheme
) -> Claims:
    if claims is None:
        raise ApiError(401, "Authentication required: send 'Authorization: Bearer <token>' from /auth/login")
    return claims


def require_admin(claims: Annotated[Claims, Depends(require_user)]) -> Claims:
    if not claims.is_admin:
        raise ApiError(403, "Admins only")
    return claims


def require_moderator(claims: Annotated[Claims, Depends(require_user)]) -> Claims:
    if not may_moderate(claims):
        raise ApiError(403, "Moderators and admins only")
    return claims


OptionalUser = Annotated[Claims | None, Depends(optional_claims)]
Moderator = Annotated[Claims, Depends(require_moderator)]
User = Annotated[Claims, Depends(require_user)]
Admin = Annotated[Claims, Depends(require_admin)]


class Paging:
    """`?page=1&limit=20`: every list is paged; the total is in `X-Total-Count`."""

    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> None:
        self.page = page
        self.limit = limit

    @property
    def skip(self) -> int:
        return (self.page - 1) * self.limit


Page = Annotated[Paging, Depends()]
