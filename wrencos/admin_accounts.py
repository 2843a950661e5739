"""`wrencos admin create`: an admin account, written straight to the database.

The first step on a fresh install: nothing over HTTP can make the first admin (a sign-up
makes a customer). The account is written as the gateway writes accounts
(`persistence.users.UserStore`, the email's unique index made first, the password hashed
by the gateway's hasher, Argon2id). Idempotent: an account that exists is promoted to
admin (its password unchanged), an admin is told so and left alone.

`missing_admin_hint` is what `wrencos run` prints when the database has no admin yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.rest.types import parse_email
from gateway.security.credentials import hash_password
from persistence.database import connect, ensure_indexes, ping
from persistence.users import EmailTaken, UserStore
from runtime.settings import Settings
from wrencos.command_errors import CANNOT_RUN, CommandError
from wrencos.local_database import config_for, database_uri
from wrencos.passwords import check_admin_password
from wrencos.preflight import mongodb_host

DATABASE_WAIT_S = 10.0


def create_admin(settings: Settings, email: str, name: str, password: Callable[[], str]) -> str:
    """Make `email` an admin (see the module's docstring); what was done, in one line.
    `password` is asked only when a new account is made."""
    try:
        email = parse_email(email.strip())
    except ValueError as e:
        raise CommandError(f"--email {email!r}: {e}", CANNOT_RUN) from None
    with database_uri(settings) as uri:
        return asyncio.run(_create_admin(settings, uri, email, name, password))


async def _create_admin(settings: Settings, uri: str, email: str, name: str, password: Callable[[], str]) -> str:
    db = connect(config_for(settings, uri))
    try:
        if not await ping(db, DATABASE_WAIT_S):
            raise CommandError(f"no database answers at {mongodb_host(uri)} within {DATABASE_WAIT_S:g} s", CANNOT_RUN)
        await ensure_indexes(db)
        users = UserStore(db)
        existing = await users.by_email(email)
        if existing is None:
            secret = check_admin_password(password())
            try:
                await users.create(email, hash_password(secret), name, role="admin")
                return f"admin {email} created: log in with this email and password"
            except EmailTaken:  # made meanwhile (a sign-up): promote it as below
                existing = await users.by_email(email)
                assert existing is not None
        if existing.role == "admin":
            return f"{email} is already an admin: nothing changed"
        await users.set_role(existing.id, "admin")
        return f"{email} was a {existing.role}, now an admin (password unchanged; log in again for an admin token)"
    finally:
        await db.client.close()


def missing_admin_hint(settings: Settings, uri: str) -> str | None:
    """What to do when the database has no admin yet (and ADMIN_EMAIL/ADMIN_PASSWORD will not
    make one); None when there is one, or when the database cannot say right now."""
    if settings.admin_email and settings.admin_password:
        return None

    async def has_admin() -> bool | None:
        db = connect(config_for(settings, uri))
        try:
            if not await ping(db, DATABASE_WAIT_S):
                return None
            return await UserStore(db).has_admin()
        finally:
            await db.client.close()

    if asyncio.run(has_admin()) is not False:
        return None
    return (
        "No admin account yet: nobody can start a stream. Create one, in another terminal while this runs:\n"
        "    .venv/bin/wrencos admin create --email you@example.com\n"
        "or set ADMIN_EMAIL and ADMIN_PASSWORD (8 to 128 characters) in .env or the environment and restart."
    )
