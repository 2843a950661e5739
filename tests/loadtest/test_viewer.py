"""A v2 batch frame applied whole (`Viewer._batch`) leaves a viewer and its
recorder exactly where applying it event by event (`Viewer._hot`) does."""

from __future__ import annotations

import queue
import time
from typing import Any

import orjson
import pytest

from loadtest import messages
from loadtest.frames import BatchDigest, BatchSummary, EventDigest, classify
from loadtest.plan import ViewerSpec, WorkerPlan
from loadtest.stats import encode
from loadtest.viewer import Viewer
from loadtest.worker import Worker
from tests.loadtest.relayout import relaid

STREAM = "0123456789abcdef01234567"
OTHER = "76543210fedcba9876543210"
RUN = "run1"


def make_viewer() -> Viewer:
    spec = ViewerSpec(STREAM, "ws://x", "sess")
    plan = WorkerPlan(
        index=0,
        run_id=RUN,
        viewers=[spec],
        ramp_rate=0,
        duration=0,
        drain=0,
        chat_rate={},
        like_rate={},
        chat_stop_at={},
    )
    w = Worker(plan, time.time_ns() - 5 * 10**9, queue.Queue())
    v = w.viewers[0]
    v.ready = True
    v.joined = True
    return v


def chat(seq: int, send_ns: int, epoch: str = "e1", text: str | None = None, sid: str = STREAM) -> dict[str, Any]:
    return {
        "type": "chat_message",
        "id": seq,
        "seq": seq,
        "username": "u",
        "isAdmin": False,
        "message": text if text is not None else messages.chat_text(RUN, 1, seq, send_ns),
        "timestamp": "t",
        "streamId": sid,
        "epoch": epoch,
    }


def update(seq: int, likes: int, epoch: str = "e1") -> dict[str, Any]:
    return {
        "type": "stream_update",
        "viewerCount": 3,
        "likes": likes,
        "likedByAdded": [],
        "likedByRemoved": [],
        "streamId": STREAM,
        "seq": seq,
        "epoch": epoch,
    }


def batch(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "batch", "streamId": STREAM, "events": list(events)})


def state(v: Viewer) -> dict[str, Any]:
    r = v.rec
    r.settle()
    return {
        "last_seq": v.last_seq,
        "epoch": v.epoch,
        "missing": sorted(v.missing),
        "likes": v.last_likes,
        "likes_seq": v.last_likes_seq,
        "updates": v.updates,
        "open": {
            sec: {k: ({h: encode(x) for h, x in val.items()} if k == "hists" else val) for k, val in bucket.items()}
            for sec, bucket in r.open.items()
        },
        "unexpected": r.recv_unexpected,
        "foreign": r.foreign_deliveries,
    }


def frames(now: int) -> list[bytes]:
    s = now - 10**9
    return [
        batch(chat(1, s)),  # the first seq: sets the baseline (event by event)
        batch(
            chat(2, s + 1),
            update(3, 10),
            chat(4, s + 2, text="someone else"),
            chat(5, s + 3, text=messages.chat_text("otherrun", 2, 9, s)),
        ),  # in order: whole
        batch(chat(8, s + 4), chat(9, s + 5)),  # a gap: event by event
        batch(chat(10, s + 6), update(11, 12), update(12, 11)),
        batch(chat(11, s + 7)),  # a duplicate
        batch(chat(13, s + 8, epoch="e2"), chat(14, s + 9, epoch="e2")),  # a new epoch
        batch(chat(15, s + 10, epoch="e2"), chat(16, s + 11, epoch="e2", sid=OTHER)),  # mixed streams
        batch(chat(15, s + 10, epoch="e2"), chat(16, s + 11, epoch="e2")),
        batch(chat(17, 0, epoch="e2")),  # sent before the viewer's window: unexpected
    ]


def test_whole_batches_end_where_event_by_event_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time_ns()
    whole, single = make_viewer(), make_viewer()
    for v in (whole, single):
        v.window_start = now - 3 * 10**9
    applied = []
    real = Viewer._batch

    def counting(self: Viewer, b: BatchSummary, now: int) -> bool:
        applied.append(real(self, b, now))
        return applied[-1]

    monkeypatch.setattr(Viewer, "_batch", counting)
    for p in frames(now):
        whole.on_message(p, now)
    assert applied.count(True) == 3  # the 2nd, 4th and last frames: the rest went event by event
    monkeypatch.setattr(Viewer, "_batch", lambda self, b, now: False)
    for p in frames(now):
        single.on_message(p, now)
    assert state(whole) == state(single)
    assert whole.last_seq == 17 and whole.last_likes == 11


