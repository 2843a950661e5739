"""The gateway hub: who watches what, session counting and local fan-out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from gateway.streams.hub import Delivery, Hub
from gateway.transport.connection import CLOSE_TRY_AGAIN_LATER, Connection

A = "a" * 24
B = "b" * 24


def conn(session: str | None = None, *, admin: bool = False, queue_size: int = 16) -> Connection:
    c = Connection(websocket=object(), queue_size=queue_size)  # type: ignore[arg-type]  # the hub never reads the socket
    c.session_id = session
    c.is_admin = admin
    return c


def slow(c: Connection, cost: float) -> Connection:
    """`c`, each of whose writes blocks the loop `cost` seconds (a slow socket write, as many viewers make)."""
    send_many, send_shared = c.send_many, c.send_shared

    def slow_many(texts: list[str], frames: bytes) -> bool:
        time.sleep(cost)
        return send_many(texts, frames)

    def slow_shared(text: str, frame: bytes | None) -> bool:
        time.sleep(cost)
        return send_shared(text, frame)

    c.send_many = slow_many  # type: ignore[method-assign]  # the real send, after a blocking pause
    c.send_shared = slow_shared  # type: ignore[method-assign]  # the real send, after a blocking pause
    return c


def joined(hub: Hub, session: str | None = None, *, admin: bool = False, queue_size: int = 16) -> Connection:
    c = conn(session, admin=admin, queue_size=queue_size)
    hub.add(c)
    if admin:
        hub.make_admin(c)
    return c


def opted_in(hub: Hub, session: str) -> Connection:
    """A protocol-2 connection, joined and watching stream A."""
    c = joined(hub, session)
    c.protocol = 2
    hub.watch(c, A)
    return c


def publish_now(hub: Hub, stream_id: str, texts: Iterable[Delivery]) -> int:
    """Publish, then run the write tick at once: the frames written to old apps."""
    hub.publish(stream_id, texts)
    before = hub.frames_out
    hub.write_all()
    return hub.frames_out - before


def drain(c: Connection) -> list[str | None]:
    """Every frame queued on the connection so far (None is the close marker)."""
    queue = c._queue
    assert queue is not None, "the connection has a queue from its creation"
    out: list[str | None] = []
    while True:
        try:
            out.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return out


def text_frames(c: Connection) -> list[str]:
    """Every frame queued on the connection so far, which must all be text (no close marker)."""
    frames = drain(c)
    assert None not in frames, frames
    return [f for f in frames if f is not None]


class TestWatching:
    async def test_first_connection_of_a_session_is_new_to_the_stream(self) -> None:
        hub = Hub()
        c1, c2 = joined(hub, "s1"), joined(hub, "s1")
        assert hub.watch(c1, A) is True
        assert hub.watch(c2, A) is False  # same session, second connection
        assert hub.sessions(A) == ["s1"]
        assert hub.watchers(A) == {c1, c2}
        assert c1.watching == A and c2.watching == A

    async def test_other_session_is_new_too(self) -> None:
        hub = Hub()
        assert hub.watch(joined(hub, "s1"), A) is True
        assert hub.watch(joined(hub, "s2"), A) is True
        assert sorted(hub.sessions(A)) == ["s1", "s2"]

    async def test_watching_the_same_stream_again_is_not_new(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        assert hub.watch(c, A) is True
        assert hub.watch(c, A) is False
        assert hub.sessions(A) == ["s1"]
        assert hub.unwatch(c) == (A, "s1")  # counted once, so one unwatch frees it

    async def test_same_session_on_another_stream_is_new_there(self) -> None:
        hub = Hub()
        c1, c2 = joined(hub, "s1"), joined(hub, "s1")
        assert hub.watch(c1, A) is True
        assert hub.watch(c2, B) is True

    async def test_switching_streams_leaves_the_old_one(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        hub.watch(c, A)
        assert hub.watch(c, B) is True
        assert c.watching == B
        assert hub.watchers(A) == set()
        assert hub.sessions(A) == []
        assert hub.sessions(B) == ["s1"]

    async def test_without_session_or_as_admin_is_never_new(self) -> None:
        hub = Hub()
        anonymous, admin = joined(hub, None), joined(hub, "adm", admin=True)
        assert hub.watch(anonymous, A) is False
        assert hub.watch(admin, A) is False
        assert hub.watchers(A) == {anonymous, admin}
        assert hub.sessions(A) == []
        assert hub.unwatch(anonymous) is None
        assert hub.unwatch(admin) is None

    async def test_watchers_returns_a_copy(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        hub.watch(c, A)
        hub.watchers(A).clear()
        assert hub.watchers(A) == {c}


class TestLeaving:
    async def test_unwatch_reports_only_the_sessions_last_connection(self) -> None:
        hub = Hub()
        c1, c2 = joined(hub, "s1"), joined(hub, "s1")
        hub.watch(c1, A)
        hub.watch(c2, A)
        assert hub.unwatch(c1) is None
        assert hub.sessions(A) == ["s1"]
        assert hub.unwatch(c2) == (A, "s1")
        assert hub.sessions(A) == []
        assert c1.watching is None and c2.watching is None

    async def test_unwatch_when_not_watching(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        assert hub.unwatch(c) is None
        hub.watch(c, A)
        assert hub.unwatch(c) == (A, "s1")
        assert hub.unwatch(c) is None  # twice is harmless

    async def test_remove_reports_the_sessions_last_connection(self) -> None:
        hub = Hub()
        c1, c2 = joined(hub, "s1"), joined(hub, "s1")
        hub.watch(c1, A)
        hub.watch(c2, A)
        assert hub.remove(c1) is None
        assert c1 not in hub.connections
        assert hub.remove(c2) == (A, "s1")
        assert hub.connections == set()
        assert hub.watchers(A) == set()

    async def test_remove_of_a_connection_that_watches_nothing(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        assert hub.remove(c) is None
        assert hub.remove(c) is None
        assert hub.connections == set()

    async def test_remove_forgets_an_admin(self) -> None:
        hub = Hub()
        admin = joined(hub, None, admin=True)
        assert hub.remove(admin) is None
        assert hub.admins == set()
        viewer = joined(hub, "s1")
        hub.watch(viewer, A)
        publish_now(hub, A, ["x"])
        assert drain(admin) == []


class TestFanOut:
    async def test_publish_reaches_only_that_streams_watchers_in_order(self) -> None:
        hub = Hub()
        a1, a2, b1, idle = joined(hub, "s1"), joined(hub, "s2"), joined(hub, "s3"), joined(hub, "s4")
        hub.watch(a1, A)
        hub.watch(a2, A)
        hub.watch(b1, B)
        assert publish_now(hub, A, ["e1", "e2", "e3"]) == 6
        assert drain(a1) == ["e1", "e2", "e3"]
        assert drain(a2) == ["e1", "e2", "e3"]
        assert drain(b1) == []
        assert drain(idle) == []

    async def test_publish_accepts_a_generator(self) -> None:
        hub = Hub()
        a1, a2 = joined(hub, "s1"), joined(hub, "s2")
        hub.watch(a1, A)
        hub.watch(a2, A)
        assert publish_now(hub, A, (f"e{i}" for i in range(3))) == 6
        assert drain(a1) == ["e0", "e1", "e2"]
        assert drain(a2) == ["e0", "e1", "e2"]

    async def test_admins_receive_every_stream(self) -> None:
        hub = Hub()
        admin = joined(hub, None, admin=True)
        viewer = joined(hub, "s1")
        hub.watch(viewer, A)
        publish_now(hub, A, ["a1"])
        publish_now(hub, B, ["b1"])  # nobody watches B: the admin still gets it
        assert drain(admin) == ["a1", "b1"]
        assert drain(viewer) == ["a1"]

    async def test_admin_that_also_watches_gets_each_frame_once(self) -> None:
        hub = Hub()
        admin = joined(hub, "adm", admin=True)
        hub.watch(admin, A)
        assert publish_now(hub, A, ["x", "y"]) == 2
        assert drain(admin) == ["x", "y"]

    async def test_publish_to_an_unwatched_stream_sends_nothing(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        assert publish_now(hub, A, ["x"]) == 0
        assert drain(c) == []

    async def test_publish_stops_after_unwatch(self) -> None:
        hub = Hub()
        c = joined(hub, "s1")
        hub.watch(c, A)
        hub.unwatch(c)
        assert publish_now(hub, A, ["x"]) == 0
        assert drain(c) == []

    async def test_broadcast_reaches_every_connection(self) -> None:
        hub = Hub()
        conns = [joined(hub, "s1"), joined(hub, None), joined(hub, None, admin=True)]
        hub.watch(conns[0], A)
        assert hub.broadcast("hello") == 3
        for c in conns:
            assert drain(c) == ["hello"]

    async def test_broadcast_skips_closed_connections(self) -> None:
        hub = Hub()
        open_, closed = joined(hub, "s1"), joined(hub, "s2")
        closed.close()
        assert hub.broadcast("hello") == 1
        assert drain(open_) == ["hello"]
        assert drain(closed) == [None]  # only the close marker

    async def test_followers_without_stream(self) -> None:
        hub = Hub()
        follower, watching_follower, plain = joined(hub, "s1"), joined(hub, "s2"), joined(hub, "s3")
        follower.follows_sole_stream = True
        watching_follower.follows_sole_stream = True
        hub.watch(watching_follower, A)
        assert hub.followers_without_stream() == [follower]
        hub.watch(follower, A)
        assert hub.followers_without_stream() == []
        hub.unwatch(follower)
        assert hub.followers_without_stream() == [follower]
        assert plain not in hub.followers_without_stream()


class TestSlowConsumer:
    async def test_full_queue_closes_the_connection(self) -> None:
        hub = Hub()
        slow = joined(hub, "slow", queue_size=2)
        fast = joined(hub, "fast", queue_size=16)
        hub.watch(slow, A)
        hub.watch(fast, A)
        assert publish_now(hub, A, ["e1", "e2"]) == 4
        assert not slow.closed
        assert publish_now(hub, A, ["e3"]) == 1  # only the fast one took it
        assert slow.closed is True
        assert slow._close[0] == CLOSE_TRY_AGAIN_LATER
        assert slow.send("e4") is False  # closed stays closed
        assert drain(fast) == ["e1", "e2", "e3"]
        # The full queue was dropped to make room for the close marker.
        assert drain(slow) == [None]

    async def test_send_returns_false_when_full(self) -> None:
        c = conn("s1", queue_size=1)
        assert c.send("a") is True
        assert c.send("b") is False
        assert c.closed is True

    async def test_close_after_queued_frames(self) -> None:
        c = conn("s1", queue_size=4)
        c.send("a")
        c.close()
        assert c.closed is True
        assert c.send("b") is False
        assert drain(c) == ["a", None]


async def test_viewer_promoted_to_admin_still_leaves_the_stream() -> None:
    hub = Hub()
    c = joined(hub, "s1")
    assert hub.watch(c, A) is True  # counted: the caller sent Join("s1")
    c.is_admin = True  # what ws_session.register_admin does, without unwatching
    hub.make_admin(c)
    assert hub.remove(c) == (A, "s1")  # the caller must send Leave("s1")
    assert hub.sessions(A) == []


class TestBatchesForOptedInApps:
    async def test_events_wait_for_the_tick_then_go_as_one_frame(self) -> None:
        # Busy and costly for opted-in apps: the batch tick has just run and its write took long (a
        # slow socket), so what arrives next waits for the end of its interval (0.5 s: a stalled loop
        # cannot end it before the checks below). Old apps' writes cost nothing: not held.
        hub = Hub(batch_interval=0.5, write_interval=0.5)
        new = slow(joined(hub, "n"), 0.3)
        new.protocol = 2
        hub.watch(new, A)  # moves it to the batched group
        old = joined(hub, "o")
        hub.watch(old, A)
        hub.publish(A, ['{"seq":0}'])
        await asyncio.sleep(0)  # quiet until now: both go on the next turn of the loop
        assert drain(old) == ['{"seq":0}'] and len(text_frames(new)) == 1
        started = time.monotonic()
        hub.publish(A, ['{"seq":1}', '{"seq":2}'])
        hub.publish(A, ['{"seq":3}'])
        assert drain(old) == [] and drain(new) == []  # nothing is written inside `publish`
        await asyncio.sleep(0.05)
        assert drain(old) == ['{"seq":1}', '{"seq":2}', '{"seq":3}']  # old apps: each its own frame, one write
        if time.monotonic() - started < 0.2:  # (a loop stalled for longer could have run the batch tick)
            assert drain(new) == []  # opted-in: held for their tick
        await asyncio.sleep(0.6)
        frames = text_frames(new)
        assert [json.loads(f)["events"] for f in frames] == [[{"seq": 1}, {"seq": 2}, {"seq": 3}]]

    async def test_a_quiet_stream_is_written_on_the_next_turn_of_the_loop_not_at_a_tick(self) -> None:
        # Ticks of 10 s: a fixed tick would hold these events for 10 s.
        hub = Hub(batch_interval=10, write_interval=10)
        new = opted_in(hub, "n")
        old = joined(hub, "o")
        hub.watch(old, A)
        hub.publish(A, ['{"seq":1}'])
        hub.publish(A, ['{"seq":2}'])  # same turn of the loop: the same write
        assert drain(old) == [] and drain(new) == []  # nothing is written inside `publish`
        await asyncio.sleep(0)
        assert drain(old) == ['{"seq":1}', '{"seq":2}']
        [frame] = text_frames(new)
        assert json.loads(frame)["events"] == [{"seq": 1}, {"seq": 2}]

    async def test_right_after_a_costly_write_the_next_waits_twice_its_cost(self) -> None:
        hub = Hub(batch_interval=10, write_interval=10)
        old = slow(joined(hub, "o"), 0.05)  # each write to it takes 0.05 s: the next waits 0.1 s
        hub.watch(old, A)
        hub.publish(A, ["e1"])
        await asyncio.sleep(0)
        assert drain(old) == ["e1"]
        hub.publish(A, ["e2"])
        await asyncio.sleep(0.01)
        assert drain(old) == []  # held: writing back to back would take all the gateway's time
        deadline = time.monotonic() + 5.0
        while not (got := drain(old)) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert got == ["e2"]  # well before the 10 s interval

    async def test_a_tick_once_an_interval_has_passed_goes_at_once_again(self) -> None:
        hub = Hub(batch_interval=0.05, write_interval=0.05)
        new = opted_in(hub, "n")
        old = joined(hub, "o")
        hub.watch(old, A)
        hub.publish(A, ['{"seq":1}'])
        await asyncio.sleep(0)
        assert len(drain(old)) == 1 and len(drain(new)) == 1
        await asyncio.sleep(0.06)  # the interval is over: quiet again
        hub.publish(A, ['{"seq":2}'])
        await asyncio.sleep(0)
        assert drain(old) == ['{"seq":2}'] and len(drain(new)) == 1

    async def test_a_newcomer_does_not_get_events_from_before_it_joined(self) -> None:
        hub = Hub(batch_interval=10)
        first = opted_in(hub, "a")
        hub.publish(A, ['{"seq":5}'])
        late = opted_in(hub, "b")  # its snapshot already holds seq 5
        assert drain(first) == [] and drain(late) == []  # a newcomer does not make anyone a frame early
        hub.publish(A, ['{"seq":6}'])
        assert hub.flush(A) == 2
        assert [json.loads(f)["events"] for f in text_frames(first)] == [[{"seq": 5}, {"seq": 6}]]
        assert [json.loads(f)["events"] for f in text_frames(late)] == [[{"seq": 6}]]

    async def test_newcomers_of_one_tick_share_the_frames_they_need(self) -> None:
        hub = Hub(batch_interval=10)
        first = opted_in(hub, "a")
        hub.publish(A, ['{"seq":1}'])
        early = [opted_in(hub, f"e{i}") for i in range(3)]
        hub.publish(A, ['{"seq":2}'])
        last = opted_in(hub, "z")  # has everything waiting: nothing for it at this tick
        assert hub.flush(A) == 4
        assert [json.loads(f)["events"] for f in text_frames(first)] == [[{"seq": 1}, {"seq": 2}]]
        frames = [text_frames(c) for c in early]
        assert all(f == frames[0] for f in frames) and [json.loads(f)["events"] for f in frames[0]] == [[{"seq": 2}]]
        assert drain(last) == []
        hub.publish(A, ['{"seq":3}'])
        hub.flush(A)
        assert [json.loads(f)["events"] for f in text_frames(last)] == [[{"seq": 3}]]  # from then on, like everyone

    async def test_a_newcomer_that_leaves_before_the_tick_gets_nothing(self) -> None:
        hub = Hub(batch_interval=10)
        opted_in(hub, "a")
        hub.publish(A, ['{"seq":1}'])
        gone = opted_in(hub, "g")
        hub.publish(A, ['{"seq":2}'])
        hub.unwatch(gone)
        assert hub.flush(A) == 1
        assert drain(gone) == []

    async def test_an_old_app_newcomer_gets_only_the_events_after_its_snapshot(self) -> None:
        hub = Hub(write_interval=10)
        first = joined(hub, "a")
        hub.watch(first, A)
        hub.publish(A, ["e1", "e2"])
        late = joined(hub, "b")
        hub.watch(late, A)
        assert drain(first) == [] and drain(late) == []
        hub.publish(A, ["e3"])
        assert hub.write_pending(A) == 4
        assert drain(first) == ["e1", "e2", "e3"]
        assert drain(late) == ["e3"]
