"""`/auth`: register, log in, who am I."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.chat_names import NameReserved, check_guest_name
from gateway.errors import ApiError
from gateway.rest.deps import Ctx, User
from gateway.rest.documents import DocumentOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.types import EmailIn
from gateway.security.identity import client_ip, enforce
from gateway.security.password_pool import PoolBusy
from gateway.services.inputs import NOT_BLANK_SCHEMA, NotBlank
from persistence.users import EmailTaken
from runtime.settings import PASSWORD_LENGTH

router = APIRouter(prefix="/auth", tags=["auth"], route_class=ExactJsonRoute)

# Every password's rule (an admin's too: ADMIN_PASSWORD, `wrencos admin create`).
Password = Annotated[str, StringConstraints(min_length=PASSWORD_LENGTH[0], max_length=PASSWORD_LENGTH[1])]
Name = Annotated[str, Field(min_length=1, max_length=80, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a `role` in the body is ignored: customers only
    email: EmailIn
    password: Password
    name: Name | None = None


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: Annotated[str, StringConstraints(min_length=3, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class UserOut(DocumentOut):
    email: str
    name: str
    role: str
    createdAt: str


class AuthOut(BaseModel):
    token: str
    user: UserOut


class MeOut(BaseModel):
    user: UserOut


def _busy(e: PoolBusy) -> ApiError:
    """The password pool is full: a flood of logins or sign-ups is answered at once, never queued without bound."""
    return ApiError(
        429,
        f"Too many logins and sign-ups at the moment: try again in {e.retry_after} s",
        headers={"Retry-After": str(e.retry_after)},
    )


def _user_out(public: dict[str, Any]) -> UserOut:
    return UserOut(**{k: public[k] for k in ("id", "email", "name", "role", "createdAt")})


@router.post("/register", status_code=201, response_model=AuthOut)
async def register(body: RegisterBody, ctx: Ctx, request: Request) -> AuthOut:
    """Create a customer account and log it in. At most `SIGNUP_RATE_PER_MINUTE`
    sign-ups a minute per client address (429 with `Retry-After` beyond). The name is
    what the account's chat carries, so it may not pass for staff: 409 `name_reserved`
    (taken, by the staff), by the rule a guest's chat name follows (`core/chat_names.py`)."""
    enforce(ctx.signup_limit, client_ip(request), "sign-ups")
    name = body.name or body.email.split("@", 1)[0]
    try:
        check_guest_name(name, ctx.settings.shop_name)
    except NameReserved as e:
        raise ApiError(409, str(e), e.code) from None
    try:
        password_hash = await ctx.passwords.hash(body.password)
    except PoolBusy as e:
        raise _busy(e) from e
    try:
        user = await ctx.users.create(body.email, password_hash, name, role="customer")
    except EmailTaken as e:
        raise ApiError(409, "An account with this email exists: log in instead") from e
    token = ctx.tokens.issue(user.id, user.role, user.email, user.name)
    return AuthOut(token=token, user=_user_out(user.public()))


@router.post("/login", response_model=AuthOut)
async def login(body: LoginBody, ctx: Ctx, request: Request) -> AuthOut:
    """Log in. At most `LOGIN_RATE_PER_MINUTE` attempts a minute per client
    address and email (429 with `Retry-After` beyond). An unknown email costs
    as much as a wrong password (both are verified), so the time tells nothing."""
    enforce(ctx.login_limit, f"{client_ip(request)}|{body.email.strip().lower()}", "login attempts")
    user = await ctx.users.by_email(body.email)
    try:
        ok = await ctx.passwords.verify(body.password, user.password_hash if user is not None else None)
    except PoolBusy as e:
        raise _busy(e) from e
    if user is None or not ok:
        raise ApiError(401, "Wrong email or password")
    token = ctx.tokens.issue(user.id, user.role, user.email, user.name)
    return AuthOut(token=token, user=_user_out(user.public()))


@router.get("/me", response_model=MeOut)
async def me(claims: User, ctx: Ctx) -> MeOut:
    user = await ctx.users.by_id(claims.user_id)
    if user is None:
        raise ApiError(401, "This account no longer exists: log in again")
    return MeOut(user=_user_out(user.public()))
