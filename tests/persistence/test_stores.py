"""The stores (users, streams, checkpoints, chat) against the real embedded database."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from core.live_set import stream_meta
from persistence.chat import ChatStore
from persistence.checkpoints import CheckpointStore
from persistence.slots import SlotStore
from persistence.streams import ENDED, LIVE, SCHEDULED, StreamStore, is_stream_id, new_stream_id
from persistence.users import EmailTaken, UserStore
from tests.support.databases import found

T0 = "2026-11-25T12:00:00.000Z"
T1 = "2026-11-25T13:00:00.000Z"


def msg(seq: int, text: str | None = None) -> dict[str, Any]:
    return {"seq": seq, "username": "ann", "message": text or f"m{seq}", "isAdmin": False, "timestamp": T0}


class TestUsers:
    async def test_create_and_find(self, db: AsyncDatabase) -> None:
        users = UserStore(db)
        user = await users.create("  Ann@Example.COM ", "hash1", "Ann")
        assert user.email == "ann@example.com"
        assert user.role == "customer"
        assert await users.by_email("ANN@example.com") == user
        assert await users.by_id(user.id) == user
        assert await users.by_email("bob@example.com") is None
        assert await users.by_id("000000000000000000000000") is None
        assert "passwordHash" not in user.public() and user.public()["id"] == user.id

    async def test_email_is_unique_case_insensitively(self, db: AsyncDatabase) -> None:
        users = UserStore(db)
        await users.create("ann@example.com", "h", "Ann")
        with pytest.raises(EmailTaken):
            await users.create("ann@example.com", "h2", "Ann 2")
        with pytest.raises(EmailTaken):
            await users.create("ANN@Example.com ", "h3", "Ann 3")
        assert await db.users.count_documents({}) == 1
        assert found(await users.by_email("ann@example.com")).password_hash == "h"

    async def test_unknown_role_is_refused(self, db: AsyncDatabase) -> None:
        with pytest.raises(ValueError):
            await UserStore(db).create("x@example.com", "h", "X", role="root")
        assert await db.users.count_documents({}) == 0

    async def test_ensure_admin_is_idempotent(self, db: AsyncDatabase) -> None:
        users = UserStore(db)
        first = await users.ensure_admin("Admin@Example.com", "h1")
        second = await users.ensure_admin("admin@example.com", "h2")
        assert first.id == second.id
        assert second.role == "admin" and second.password_hash == "h2"
        docs = await db.users.find({}).to_list()
        assert len(docs) == 1
        assert docs[0]["role"] == "admin" and docs[0]["passwordHash"] == "h2"
        assert docs[0]["email"] == "admin@example.com"

    async def test_ensure_admin_promotes_an_existing_customer(self, db: AsyncDatabase) -> None:
        users = UserStore(db)
        customer = await users.create("boss@example.com", "old", "Boss")
        admin = await users.ensure_admin("boss@example.com", "new")
        assert admin.id == customer.id and admin.name == "Boss"
        stored = await users.by_id(customer.id)
        assert stored is not None and stored.role == "admin" and stored.password_hash == "new"
        assert await db.users.count_documents({}) == 1


class TestStreams:
    async def test_create_and_get(self, db: AsyncDatabase) -> None:
        streams = StreamStore(db)
        doc = await streams.create(title="Sale", description="d", quality="hd")
        assert is_stream_id(doc["_id"])
        assert doc["status"] == SCHEDULED
        stored = await streams.get(doc["_id"])
        assert stored is not None
        assert {k: stored[k] for k in ("title", "description", "quality", "status", "startTime")} == {
            "title": "Sale",
            "description": "d",
            "quality": "hd",
            "status": SCHEDULED,
            "startTime": None,
        }

    @pytest.mark.parametrize("bad", ["nope", "A" * 24, {"$ne": None}, None])
    async def test_get_refuses_non_ids(self, db: AsyncDatabase, bad: Any) -> None:
        streams = StreamStore(db)
        await streams.create(title="x")
        assert await streams.get(bad) is None

    async def test_get_unknown(self, db: AsyncDatabase) -> None:
        assert await StreamStore(db).get(new_stream_id()) is None

    async def test_lifecycle_with_conditional_steps(self, db: AsyncDatabase) -> None:
        streams = StreamStore(db)
        sid = (await streams.create(title="Sale"))["_id"]
        assert await streams.mark_ended(sid, T1, {}) is None  # not live yet
        assert found(await streams.get(sid))["status"] == SCHEDULED

        live = await streams.mark_live(sid, T0)
        assert live is not None and live["status"] == LIVE and live["startTime"] == T0
        assert await streams.mark_live(sid, T1) is None  # second caller loses
        assert found(await streams.get(sid))["startTime"] == T0

        final = {
            "viewerCount": 0,
            "peakViewers": 7,
            "totalJoins": 9,
            "likes": 3,
            "chatCount": 12,
            "pinnedProducts": [],
            "secret": "not copied",
        }
        ended = await streams.mark_ended(sid, T1, final)
        assert ended is not None and ended["status"] == ENDED and ended["endTime"] == T1
        assert ended["peakViewers"] == 7 and ended["chatCount"] == 12
        assert "secret" not in ended
        assert await streams.mark_ended(sid, T1, final) is None  # already ended
        assert await streams.mark_live(sid, T1) is None  # never live again
        assert found(await streams.get(sid))["status"] == ENDED

    async def test_mark_live_unknown_stream(self, db: AsyncDatabase) -> None:
        assert await StreamStore(db).mark_live(new_stream_id(), T0) is None
        assert await db.streams.count_documents({}) == 0

    async def test_mark_live_many_marks_the_scheduled_ones_in_one_write_and_reads_every_record(
        self, db: AsyncDatabase
    ) -> None:
        streams = StreamStore(db)
        scheduled = [(await streams.create(title=f"s{i}", scheduled_at=T1))["_id"] for i in range(30)]
        live = (await streams.create(title="live"))["_id"]
        await streams.mark_live(live, T0)
        ended = (await streams.create(title="ended"))["_id"]
        await streams.mark_live(ended, T0)
        await streams.mark_ended(ended, T1, {})
        unknown = new_stream_id()

        records = await streams.mark_live_many([*scheduled, live, ended, unknown], T1)
        assert set(records) == {*scheduled, live, ended}  # every existing one, marked or not
        for sid in scheduled:
            assert records[sid]["status"] == LIVE and records[sid]["startTime"] == T1
            assert found(await streams.get(sid))["startTime"] == T1  # stored, not only answered
        assert records[live]["startTime"] == T0, "live from before: not marked again"
        assert records[ended]["status"] == ENDED
        assert await db.streams.count_documents({"_id": unknown}) == 0
        again = await streams.mark_live_many(scheduled[:1], "2026-11-25T14:00:00.000Z")
        assert again[scheduled[0]]["startTime"] == T1, "a second go-live does not move its start time"

    async def test_a_go_live_that_could_not_finish_is_undone(self, db: AsyncDatabase) -> None:
        streams = StreamStore(db)
        sid = (await streams.create(title="Show", scheduled_at=T1))["_id"]
        await streams.mark_live(sid, T0)
        assert not await streams.unmark_live(sid, T1)  # another go-live's time: not this one's to undo
        assert await streams.unmark_live(sid, T0)
        record = found(await streams.get(sid))
        assert record["status"] == SCHEDULED and record["startTime"] is None and record["scheduledAt"] == T1
        assert not await streams.unmark_live(sid, T0)  # not live any more

    async def test_scheduled_times_lists_scheduled_streams_with_a_time(self, db: AsyncDatabase) -> None:
        streams = StreamStore(db)
        timed = (await streams.create(title="timed", scheduled_at=T1))["_id"]
        await streams.create(title="untimed")
        went_live = (await streams.create(title="went live", scheduled_at=T1))["_id"]
        await streams.mark_live(went_live, T0)
        long_ago = (await streams.create(title="never started", scheduled_at=T0))["_id"]
        assert T0 < T1
        assert await streams.scheduled_times(since=T1) == {timed: T1}
        assert await streams.scheduled_times(since=T0) == {timed: T1, long_ago: T0}

    async def test_list_count_and_live_ids_by_status(self, db: AsyncDatabase) -> None:
        streams = StreamStore(db)
        ids = [(await streams.create(title=f"s{i}"))["_id"] for i in range(5)]
        for sid in ids[:3]:
            await streams.mark_live(sid, T0)
        await streams.mark_ended(ids[0], "2026-11-25T14:00:00.000Z", {})
        await streams.mark_ended(ids[1], "2026-11-25T15:00:00.000Z", {})

        assert await streams.count() == 5
        assert await streams.count(SCHEDULED) == 2
        assert await streams.count(LIVE) == 1
        assert await streams.count(ENDED) == 2
        assert await streams.live_ids() == [ids[2]]
        assert {d["_id"] for d in await streams.list(SCHEDULED)} == set(ids[3:])
        assert [d["_id"] for d in await streams.list(ENDED)] == [ids[1], ids[0]]  # latest end first
        assert len(await streams.list()) == 5
        assert len(await streams.list(limit=2)) == 2
        assert [d["_id"] for d in await streams.list(ENDED, skip=1)] == [ids[0]]


class TestSlots:
    async def test_a_prepared_assignment_is_live_once_its_streams_record_is(self, db: AsyncDatabase) -> None:
        streams, slots = StreamStore(db), SlotStore(db)
        sid = (await streams.create(title="Show", scheduled_at=T1))["_id"]
        prepared_meta = stream_meta(found(await streams.get(sid)))
        await slots.assign("slot:a", sid, prepared_meta, live=False)
        assert await slots.assignment("slot:a") == (sid, prepared_meta, False)
        assert await slots.slot_of(sid) == "slot:a"

        await streams.update_unless_live(sid, {"title": "Show, edited"})
        await streams.mark_live_many([sid], T0)
        assignment = await slots.assignment("slot:a")
        assert assignment is not None and assignment.live
        assert assignment.meta == {**prepared_meta, "title": "Show, edited", "startTime": T0}, "the record's meta"

        await slots.release("slot:a")
        assert await slots.assignment("slot:a") is None and await slots.slot_of(sid) is None

    async def test_a_live_assignment_keeps_its_own_meta(self, db: AsyncDatabase) -> None:
        slots = SlotStore(db)
        meta = {"streamId": "s1", "title": "t", "startTime": T0}
        await slots.assign("slot:b", "s1", meta)
        await slots.assign("slot:b", "s1", meta)  # idempotent
        assert await slots.assignment("slot:b") == ("s1", meta, True)
        assert await db.stream_slots.count_documents({}) == 1


class TestCheckpoints:
    async def test_load_missing(self, db: AsyncDatabase) -> None:
        assert await CheckpointStore(db).load(new_stream_id()) is None

    async def test_save_and_load(self, db: AsyncDatabase) -> None:
        store, sid = CheckpointStore(db), new_stream_id()
        assert await store.save(sid, 3, {"seq": 3, "epoch": "e1", "viewers": {"a": ["gw1"]}}) is True
        assert await store.load(sid) == {"seq": 3, "epoch": "e1", "viewers": {"a": ["gw1"]}, "version": 3}

    async def test_newer_version_lands(self, db: AsyncDatabase) -> None:
        store, sid = CheckpointStore(db), new_stream_id()
        await store.save(sid, 3, {"seq": 3})
        assert await store.save(sid, 10, {"seq": 10}) is True
        assert await store.load(sid) == {"seq": 10, "version": 10}

    async def test_older_version_is_refused_and_changes_nothing(self, db: AsyncDatabase) -> None:
        store, sid = CheckpointStore(db), new_stream_id()
        await store.save(sid, 10, {"seq": 10, "epoch": "new"})
        assert await store.save(sid, 4, {"seq": 4, "epoch": "stale"}) is False
        assert await store.load(sid) == {"seq": 10, "epoch": "new", "version": 10}
        assert await db.stream_checkpoints.count_documents({}) == 1

    async def test_same_version_again_is_accepted(self, db: AsyncDatabase) -> None:
        store, sid = CheckpointStore(db), new_stream_id()
        await store.save(sid, 7, {"seq": 7})
        assert await store.save(sid, 7, {"seq": 7}) is True
        assert await store.load(sid) == {"seq": 7, "version": 7}
        assert await db.stream_checkpoints.count_documents({}) == 1

    async def test_streams_are_independent_and_delete(self, db: AsyncDatabase) -> None:
        store, a, b = CheckpointStore(db), new_stream_id(), new_stream_id()
        await store.save(a, 5, {"seq": 5})
        assert await store.save(b, 1, {"seq": 1}) is True  # a lower version, but another stream
        await store.delete(a)
        assert await store.load(a) is None
        assert await store.load(b) == {"seq": 1, "version": 1}
        assert await store.save(a, 2, {"seq": 2}) is True  # after delete, any version lands


class TestChat:
    async def test_insert_is_idempotent(self, db: AsyncDatabase) -> None:
        chat, sid = ChatStore(db), new_stream_id()
        batch = [msg(1), msg(2), msg(3)]
        await chat.insert(sid, "e1", batch)
        await chat.insert(sid, "e1", batch)  # a retried write
        await chat.insert(sid, "e1", [msg(3), msg(4)])  # partly new
        assert await chat.count(sid) == 4
        stored = await chat.all_in_order(sid)
        assert [d["seq"] for d in stored] == [1, 2, 3, 4]
        assert stored[0]["_id"] == f"{sid}:e1:1"
        assert stored[0]["streamId"] == sid and stored[0]["epoch"] == "e1"
        assert stored[0]["message"] == "m1" and stored[0]["username"] == "ann"

    async def test_insert_nothing(self, db: AsyncDatabase) -> None:
        chat, sid = ChatStore(db), new_stream_id()
        await chat.insert(sid, "e1", [])
        assert await chat.count(sid) == 0

    async def test_insert_does_not_change_the_callers_dicts(self, db: AsyncDatabase) -> None:
        m = msg(1)
        await ChatStore(db).insert(new_stream_id(), "e1", [m])
        assert m == msg(1)

    async def test_recent_is_the_last_n_oldest_first(self, db: AsyncDatabase) -> None:
        chat, sid = ChatStore(db), new_stream_id()
        await chat.insert(sid, "e1", [msg(s) for s in (5, 1, 4, 2, 3)])  # stored out of order
        assert [d["seq"] for d in await chat.recent(sid, 3)] == [3, 4, 5]
        assert [d["seq"] for d in await chat.recent(sid, 10)] == [1, 2, 3, 4, 5]
        assert await chat.recent(new_stream_id(), 3) == []

    async def test_page_is_newest_first_before_a_seq(self, db: AsyncDatabase) -> None:
        chat, sid = ChatStore(db), new_stream_id()
        await chat.insert(sid, "e1", [msg(s) for s in range(1, 11)])
        assert [d["seq"] for d in await chat.page(sid, limit=3)] == [10, 9, 8]
        assert [d["seq"] for d in await chat.page(sid, before_seq=8, limit=3)] == [7, 6, 5]
        assert [d["seq"] for d in await chat.page(sid, before_seq=3)] == [2, 1]
        assert await chat.page(sid, before_seq=1) == []

    async def test_streams_do_not_mix(self, db: AsyncDatabase) -> None:
        chat, a, b = ChatStore(db), new_stream_id(), new_stream_id()
        await chat.insert(a, "e1", [msg(1, "for a")])
        await chat.insert(b, "e1", [msg(1, "for b"), msg(2, "for b")])
        assert [d["message"] for d in await chat.recent(a, 10)] == ["for a"]
        assert await chat.count(b) == 2
        assert [d["streamId"] for d in await chat.page(b)] == [b, b]


class TestUserList:
    async def test_paged_newest_first_and_searched_by_email_in_any_case(self, db: AsyncDatabase) -> None:
        users = UserStore(db)
        made = [await users.create(f"user{i}@Shop.example", f"h{i}", f"U{i}") for i in range(5)]
        await users.create("other@elsewhere.example", "h", "O")
        everyone = await users.list(skip=0, limit=100)
        assert len(everyone) == 6 and await users.count() == 6
        first, second = await users.list(skip=0, limit=3), await users.list(skip=3, limit=3)
        assert [u.id for u in first + second] == [u.id for u in everyone]
        assert {u.id for u in await users.list(skip=0, limit=100, email="SHOP.EX")} == {u.id for u in made}
        assert [u.email for u in await users.list(skip=0, limit=10, email="user3@")] == ["user3@shop.example"]
        assert await users.count("shop.example") == 5

    @pytest.mark.parametrize("needle", [".*", "^", "user.@", "(", "[a-z]", "\\", "$where", "|"])
    async def test_regex_in_the_search_is_matched_as_plain_text(self, db: AsyncDatabase, needle: str) -> None:
        users = UserStore(db)
        await users.create("ann@example.com", "h", "Ann")
        await users.create("user1@example.com", "h", "U")
        assert await users.list(skip=0, limit=10, email=needle) == []
        assert await users.count(needle) == 0
        weird = await users.create(f"a{needle}b@example.com", "h", "W")
        assert [u.id for u in await users.list(skip=0, limit=10, email=needle)] == [weird.id]
