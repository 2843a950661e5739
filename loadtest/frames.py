"""What a viewer receives, recognised by its JSON content and worked out once per worker.

Pure (no I/O, no clock). `classify` decodes a text frame and says what it is by
its `type` field: a `chat_message` or `stream_update` becomes an `EventDigest`,
a v2 `batch` a `BatchDigest`, any other object an `OtherFrame` (for the
viewer's generic path), anything else a `BadFrame`. Key order and spacing do
not matter. The server sends the same bytes to every viewer of a stream, so
a worker keeps the digests of the frequent kinds in a `FrameCache` keyed by
the frame's bytes: each distinct frame is decoded once per worker, and each
viewer then only applies its own checks (stream, order, its window, latency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from loadtest import messages
from loadtest.messages import OwnMark

CHAT: Final = "chat_message"
UPDATE: Final = "stream_update"
BATCH: Final = "batch"
CACHE_MAX_ENTRIES = 4096
CACHE_MAX_BYTES = 64 * 2**20
# Frames are looked up by their head and tail, then compared whole: hashing a
# whole batch frame (kilobytes, for every viewer) cost more than comparing it
# (measured: the lookup was the receive path's top line in the v2 profile).
CACHE_KEY_WHOLE = 256
CACHE_KEY_HEAD = 160
CACHE_KEY_TAIL = 64
# A long frame may be a stream_update whose `likedBy` lists every session that
# likes the stream (tens of kilobytes); it is decoded without that list.
BIG_FRAME = 1024
LIKED_BY = b',"likedBy":['
AFTER_LIKED_BY = b'],"streamId":"'
UPDATE_KEYS = ("type", "likes", "viewerCount", "seq", "epoch", "streamId")
loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


@dataclass(slots=True)
class EventDigest:
    """What every viewer needs of one chat_message or stream_update event, worked out once.

    `kind` is `CHAT` or `UPDATE` (these very objects: compared by identity on
    the receive path). `stream_id` and `epoch` are as sent (None if absent),
    `seq` is the event's seq if it is an int, else None. For chat, `own` is the
    mark of this run's message (None for anyone else's) and `foreign` says
    that it is another run's tester message. (A slotted class, not a tuple
    type: every viewer reads it, and slot reads are the cheapest.)"""

    kind: str
    stream_id: Any
    seq: int | None
    epoch: Any
    event: dict[str, Any]
    own: OwnMark | None
    foreign: bool


@dataclass(slots=True, eq=False)
class BatchSummary:
    """A v2 batch frame of the common kind: one stream, one epoch, consecutive
    seqs, only chat messages and updates. A viewer whose last seq is
    `first_seq - 1` applies it in a few steps instead of event by event, and
    ends exactly where the event-by-event path ends. Compared and hashed by
    identity: the recorder files a batch's receipts under it."""

    stream_id: Any
    first_seq: int
    last_seq: int
    epoch: Any
    events: int
    sends: list[int]  # send times of this run's chat messages, in order
    min_send: int  # the earliest of them (0 when there are none)
    foreign: int  # other runs' tester messages
    updates: list[EventDigest]  # the stream_updates, in order
    send_array: np.ndarray  # `sends`, for the recorder's bulk latency
    by_second: dict[int, int] | None = None  # send second (of the worker's start) -> sends, when first needed


@dataclass(slots=True, eq=False)
class BatchDigest:
    """A v2 batch frame: its chat messages and updates as digests, its other events as
    they are (for the generic path), and its `summary` if it is of the common kind."""

    events: list[EventDigest | dict[str, Any]]
    summary: BatchSummary | None


@dataclass(slots=True, frozen=True)
class OtherFrame:
    """A JSON object of any other type (registration, snapshot, ack, error ...), decoded."""

    frame: dict[str, Any]


@dataclass(slots=True, frozen=True)
class BadFrame:
    """A frame the viewer cannot use; `reason` is the error it is counted under."""

    reason: str


NOT_JSON = BadFrame("bad frame: not JSON")
NOT_AN_OBJECT = BadFrame("bad frame: not an object")
BATCH_WITHOUT_EVENTS = BadFrame("bad frame: batch without events")

Digest = EventDigest | BatchDigest
"""The kinds a worker keeps in its `FrameCache`."""


def classify(p: bytes, own_prefix: str) -> EventDigest | BatchDigest | OtherFrame | BadFrame:
    """What the frame `p` is, by its JSON content. `own_prefix` is what this run's
    chat texts start with (`messages.own_prefix`)."""
    try:
        frame = loads(p) if len(p) <= BIG_FRAME else decode(p)
    except JSONDecodeError:
        return NOT_JSON
    if frame.__class__ is not dict:
        return NOT_AN_OBJECT
    kind = frame.get("type")
    if kind == CHAT:
        return digest_event(frame, CHAT, own_prefix)
    if kind == UPDATE:
        return digest_event(frame, UPDATE, own_prefix)
    if kind == BATCH:
        events = frame.get("events")
        if not isinstance(events, list):
            return BATCH_WITHOUT_EVENTS
        return digest_batch(events, own_prefix)
    return OtherFrame(frame)