def test_only_the_common_batch_is_summarized() -> None:
    now = time.time_ns()
    own = classify(batch(chat(2, now), update(3, 1)), messages.own_prefix(RUN))
    assert isinstance(own, BatchDigest) and own.summary is not None
    assert (own.summary.first_seq, own.summary.last_seq) == (2, 3)
    assert own.summary.sends == [now] and len(own.summary.updates) == 1
    gap = classify(batch(chat(2, now), chat(4, now)), messages.own_prefix(RUN))
    other_kind = classify(batch(chat(2, now), {"type": "pinned_products_updated", "seq": 3}), messages.own_prefix(RUN))
    assert isinstance(gap, BatchDigest) and gap.summary is None
    assert isinstance(other_kind, BatchDigest) and other_kind.summary is None


def test_frames_that_share_head_and_tail_are_not_taken_for_one_another() -> None:
    now = time.time_ns()
    v = make_viewer()
    v.window_start = now - 3 * 10**9
    pad = "x" * 400
    first = batch(chat(1, now - 5, text=messages.chat_text(RUN, 1, 1, now - 5) + " " + pad))
    v.on_message(first, now)
    other = bytearray(first)
    middle = len(other) // 2
    other[middle] = ord("y")  # same head, same tail, same length: another frame
    v.on_message(bytes(other), now)
    [entry] = v.crowd.frames.entries.values()
    assert "y" in first_message(entry.digest)  # digested afresh, not taken from the first frame's entry
    copy = bytes(first)
    v.on_message(copy, now)
    [entry] = v.crowd.frames.entries.values()
    assert entry.frame == first and "y" not in first_message(entry.digest)


def first_message(digest: object) -> str:
    """The text of the first chat message of a batch frame's digest."""
    assert isinstance(digest, BatchDigest)
    event = digest.events[0]
    assert isinstance(event, EventDigest)
    return str(event.event["message"])


def joining_viewer(start_ns: int, protocol: int = 1) -> Viewer:
    """A viewer that has just connected (not watching yet), in a worker of its own started at `start_ns`."""
    spec = ViewerSpec(STREAM, "ws://x", "sess")
    plan = WorkerPlan(
        index=0,
        run_id=RUN,
        viewers=[spec],
        ramp_rate=0,
        duration=0,
        drain=0,
        chat_rate={},
        like_rate={},
        chat_stop_at={},
        protocol=protocol,
    )
    v = Worker(plan, start_ns, queue.Queue()).viewers[0]
    v.t0 = start_ns
    return v


def everything(v: Viewer) -> dict[str, Any]:
    """The viewer's whole state and what it recorded, but the bytes received."""
    got = state(v)
    for bucket in got["open"].values():
        bucket["counters"].pop("bytes", None)
    return {
        **got,
        "joined": v.joined,
        "ready": v.ready,
        "window_start": v.window_start,
        "initial_likes": v.initial_likes,
        "pin_max": v.pin_max,
        "stopped": v.stopped,
        "viewer_count": v.last_viewer_count,
        "acks": dict(v.crowd.pending_acks),
        "batches": v.crowd.batches,
        "ready_set": len(v.crowd.ready(STREAM)),
    }


def v1_session(now: int) -> list[Any]:
    s = now  # sent inside the window, which opens at `now` (every frame arrives then)
    pin = {"productId": "65f0c0ffee0000000000aa01", "name": messages.pin_name(RUN, 1, s), "price": 5}
    long_update = {
        "type": "stream_update",
        "viewerCount": 40,
        "likes": 300,
        "likedBy": [f"lt-{RUN}-0-{i}" for i in range(300)],
        "streamId": STREAM,
        "seq": 12,
        "epoch": "e1",
    }
    return [
        {"type": "registered", "sessionId": "sess"},
        {
            "type": "stream_started",
            "streamData": {"likes": 7, "likedBy": [], "liked": False},
            "streamId": STREAM,
            "seq": 2,
            "epoch": "e1",
        },
        {"type": "pinned_products_updated", "pinnedProducts": [pin], "streamId": STREAM, "seq": 2, "epoch": "e1"},
        {"type": "chat_history", "messages": [], "streamId": STREAM, "seq": 2, "epoch": "e1"},
        chat(3, s),
        {
            "type": "stream_update",
            "viewerCount": 3,
            "likes": 8,
            "likedBy": [],
            "streamId": STREAM,
            "seq": 4,
            "epoch": "e1",
        },
        chat(5, s + 1, text=messages.chat_text("otherrun", 2, 9, s)),  # another run's
        chat(6, s + 2, text="someone else"),
        chat(8, s + 3),  # a gap
        chat(7, s + 4),  # fills it
        chat(7, s + 4),  # a duplicate
        {
            "type": "pinned_products_updated",
            "pinnedProducts": [dict(pin, productId="65f0c0ffee0000000000aa02", name=messages.pin_name(RUN, 2, s))],
            "streamId": STREAM,
            "seq": 9,
            "epoch": "e1",
        },
        chat(10, s + 5, sid=OTHER),  # another stream's
        {"type": "error", "message": "slow down 12"},
        {"type": "stream_stopped", "streamId": STREAM, "seq": 11, "epoch": "e1"},
        long_update,
        chat(13, 0),  # sent before the window: unexpected
        "a string",
        [1, 2],
    ]


