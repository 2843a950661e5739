"""`/users`: account administration (admins only): who is who, who is a moderator.

A role change takes effect with the account's next token (`/auth/login`):
tokens carry the role they were issued with and expire (`JWT_TTL_SECONDS`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict

from gateway.errors import ApiError
from gateway.rest.auth import UserOut, _user_out
from gateway.rest.deps import Admin, Ctx, Page
from gateway.rest.exact_json import ExactJsonRoute

router = APIRouter(prefix="/users", tags=["users"], route_class=ExactJsonRoute)

UserIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="24 hex characters")]


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["customer", "moderator", "admin"]


@router.get("", response_model=list[UserOut])
async def list_users(
    admin: Admin,
    ctx: Ctx,
    page: Page,
    response: Response,
    email: Annotated[
        str | None,
        Query(min_length=1, max_length=254, description="only accounts whose email contains this (any case)"),
    ] = None,
) -> list[UserOut]:
    """Accounts, newest first: to find the id a role change needs. Admins only.
    Paged: `?page=&limit=` (limit at most 100); total in `X-Total-Count`. `email`
    is matched as plain text, case-insensitively. Never a password hash."""
    users = await ctx.users.list(skip=page.skip, limit=page.limit, email=email)
    response.headers["X-Total-Count"] = str(await ctx.users.count(email))
    return [_user_out(u.public()) for u in users]


@router.patch("/{user_id}/role", response_model=UserOut)
async def set_role(user_id: UserIdPath, body: RoleBody, admin: Admin, ctx: Ctx) -> UserOut:
    """Make an account a moderator (or a customer, or an admin). Admins only.
    An admin cannot change their own role (so there is always one left who can)."""
    if user_id == admin.user_id:
        raise ApiError(409, "You cannot change your own role: ask another admin")
    user = await ctx.users.set_role(user_id, body.role)
    if user is None:
        raise ApiError(404, f"User {user_id} does not exist")
    return _user_out(user.public())