def decode(p: bytes) -> Any:
    """The frame `p`, decoded; a long `stream_update` without its `likedBy` list.

    `likedBy` (every session that likes the stream) is not needed, so a frame
    longer than `BIG_FRAME` that holds `,"likedBy":[ ... ],"streamId":"` is
    decoded as its head (up to `likedBy`) and its tail (from the `streamId`
    after it). Both must parse as objects (so the cuts are at the top level:
    `"` is always escaped inside JSON strings) and together hold a `type` of
    `stream_update` and every key the viewer reads, else the whole frame is
    decoded. The values read are the same as a full decode's; the skipped
    bytes are not checked. Raises `orjson.JSONDecodeError` if `p` is not JSON."""
    if len(p) > BIG_FRAME:
        i = p.find(LIKED_BY)
        if i > 0:
            j = p.rfind(AFTER_LIKED_BY)
            if j >= i + len(LIKED_BY):
                try:
                    head = loads(p[:i] + b"}")
                    tail = loads(b"{" + p[j + 2 :])
                except JSONDecodeError:
                    return loads(p)
                if isinstance(head, dict) and isinstance(tail, dict):
                    head.update(tail)
                    if head.get("type") == UPDATE and all(k in head for k in UPDATE_KEYS):
                        return head
    return loads(p)


def digest_event(ev: dict[str, Any], kind: str, own_prefix: str) -> EventDigest:
    """The digest of a chat_message (`kind` is `CHAT`) or stream_update (`UPDATE`) event."""
    seq = ev.get("seq")
    own: OwnMark | None = None
    foreign = False
    if kind is CHAT:
        text = ev.get("message")
        if isinstance(text, str) and text.startswith(own_prefix):
            own = messages.parse_own(text, own_prefix)
        elif messages.parse_chat(text) is not None:
            foreign = True
    return EventDigest(
        kind, ev.get("streamId"), seq if isinstance(seq, int) else None, ev.get("epoch"), ev, own, foreign
    )


def digest_batch(events: list[Any], own_prefix: str) -> BatchDigest:
    """A batch frame's events (those that are objects) as digests, and its summary."""
    out: list[EventDigest | dict[str, Any]] = []
    for ev in events:
        if isinstance(ev, dict):
            kind = ev.get("type")
            if kind == CHAT:
                out.append(digest_event(ev, CHAT, own_prefix))
            elif kind == UPDATE:
                out.append(digest_event(ev, UPDATE, own_prefix))
            else:
                out.append(ev)
    return BatchDigest(out, summarize(out))


def summarize(events: list[EventDigest | dict[str, Any]]) -> BatchSummary | None:
    """The summary of a batch's events if they are of the common kind, else None."""
    if not events:
        return None
    first = events[0]
    if not isinstance(first, EventDigest) or first.seq is None:
        return None
    sid, epoch = first.stream_id, first.epoch
    sends: list[int] = []
    updates: list[EventDigest] = []
    foreign = 0
    expected = first.seq
    for d in events:
        if not isinstance(d, EventDigest) or d.stream_id != sid or d.seq != expected or d.epoch != epoch:
            return None
        expected += 1
        if d.kind is CHAT:
            if d.foreign:
                foreign += 1
            elif d.own is not None:
                sends.append(d.own.send_ns)
        else:
            updates.append(d)
    return BatchSummary(
        sid,
        first.seq,
        expected - 1,
        epoch,
        len(events),
        sends,
        min(sends, default=0),
        foreign,
        updates,
        np.array(sends, dtype=np.int64),
    )


@dataclass(slots=True)
class CachedFrame:
    """A frame a worker has seen (all of its bytes) and its digest."""

    frame: bytes
    digest: Digest


class FrameCache:
    """The digests of the frames one worker has seen, so each distinct frame is
    decoded once per worker, however many of its viewers receive it.

    `entries` maps a frame's key (`key`: the frame itself when short, else its
    head and tail) to the whole frame and its digest: a hit counts only if the
    frame is equal, byte for byte. Bounded by `CACHE_MAX_ENTRIES` and
    `CACHE_MAX_BYTES`: when full, everything is forgotten at once (the next
    frames are simply decoded again). The receive path reads `entries`
    directly (a call per frame would cost more than the lookup)."""

    __slots__ = ("entries", "own_prefix", "size")

    def __init__(self, own_prefix: str) -> None:
        self.own_prefix = own_prefix
        self.entries: dict[bytes, CachedFrame] = {}
        self.size = 0  # bytes of the frames held

    @staticmethod
    def key(p: bytes) -> bytes:
        return p if len(p) <= CACHE_KEY_WHOLE else p[:CACHE_KEY_HEAD] + p[-CACHE_KEY_TAIL:]

    def remember(self, key: bytes, p: bytes, digest: Digest) -> None:
        """Keep `p`'s digest for the other viewers (`key` is `FrameCache.key(p)`)."""
        if len(self.entries) >= CACHE_MAX_ENTRIES or self.size > CACHE_MAX_BYTES:
            self.entries.clear()
            self.size = 0
        self.entries[key] = CachedFrame(p, digest)
        self.size += len(p)
