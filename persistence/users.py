"""Accounts: email, password hash, name, role."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.clock import now_iso

ROLES = ("admin", "moderator", "customer")


class EmailTaken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    name: str
    role: str
    password_hash: str
    created_at: str

    def public(self) -> dict[str, Any]:
        """What an API answer may show: never the hash."""
        return {
            "id": self.id,
            "_id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "createdAt": self.created_at,
        }

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> User:
        return User(
            id=str(doc["_id"]),
            email=str(doc["email"]),
            name=str(doc.get("name", "")),
            role=str(doc["role"]),
            password_hash=str(doc["passwordHash"]),
            created_at=str(doc["createdAt"]),
        )


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserStore:
    """Users by id and by email. Emails are unique (case-insensitive), enforced
    by a unique index, so two concurrent registrations cannot both succeed."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._users = db.users

    async def create(self, email: str, password_hash: str, name: str, role: str = "customer") -> User:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        doc = {
            "_id": str(ObjectId()),
            "email": normalise_email(email),
            "name": name,
            "role": role,
            "passwordHash": password_hash,
            "createdAt": now_iso(),
        }
        try:
            await self._users.insert_one(doc)
        except DuplicateKeyError as e:
            raise EmailTaken(email) from e
        return User.from_doc(doc)

    async def by_email(self, email: str) -> User | None:
        doc = await self._users.find_one({"email": normalise_email(email)})
        return User.from_doc(doc) if doc else None

    async def by_id(self, user_id: str) -> User | None:
        doc = await self._users.find_one({"_id": str(user_id)})
        return User.from_doc(doc) if doc else None

    async def list(self, *, skip: int, limit: int, email: str | None = None) -> list[User]:
        """Accounts, newest first; with `email`, only those whose email contains it
        (case-insensitive: emails are stored in lower case). The text is matched
        literally: regex metacharacters in it are escaped, never interpreted."""
        docs = (
            await self._users.find(_email_query(email))
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )
        return [User.from_doc(d) for d in docs]

    async def has_admin(self) -> bool:
        return await self._users.find_one({"role": "admin"}, projection={"_id": 1}) is not None

    async def count(self, email: str | None = None) -> int:
        return await self._users.count_documents(_email_query(email))

    async def set_role(self, user_id: str, role: str) -> User | None:
        """Give the account `role` (one of `ROLES`); None if it does not exist.
        The query is built from a plain string id, never from client data."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        await self._users.update_one({"_id": str(user_id)}, {"$set": {"role": role}})
        return await self.by_id(str(user_id))

    async def ensure_admin(self, email: str, password_hash: str, name: str = "Admin") -> User:
        """Make sure an admin with this email exists and has this password. Idempotent."""
        existing = await self.by_email(email)
        if existing is None:
            try:
                return await self.create(email, password_hash, name, role="admin")
            except EmailTaken:
                existing = await self.by_email(email)
                assert existing is not None
        await self._users.update_one({"_id": existing.id}, {"$set": {"role": "admin", "passwordHash": password_hash}})
        return User.from_doc({**_to_doc(existing), "role": "admin", "passwordHash": password_hash})


def _email_query(email: str | None) -> dict[str, Any]:
    if not email:
        return {}
    return {"email": {"$regex": re.escape(normalise_email(email))}}


def _to_doc(u: User) -> dict[str, Any]:
    return {
        "_id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "passwordHash": u.password_hash,
        "createdAt": u.created_at,
    }
