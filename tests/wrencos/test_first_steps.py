"""`wrencos admin create` on its own (no `wrencos run`): a real `python -m wrencos` process
that starts the embedded database in the data directory, writes the account as the
gateway does, and stops it. Checked by reading the real database afterwards."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from gateway.security.credentials import verify_password
from persistence.database import DatabaseConfig, connect
from persistence.embedded import EmbeddedMongo
from persistence.users import UserStore
from tests.support.processes import base_env

PASSWORD = "first-admin-pass"


def admin_create(data_dir: Path, email: str, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wrencos", "admin", "create", "--email", email, *extra],
        env=base_env(WRENCOS_DATA_DIR=str(data_dir)),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def users_in(data_dir: Path) -> list[dict[str, Any]]:
    async def read(uri: str) -> list[dict[str, Any]]:
        db = connect(DatabaseConfig(uri=uri))
        try:
            return await db.users.find({}).to_list()
        finally:
            await db.client.close()

    with EmbeddedMongo(data_dir) as server:
        return asyncio.run(read(server.uri))


def make_customer(data_dir: Path, email: str) -> None:
    async def write(uri: str) -> None:
        db = connect(DatabaseConfig(uri=uri))
        try:
            await UserStore(db).create(email, "not-a-real-hash", "Cus Tomer", role="customer")
        finally:
            await db.client.close()

    with EmbeddedMongo(data_dir) as server:
        asyncio.run(write(server.uri))


def test_admin_create_writes_an_admin_then_is_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = admin_create(data, "Boss@Example.com", PASSWORD + "\n", "--password-stdin")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "admin boss@example.com created: log in with this email and password"
    [user] = users_in(data)
    assert (user["email"], user["role"], user["name"]) == ("boss@example.com", "admin", "Admin")
    assert PASSWORD not in str(user) and verify_password(PASSWORD, user["passwordHash"])

    again = admin_create(data, "boss@example.com", "another-password\n")  # not a terminal: stdin, no prompt
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "boss@example.com is already an admin: nothing changed"
    [same] = users_in(data)
    assert same == user  # the password was not changed


def test_admin_create_promotes_an_existing_customer_keeping_its_password(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_customer(data, "cus@example.com")
    result = admin_create(data, "cus@example.com", "")  # no password needed: the account exists
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "cus@example.com was a customer, now an admin (password unchanged; log in again for an admin token)"
    )
    [user] = users_in(data)
    assert (user["role"], user["passwordHash"], user["name"]) == ("admin", "not-a-real-hash", "Cus Tomer")


def test_a_short_password_or_a_bad_email_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    short = admin_create(data, "boss@example.com", "abc\n")
    assert short.returncode == 2
    assert short.stderr.strip() == ("error: an admin's password is 8 to 128 characters long (as a customer's), got 3")
    bad = admin_create(data, "not-an-email", PASSWORD + "\n")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("error: --email 'not-an-email': not an email address")
    assert "Traceback" not in short.stderr + bad.stderr
    assert users_in(data) == []