def v2_session(now: int) -> list[Any]:
    s = now
    return [
        {"type": "registered", "sessionId": "sess", "protocol": 2},
        {
            "type": "batch",
            "streamId": STREAM,
            "events": [
                {"type": "stream_started", "streamData": {"likes": 1}, "streamId": STREAM, "seq": 1, "epoch": "e1"},
                {"type": "chat_history", "messages": [], "streamId": STREAM, "seq": 1, "epoch": "e1"},
            ],
        },
        {"type": "batch", "streamId": STREAM, "events": [chat(2, s), update(3, 4), chat(4, s + 1)]},  # whole
        {"type": "ack", "clientMsgId": "0-1"},
        {"type": "error", "clientMsgId": "0-2", "message": "rejected"},
        {"type": "batch", "streamId": STREAM, "events": [chat(6, s + 2), chat(7, s + 3)]},  # a gap
        {"type": "batch", "streamId": STREAM, "events": [chat(5, s + 4)]},  # fills it
        {"type": "batch", "streamId": STREAM, "events": [chat(8, s + 5, epoch="e2"), update(9, 2, epoch="e2")]},
        {"type": "batch", "events": 3},
    ]


@pytest.mark.parametrize(("session", "protocol"), [(v1_session, 1), (v2_session, 2)])
def test_frames_in_another_layout_are_counted_the_same(session: Any, protocol: int) -> None:
    """Frames are recognised by their content: the same events with their keys in
    another order and other spacing leave a viewer exactly where the server's bytes do."""
    now = time.time_ns()
    start = now - 5 * 10**9
    compact, spaced = joining_viewer(start, protocol), joining_viewer(start, protocol)
    for v in (compact, spaced):
        v.crowd.pending_acks.update({"0-1": now - 1000, "0-2": now - 2000})
    for frame in session(now):
        compact.on_message(orjson.dumps(frame), now)
        spaced.on_message(relaid(frame), now)
    spaced_batches = [e.digest for e in spaced.crowd.frames.entries.values() if isinstance(e.digest, BatchDigest)]
    assert len(spaced_batches) == (5 if protocol == 2 else 0)  # taken for batches: decoded once, cached
    assert everything(spaced) == everything(compact)
    got = everything(compact)  # and what they both saw is what the session holds
    assert got["joined"] and got["ready"] and got["epoch"] == ("e1" if protocol == 1 else "e2")
    counters = next(iter(compact.rec.open.values()))["counters"]
    if protocol == 1:
        assert got["initial_likes"] == 7 and got["pin_max"] == 2 and got["stopped"]
        assert got["likes"] == 300 and got["viewer_count"] == 40 and got["last_seq"] == 13
        assert counters["deliveries"] == 5 and counters["foreign_deliveries"] == 1  # 3, 8, 7, 7 again, 13
        assert counters["seq_gaps"] == 2 and counters["reordered"] == 1 and counters["duplicates"] == 1
        assert counters["pins_received"] == 1 and counters["recv_unexpected"] == 1
        errors = next(iter(compact.rec.open.values()))["errors"]
        assert errors["bad frame: not an object"] == 2 and errors["server: slow down #"] == 1
    else:
        assert got["batches"] == 5 and got["acks"] == {} and counters["acks"] == 1
        assert counters["chat_rejected"] == 1 and counters["epoch_changes"] == 1
        assert counters["deliveries"] == 6 and got["likes"] == 2 and got["last_seq"] == 9
