"""FastAPI dependencies: the gateway context and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.auth import Claims, InvalidToken
from gateway.context import GatewayContext
from gateway.errors import ApiError

_bearer = HTTPBearer(auto_error=False)


def context(request: Request) -> GatewayContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[GatewayContext, Depends(context)]


def optional_claims(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Claims | None:
    if credentials is None:
        return None
    try:
        return ctx.tokens.verify(credentials.credentials)
    except InvalidToken as e:
        raise ApiError(401, f"{e}: log in again") from e


def require_user(claims: Annotated[Claims | None, Depends(optional_claims)]) -> Claims:
    if claims is None:
        raise ApiError(401, "Authentication required: send 'Authorization: Bearer <token>' from /auth/login")
    return claims


def require_admin(claims: Annotated[Claims, Depends(require_user)]) -> Claims:
    if not claims.is_admin:
        raise ApiError(403, "Admins only")
    return claims


OptionalUser = Annotated[Claims | None, Depends(optional_claims)]
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
