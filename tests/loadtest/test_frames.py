"""What a frame is, by its JSON content (`loadtest.frames`): digests, the partial
decode of long updates, batch summaries and the per-worker cache. Pure: no I/O."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from loadtest import frames, messages
from loadtest.frames import (
    BATCH_WITHOUT_EVENTS,
    CHAT,
    NOT_AN_OBJECT,
    NOT_JSON,
    UPDATE,
    BatchDigest,
    EventDigest,
    FrameCache,
    OtherFrame,
    classify,
    decode,
    digest_event,
)
from loadtest.messages import OwnMark
from tests.loadtest.relayout import relaid

RUN = "run1"
PREFIX = messages.own_prefix(RUN)


def test_partial_update_decode_reads_what_a_full_decode_reads() -> None:
    liked = [f"lt-abc-0-{i}" for i in range(500)] + ['has "quotes"], "streamId":"evil', "back\\slash"]
    ev = {
        "type": "stream_update",
        "viewerCount": 7,
        "likes": 502,
        "likedBy": liked,
        "streamId": "s1",
        "seq": 41,
        "epoch": "e1",
    }
    text = orjson.dumps(ev)
    assert len(text) > 1024
    got = decode(text)
    for k in ("type", "viewerCount", "likes", "streamId", "seq", "epoch"):
        assert got[k] == ev[k]
    assert "likedBy" not in got  # the list was skipped, not decoded
    # another layout: falls back to a full decode
    moved = orjson.dumps(
        {
            "type": "stream_update",
            "likedBy": liked,
            "likes": 1,
            "viewerCount": 2,
            "streamId": "s1",
            "seq": 1,
            "epoch": "e",
        }
    )
    assert decode(moved) == orjson.loads(moved)
    with pytest.raises(orjson.JSONDecodeError):
        decode(b'{"type":"stream_update",' + b"x" * 2000)


def test_the_partial_decode_is_only_for_updates_that_hold_every_key_read() -> None:
    liked = [f"lt-abc-0-{i}" for i in range(200)]
    # not an update: the same cut would parse, but the type says otherwise
    other = orjson.dumps(
        {
            "type": "stream_started",
            "likes": 1,
            "viewerCount": 2,
            "likedBy": liked,
            "streamId": "s1",
            "seq": 1,
            "epoch": "e",
        }
    )
    assert decode(other) == orjson.loads(other)
    # an update whose type comes last: the tail holds it, so the halves are enough
    last_type = orjson.dumps(
        {
            "likes": 1,
            "viewerCount": 2,
            "likedBy": liked,
            "streamId": "s1",
            "seq": 1,
            "epoch": "e",
            "type": "stream_update",
        }
    )
    assert decode(last_type) == {k: v for k, v in orjson.loads(last_type).items() if k != "likedBy"}
    # an update whose type sits between the list and streamId: no cut, the whole frame is decoded
    type_between = orjson.dumps(
        {
            "likes": 1,
            "viewerCount": 2,
            "likedBy": liked,
            "type": "stream_update",
            "streamId": "s1",
            "seq": 1,
            "epoch": "e",
        }
    )
    assert decode(type_between) == orjson.loads(type_between)
    # an update without viewerCount: the halves lack a key read, so the whole frame is decoded
    short = orjson.dumps(
        {"type": "stream_update", "likes": 1, "likedBy": liked, "streamId": "s1", "seq": 1, "epoch": "e"}
    )
    assert decode(short) == orjson.loads(short)
    # a nested list of that name: the cut is not at the top level, so the head does not parse
    nested = orjson.dumps(
        {
            "type": "stream_update",
            "x": {"likes": 1, "likedBy": liked, "streamId": "s1"},
            "likes": 1,
            "viewerCount": 2,
            "streamId": "s1",
            "seq": 1,
            "epoch": "e",
        }
    )
    assert decode(nested) == orjson.loads(nested)


def test_digests() -> None:
    own = {
        "type": "chat_message",
        "id": 5,
        "seq": 5,
        "username": "lt0",
        "message": messages.chat_text(RUN, 1, 9, 123456789),
        "streamId": "s",
        "epoch": "e",
    }
    d = classify(orjson.dumps(own), PREFIX)
    assert d == EventDigest(CHAT, "s", 5, "e", own, OwnMark(1, 9, 123456789), False)
    assert isinstance(d, EventDigest) and d.kind is CHAT
    other = digest_event(dict(own, message=messages.chat_text("run2", 1, 9, 1)), CHAT, PREFIX)
    assert other.own is None and other.foreign
    anyone = digest_event(dict(own, message="hello"), CHAT, PREFIX)
    assert anyone.own is None and not anyone.foreign
    broken = digest_event(dict(own, message="lt1 run1 x 9 1"), CHAT, PREFIX)
    assert broken.own is None and not broken.foreign
    upd = {
        "type": "stream_update",
        "viewerCount": 1,
        "likes": 0,
        "likedBy": [],
        "streamId": "s",
        "seq": 6,
        "epoch": "e",
    }
    batch = {"type": "batch", "streamId": "s", "events": [own, upd, {"type": "stream_stopped", "seq": 7}, 3]}
    got = classify(orjson.dumps(batch), PREFIX)
    assert isinstance(got, BatchDigest) and len(got.events) == 3
    first, second, third = got.events
    assert isinstance(first, EventDigest) and first.kind is CHAT
    assert isinstance(second, EventDigest) and second.kind is UPDATE
    assert third == {"type": "stream_stopped", "seq": 7}
    assert got.summary is None  # another kind of event inside: applied event by event
    assert classify(b'{"type":"batch","events":3}', PREFIX) is BATCH_WITHOUT_EVENTS
    assert classify(b'{"type":"registered"}', PREFIX) == OtherFrame({"type": "registered"})
    assert classify(b"[1,2]", PREFIX) is NOT_AN_OBJECT
    assert classify(b"{nope", PREFIX) is NOT_JSON
    for text in ("hi", messages.chat_text(RUN, 2, 3, 4, pad_to=80)):
        mark = messages.parse_chat(text)
        assert messages.parse_own(text, PREFIX) == (
            None if mark is None else OwnMark(mark.worker, mark.n, mark.send_ns)
        )


def server_frames() -> list[dict[str, Any]]:
    chat = {
        "type": "chat_message",
        "id": 3,
        "seq": 3,
        "username": "lt0",
        "message": messages.chat_text(RUN, 0, 3, 1000),
        "isAdmin": False,
        "timestamp": "t",
        "streamId": "s",
        "epoch": "e",
    }
    update = {
        "type": "stream_update",
        "viewerCount": 4,
        "likes": 9,
        "likedBy": [],
        "streamId": "s",
        "seq": 4,
        "epoch": "e",
    }
    v2_update = {
        "type": "stream_update",
        "viewerCount": 4,
        "likes": 9,
        "likedByAdded": ["a"],
        "likedByRemoved": [],
        "streamId": "s",
        "seq": 4,
        "epoch": "e",
    }
    long_update = dict(update, likedBy=[f"lt-{RUN}-0-{i}" for i in range(300)])
    return [
        chat,
        update,
        long_update,
        {"type": "batch", "streamId": "s", "events": [chat, v2_update]},
        {"type": "chat_history", "messages": [], "streamId": "s", "seq": 2, "epoch": "e"},
    ]


def test_a_frame_in_another_layout_is_recognised_the_same() -> None:
    for frame in server_frames():
        assert not relaid(frame).startswith(b'{"type"')
        compact, spaced = classify(orjson.dumps(frame), PREFIX), classify(relaid(frame), PREFIX)
        assert type(compact) is type(spaced) and type(compact) is not frames.BadFrame
        if isinstance(compact, BatchDigest):
            assert isinstance(spaced, BatchDigest) and compact.events == spaced.events
            assert compact.summary is not None and spaced.summary is not None
            for name in ("stream_id", "first_seq", "last_seq", "epoch", "events", "sends", "foreign", "updates"):
                assert getattr(compact.summary, name) == getattr(spaced.summary, name)
        elif isinstance(compact, EventDigest) and "likedBy" in frame and len(frame["likedBy"]) > 100:
            assert isinstance(spaced, EventDigest)  # the partial decode leaves the list out; the rest is equal
            assert dataclasses.replace(compact, event={}) == dataclasses.replace(spaced, event={})
            assert {k: v for k, v in spaced.event.items() if k != "likedBy"} == compact.event
        else:
            assert compact == spaced


def test_the_cache_is_bounded_and_forgets_all_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "CACHE_MAX_ENTRIES", 3)
    cache = FrameCache(PREFIX)
    digests = []
    for seq in range(1, 5):
        p = orjson.dumps({"type": "stream_update", "likes": seq, "streamId": "s", "seq": seq, "epoch": "e"})
        d = classify(p, PREFIX)
        assert isinstance(d, EventDigest)
        digests.append(d)
        cache.remember(FrameCache.key(p), p, d)
    assert [c.digest for c in cache.entries.values()] == [digests[3]]  # the fourth found it full: cleared
    assert cache.size == len(next(iter(cache.entries.values())).frame)
    long = b'{"type":"registered","x":"' + b"y" * 400 + b'"}'
    assert FrameCache.key(long) == long[: frames.CACHE_KEY_HEAD] + long[-frames.CACHE_KEY_TAIL :]
