"""Deleted chat in the stores: marked, idempotent, hidden from every read, and
roles kept by the user store."""

from __future__ import annotations

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from persistence.chat import ChatStore
from persistence.chat_pages import ChatPages
from persistence.streams import new_stream_id
from persistence.users import UserStore
from tests.persistence.test_stores import msg


async def test_deleted_messages_are_marked_once_and_hidden(db: AsyncDatabase) -> None:
    chat, pages, sid = ChatStore(db), ChatPages(db), new_stream_id()
    await chat.insert(sid, "e1", [msg(s) for s in range(1, 6)])
    assert await chat.mark_deleted(sid, "e1", [2, 4], "2026-11-25T12:00:00.000Z") == 2
    assert await chat.mark_deleted(sid, "e1", [2, 4, 99], "2026-11-25T12:00:01.000Z") == 0  # idempotent
    await chat.insert(sid, "e1", [msg(2)])  # a replayed insert does not bring it back
    assert [d["seq"] for d in await chat.recent(sid, 10)] == [1, 3, 5]
    assert [d["seq"] for d in await chat.page(sid)] == [5, 3, 1]
    assert await chat.count(sid) == 3
    assert [d["seq"] for d in await pages.page(sid, skip=0, limit=10)] == [5, 3, 1]
    assert await pages.count(sid) == 3
    everything = await chat.all_in_order(sid, include_deleted=True)
    deleted = [(d["seq"], d.get("deleted", False)) for d in everything]
    assert deleted == [(1, False), (2, True), (3, False), (4, True), (5, False)]
    assert everything[1]["deletedAt"] == "2026-11-25T12:00:00.000Z"


async def test_roles(db: AsyncDatabase) -> None:
    users = UserStore(db)
    user = await users.create("mod@example.com", "h", "Mod")
    changed = await users.set_role(user.id, "moderator")
    assert changed is not None and changed.role == "moderator"
    assert await users.set_role("0" * 24, "moderator") is None
    with pytest.raises(ValueError):
        await users.set_role(user.id, "root")
