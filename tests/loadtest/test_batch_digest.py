"""A v2 batch frame applied whole (`Viewer._batch`) leaves a viewer and its
recorder exactly where applying it event by event (`Viewer._hot`) does."""

from __future__ import annotations

import queue
import time
from typing import Any

import orjson
import pytest

from loadtest import messages
from loadtest.stats import encode
from loadtest.worker import Batch, Viewer, ViewerSpec, Worker, WorkerPlan, digest_frame

STREAM = "0123456789abcdef01234567"
OTHER = "76543210fedcba9876543210"
RUN = "run1"


def make_viewer() -> Viewer:
    spec = ViewerSpec(STREAM, "ws://x", "sess")
    plan = WorkerPlan(index=0, run_id=RUN, viewers=[spec], ramp_rate=0, duration=0, drain=0, chat_rate={},
                      like_rate={}, chat_stop_at={})
    w = Worker(plan, time.time_ns() - 5 * 10**9, queue.Queue())
    v = w.viewers[0]
    v.ready = True
    v.joined = True
    return v


def chat(seq: int, send_ns: int, epoch: str = "e1", text: str | None = None, sid: str = STREAM) -> dict[str, Any]:
    return {"type": "chat_message", "id": seq, "seq": seq, "username": "u", "isAdmin": False,
            "message": text if text is not None else messages.chat_text(RUN, 1, seq, send_ns),
            "timestamp": "t", "streamId": sid, "epoch": epoch}


def update(seq: int, likes: int, epoch: str = "e1") -> dict[str, Any]:
    return {"type": "stream_update", "viewerCount": 3, "likes": likes, "likedByAdded": [], "likedByRemoved": [],
            "streamId": STREAM, "seq": seq, "epoch": epoch}


def batch(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "batch", "streamId": STREAM, "events": list(events)})


def state(v: Viewer) -> dict[str, Any]:
    r = v.rec
    r.settle()
    return {"last_seq": v.last_seq, "epoch": v.epoch, "missing": sorted(v.missing), "likes": v.last_likes,
            "likes_seq": v.last_likes_seq, "updates": v.updates,
            "open": {sec: {k: ({h: encode(x) for h, x in val.items()} if k == "hists" else val)
                           for k, val in bucket.items()} for sec, bucket in r.open.items()},
            "unexpected": r.recv_unexpected, "foreign": r.foreign_deliveries}


def frames(now: int) -> list[bytes]:
    s = now - 10**9
    return [
        batch(chat(1, s)),  # the first seq: sets the baseline (event by event)
        batch(chat(2, s + 1), update(3, 10), chat(4, s + 2, text="someone else"), chat(5, s + 3,
              text=messages.chat_text("otherrun", 2, 9, s))),  # in order: whole
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

    def counting(self: Viewer, b: Batch, now: int) -> bool:
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
    own = digest_frame(batch(chat(2, now), update(3, 1)), messages.own_prefix(RUN))
    assert isinstance(own, Batch) and own.fast and (own.first_seq, own.last_seq) == (2, 3)
    assert own.sends == [now] and len(own.updates) == 1
    gap = digest_frame(batch(chat(2, now), chat(4, now)), messages.own_prefix(RUN))
    other_kind = digest_frame(batch(chat(2, now), {"type": "pinned_products_updated", "seq": 3}),
                              messages.own_prefix(RUN))
    assert isinstance(gap, Batch) and not gap.fast
    assert isinstance(other_kind, Batch) and not other_kind.fast


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
    [(kept, digest)] = v.w.digests.values()
    assert "y" in digest[0][4]["message"]  # digested afresh, not taken from the first frame's entry
    copy = bytes(first)
    v.on_message(copy, now)
    [(kept, digest)] = v.w.digests.values()
    assert kept == first and "y" not in digest[0][4]["message"]
