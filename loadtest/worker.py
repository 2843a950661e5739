"""One load-generating process: many viewers on asyncio, and the chat/like senders.

What a viewer measures (all stamped with `time.time_ns()` of this machine):

- connection: `handshake` from starting the TCP connect to the WebSocket
  being open; `connect` from starting the connect to having the stream's
  snapshot (`chat_history` after `register`, or `resumed` in v2), i.e. to
  watching. A failure is counted by kind (timeout, refused, http_503, ...).
- latency: for each chat message of this run that arrives, receipt time minus
  the send time written in the message (see `messages.py`).
- loss: the viewer's *windows* (snapshot received → connection ended) are
  reported at the end; a receipt whose send time lies inside the current
  window is an expected receipt. The parent counts what was expected.
- order: every stream event carries `seq`; a jump forward counts the skipped
  events as gaps, an older seq that fills a gap counts as reordered, one that
  does not as a duplicate. Without `seq` (another server), order is checked by
  content: each sender's numbers must grow.
- likes: each viewer keeps the count of the newest `stream_update` it saw;
  the report compares it with the taps sent. Counts are coalesced (a few
  updates a second), so the comparison waits for the stream to settle: after
  the drain, while likes were sent, the worker keeps receiving until no
  `stream_update` has arrived for `SETTLE_QUIET_S` (longer than the stream's
  update interval), at most `settle` seconds more. The count must then be
  exactly right: the wait only lets the last update arrive, it forgives nothing.
- reconnects: a connection that the server closes (or that breaks) is
  reconnected like the apps do (1 s, 2 s, 4 s ... up to `max_reconnects` tries
  in a row); v2 viewers resume from the last seq seen.
"""

from __future__ import annotations

import asyncio
import errno
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from loadtest import messages, wsclient
from loadtest.stats import SecondRecorder, error_kind
from runtime.gc_policy import freeze_startup

SNAPSHOT_TYPES = frozenset({"stream_started", "pinned_products_updated", "chat_history", "stream_update"})

# The server encodes every event with orjson: compact, `type` first. Frames of
# these two kinds (nearly all of them in v1) skip the generic dispatch.
CHAT_PREFIX = b'{"type":"chat_message",'
UPDATE_PREFIX = b'{"type":"stream_update",'
BATCH_PREFIX = b'{"type":"batch",'
CHAT = "chat_message"
UPDATE = "stream_update"
FOREIGN = "foreign"  # a digest's mark: a tester's chat message of another run
CACHE_MAX_ENTRIES = 4096
CACHE_MAX_BYTES = 64 * 2**20
# Frames are looked up by their head and tail, then compared whole: hashing a
# whole batch frame (kilobytes, for every viewer) cost more than comparing it
# (measured: the lookup was the receive path's top line in the v2 profile).
CACHE_KEY_WHOLE = 256
CACHE_KEY_HEAD = 160
CACHE_KEY_TAIL = 64
LIKED_BY = b',"likedBy":['
AFTER_LIKED_BY = b'],"streamId":"'
BIG_UPDATE = 1024
SETTLE_QUIET_S = 1.0  # 4 of the server's update intervals (250 ms) without a stream_update: settled
loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def decode_update(p: bytes) -> Any:
    """A `stream_update` frame, decoded; a long one without decoding its `likedBy` list.

    `likedBy` (every session that likes the stream: tens of kilobytes with
    thousands of viewers) is not needed, so a frame longer than `BIG_UPDATE`
    is decoded as its head (up to `likedBy`) and its tail (from the `streamId`
    after it). Both must parse as objects (so the cuts are at the top level:
    `"` is always escaped inside JSON strings) and hold every key the viewer
    reads, else the whole frame is decoded. The values read are the same as a
    full decode's; the skipped bytes are not checked."""
    if len(p) > BIG_UPDATE:
        i = p.find(LIKED_BY)
        j = p.rfind(AFTER_LIKED_BY)
        if 0 < i and j >= i + len(LIKED_BY):
            try:
                head = loads(p[:i] + b"}")
                tail = loads(b"{" + p[j + 2:])
            except JSONDecodeError:
                return loads(p)
            if (isinstance(head, dict) and isinstance(tail, dict) and "likes" in head and "viewerCount" in head
                    and "seq" in tail and "epoch" in tail and "streamId" in tail):
                head.update(tail)
                return head
    return loads(p)


@dataclass(slots=True)
class ViewerSpec:
    stream_id: str
    ws_url: str
    session_id: str


@dataclass(slots=True)
class WorkerPlan:
    """What one worker does. Rates are this worker's share, per stream."""

    index: int
    run_id: str
    viewers: list[ViewerSpec]
    ramp_rate: float
    duration: float
    drain: float
    chat_rate: dict[str, float]
    like_rate: dict[str, float]
    chat_stop_at: dict[str, float]
    chat_start: float = 0.0
    protocol: int = 1
    message_bytes: int = 0
    connect_timeout: float = 10.0
    max_reconnects: int = 5
    connect_concurrency: int = 200
    settle: float = 10.0  # after the drain, at most this much longer until like counts stop changing


Digest = tuple[str, Any, "int | None", Any, "dict[str, Any]", Any]
"""What every viewer needs of a chat_message or stream_update event, worked out once:
(kind, streamId, seq if an int else None, epoch, the event, mark), where mark is,
for chat, (worker, n, sendNs) of this run's message, FOREIGN for another run's,
None for anyone else's."""


def digest_event(ev: dict[str, Any], kind: str, own_prefix: str) -> Digest:
    """The digest of a chat_message (`kind` CHAT) or stream_update (UPDATE) event."""
    seq = ev.get("seq")
    mark: Any = None
    if kind is CHAT:
        text = ev.get("message")
        if isinstance(text, str) and text.startswith(own_prefix):
            mark = messages.parse_own(text, own_prefix)
        elif messages.parse_chat(text) is not None:
            mark = FOREIGN
    return (kind, ev.get("streamId"), seq if isinstance(seq, int) else None, ev.get("epoch"), ev, mark)


class Batch(list):  # type: ignore[type-arg]
    """A v2 batch frame's digests (a list, as before), plus what a viewer needs
    of the whole frame when it is the common kind (`summarize`): one stream,
    consecutive seqs, only chat messages and updates. A viewer that is in
    order then applies the frame in a few steps instead of event by event, and
    ends exactly where the event-by-event path (`Viewer._hot`) would."""

    __slots__ = ("fast", "sid", "first_seq", "last_seq", "epoch", "sends", "min_send", "foreign", "updates",
                 "by_second", "send_array")

    def summarize(self) -> None:
        self.fast = False
        if not self or self[0].__class__ is not tuple:
            return
        sid, first, epoch = self[0][1], self[0][2], self[0][3]
        if first is None:
            return
        sends: list[int] = []
        updates: list[tuple[dict[str, Any], int]] = []
        foreign = 0
        expected = first
        for d in self:
            if d.__class__ is not tuple:
                return
            kind, d_sid, seq, d_epoch, ev, mark = d
            if d_sid != sid or seq != expected or d_epoch != epoch:
                return
            expected += 1
            if kind is CHAT:
                if mark is FOREIGN:
                    foreign += 1
                elif mark is not None:
                    sends.append(mark[2])
            else:
                updates.append((ev, seq))
        self.sid, self.first_seq, self.last_seq, self.epoch = sid, first, expected - 1, epoch
        self.sends, self.min_send, self.foreign, self.updates = sends, min(sends, default=0), foreign, updates
        self.by_second: dict[int, int] | None = None  # send second (of the worker's start) -> sends
        self.send_array = np.array(sends, dtype=np.int64)
        self.fast = True


def digest_frame(p: bytes, own_prefix: str) -> "Digest | list[Digest | dict[str, Any]] | None":
    """A chat_message or stream_update frame as its digest; a v2 batch frame as a
    list of digests (its other events as they are, for the generic path); None
    for any other frame (or a batch without an event list). The server sends the
    same bytes to every viewer of a stream, so a worker digests each distinct
    frame once (`Worker.digests`) and each viewer only applies its own checks.
    Raises `orjson.JSONDecodeError` for a frame that is not JSON."""
    if p.startswith(CHAT_PREFIX):
        return digest_event(loads(p), CHAT, own_prefix)
    if p.startswith(UPDATE_PREFIX):
        return digest_event(decode_update(p), UPDATE, own_prefix)
    if p.startswith(BATCH_PREFIX):
        frame = loads(p)
        events = frame.get("events")
        if not isinstance(events, list):
            return None
        out = Batch()
        for ev in events:
            if isinstance(ev, dict):
                kind = ev.get("type")
                if kind == CHAT:
                    out.append(digest_event(ev, CHAT, own_prefix))
                elif kind == UPDATE:
                    out.append(digest_event(ev, UPDATE, own_prefix))
                else:
                    out.append(ev)
        out.summarize()
        return out
    return None


class Viewer:
    """One simulated app connection watching one stream.

    Frames arrive through `on_message`, called by the WebSocket client
    (`wsclient`) for each text message with the time it was read. Chat messages
    and counter updates take a short path (`orjson` decode, order check, hot
    counters of the recorder); every other frame goes through `_handle`."""

    __slots__ = ("w", "spec", "rec", "sid", "ws", "ready", "stopping", "last_seq", "epoch", "missing",
                 "window_start", "windows", "toggles", "stopped", "last_n", "pin_max", "updates", "last_likes",
                 "last_likes_seq", "initial_likes", "last_viewer_count", "task", "closed_at", "resume_from",
                 "joined", "timed_out", "t0", "join_timer")

    def __init__(self, worker: "Worker", spec: ViewerSpec) -> None:
        self.w = worker
        self.spec = spec
        self.rec = worker.rec
        self.sid = spec.stream_id
        self.ws: wsclient.WsClient | None = None
        self.ready = False
        self.stopping = False
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.missing: set[int] = set()
        self.window_start: int | None = None
        self.windows: list[tuple[int, int]] = []
        self.toggles = 0
        self.stopped = False
        self.last_n: dict[int, int] = {}
        self.pin_max = -1
        self.updates = 0
        self.last_likes: int | None = None
        self.last_likes_seq = -1
        self.initial_likes: int | None = None
        self.last_viewer_count: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed_at: int | None = None
        self.resume_from: tuple[int | None, str | None] | None = None
        self.joined = False
        self.timed_out = False
        self.t0 = 0
        self.join_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        w = self.w
        failures = 0
        first = True
        while not self.stopping:
            if not first:
                delay = min(2 ** (failures - 1), 16) if failures else 1
                await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
                if self.stopping:
                    return
                w.rec.count(time.time_ns(), "reconnects")
            first = False
            opened = await self.connect_once()
            if self.stopping:
                return
            failures = 0 if opened else failures + 1
            if failures > w.plan.max_reconnects:
                w.rec.error(time.time_ns(), "gave up reconnecting")
                return

    async def connect_once(self) -> bool:
        """One connection, from connect to close. True if it got to watching."""
        w = self.w
        t0 = time.time_ns()
        w.rec.count(t0, "connect_attempts")
        try:
            async with w.connect_slots:
                ws = await wsclient.connect(self.spec.ws_url, self.on_message, timeout=w.plan.connect_timeout)
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            now = time.time_ns()
            w.rec.count(now, "connect_failed")
            w.rec.error(now, "connect: " + connect_error_kind(e))
            return False
        self.ws = ws
        t_open = time.time_ns()
        w.rec.record(t_open, "handshake", (t_open - t0) // 1000)
        self.t0 = t0
        self.joined = self.timed_out = False
        self.join_timer = asyncio.get_running_loop().call_later(w.plan.connect_timeout, self._join_timeout)
        # A new connection starts a new seq baseline; a v2 resume continues the old one.
        self.resume_from = (self.last_seq, self.epoch) if w.plan.protocol >= 2 else None
        self.last_seq = None
        self.missing.clear()
        register: dict[str, Any] = {"type": "register", "sessionId": self.spec.session_id,
                                    "streamId": self.spec.stream_id}
        if w.plan.protocol >= 2:
            register["protocol"] = 2
            if self.resume_from is not None and self.resume_from[0] is not None:
                register["resume"] = {"seq": self.resume_from[0], "epoch": self.resume_from[1]}
        ws.send_text(orjson.dumps(register))
        await asyncio.shield(ws.closed)  # frames are handled by on_message meanwhile
        self.join_timer.cancel()
        now = time.time_ns()
        if not self.stopping:
            if self.timed_out:
                w.rec.error(now, "connect: no snapshot in time")
            else:
                w.rec.count(now, "unexpected_closes")
                if ws.failure is not None:
                    w.rec.error(now, f"receive: {ws.failure}")
                else:
                    code = ws.close_code
                    w.rec.error(now, f"closed by server: {code}" if code is not None else "connection lost")
            if not self.joined:
                w.rec.count(now, "connect_failed")
        self.end_window(now, keep_for_resume=w.plan.protocol >= 2)
        return self.joined

    def _join_timeout(self) -> None:
        if not self.joined and self.ws is not None:
            self.timed_out = True
            self.ws.start_close()

    def _joined(self, now: int) -> None:
        """The viewer got its snapshot: the connection counts as a success."""
        self.joined = True
        if self.join_timer is not None:
            self.join_timer.cancel()
        self.rec.count(now, "connect_ok")
        self.rec.record(now, "connect", (now - self.t0) // 1000)

    def end_window(self, now: int, keep_for_resume: bool = False) -> None:
        """The connection ended: close the window (v2 keeps it open until we know if resuming worked)."""
        if self.ready:
            self.w.ready_by_stream[self.spec.stream_id].discard(self)
        self.ready = False
        if self.window_start is not None and not keep_for_resume:
            self.windows.append((self.window_start, now))
            self.window_start = None
        self.closed_at = now if keep_for_resume else None

    def set_ready(self, now: int, resumed: bool) -> None:
        if not self.ready:
            self.ready = True
            self.w.ready_by_stream[self.spec.stream_id].add(self)
        if not resumed:
            if self.window_start is not None:  # v2 resume failed: the old window ended at the disconnect
                self.windows.append((self.window_start, self.closed_at or now))
            self.window_start = now
            self.missing.clear()
        self.closed_at = None

    # ------------------------------------------------------------ frames

    def on_message(self, p: bytes, now: int) -> None:
        """One text message, read at `now` (the receive path: keep it short)."""
        rec = self.rec
        if not rec.lo <= now < rec.hi:
            rec.roll(now)
        rec.frames += 1
        rec.bytes += len(p)
        w = self.w
        key = p if len(p) <= CACHE_KEY_WHOLE else p[:CACHE_KEY_HEAD] + p[-CACHE_KEY_TAIL:]
        hit = w.digests.get(key)
        d = hit[1] if hit is not None and hit[0] == p else None
        if d is None:
            try:
                d = digest_frame(p, w.own_prefix)
            except JSONDecodeError:
                d = None
            if d is None:  # not one of the frequent frames (or broken): the generic path says what it is
                self._handle(p, now)
                if self.ready and not self.joined:
                    self._joined(now)
                return
            w.remember(key, p, d)
        if d.__class__ is tuple:
            self._hot(d, now)  # type: ignore[arg-type]
            return
        w.batches += 1
        if d.fast and self._batch(d, now):  # type: ignore[union-attr]
            if self.ready and not self.joined:
                self._joined(now)
            return
        for e in d:  # type: ignore[union-attr]
            if e.__class__ is tuple:
                self._hot(e, now)  # type: ignore[arg-type]
            else:
                self._event(e, e.get("type"), now)  # type: ignore[union-attr]
        if self.ready and not self.joined:
            self._joined(now)

    def _batch(self, b: Batch, now: int) -> bool:
        """A whole batch frame of this stream that follows on from the last seq
        seen: what `_hot` would do for each of its events, at once. False (and
        nothing done) for any other frame: the caller goes event by event."""
        last = self.last_seq
        if b.sid != self.sid or last is None or b.first_seq != last + 1 or b.epoch != self.epoch:
            return False
        rec = self.rec
        rec.events += len(b)
        self.last_seq = b.last_seq
        sends = b.sends
        if sends:
            rec.deliveries += len(sends)
            held = rec.batch_receipts.get(id(b))
            if held is None:
                rec.batch_receipts[id(b)] = (b, [now])  # holds `b`, so its id stays its own meanwhile
            else:
                held[1].append(now)
            start = self.window_start
            rbs = rec.recv_by_send
            base = rec.start_ns
            if start is not None and b.min_send >= start:  # all inside the window: the usual case
                by_second = b.by_second
                if by_second is None:
                    by_second = b.by_second = {}
                    for s in sends:
                        sec = (s - base) // 1_000_000_000
                        by_second[sec] = by_second.get(sec, 0) + 1
                for sec, n in by_second.items():
                    rbs[sec] = rbs.get(sec, 0) + n
            else:
                for s in sends:
                    if start is not None and s >= start:
                        sec = (s - base) // 1_000_000_000
                        rbs[sec] = rbs.get(sec, 0) + 1
                    else:
                        rec.recv_unexpected += 1
        rec.foreign_deliveries += b.foreign
        for ev, seq in b.updates:
            self._update(ev, seq, now)
        return True

    def _hot(self, d: Digest, now: int) -> None:
        """A chat_message or stream_update event: order, then the receipt or the counters."""
        kind, sid, seq, epoch, ev, mark = d
        if sid is not None and sid != self.sid:
            return
        rec = self.rec
        rec.events += 1
        if seq is not None:
            last = self.last_seq
            if last is not None and seq == last + 1 and epoch == self.epoch:
                self.last_seq = seq  # in order: what _order would do, without the call
            else:
                self._order(ev, kind, seq, now)
        if kind is not CHAT:
            self._update(ev, seq, now)
            return
        if mark is None:
            return
        if mark is FOREIGN:
            rec.foreign_deliveries += 1
            return
        send_ns = mark[2]
        rec.deliveries += 1
        rec.latency.append((now - send_ns) // 1000)
        start = self.window_start
        if start is not None and send_ns >= start:
            sec = (send_ns - rec.start_ns) // 1_000_000_000
            rbs = rec.recv_by_send
            rbs[sec] = rbs.get(sec, 0) + 1
        else:
            rec.recv_unexpected += 1
        if "seq" not in ev:  # no sequence numbers: order by content, per sender
            worker, n = mark[0], mark[1]
            last_n = self.last_n.get(worker, -1)
            if n < last_n:
                rec.count(now, "content_reorders")
            elif n == last_n:
                rec.count(now, "content_duplicates")
            else:
                self.last_n[worker] = n

    def _handle(self, raw: bytes, now: int) -> bool:
        """Any frame (after its counting); True if it was meaningful for joining."""
        w = self.w
        try:
            frame = loads(raw)
        except JSONDecodeError:
            w.rec.error(now, "bad frame: not JSON")
            return False
        if not isinstance(frame, dict):
            w.rec.error(now, "bad frame: not an object")
            return False
        kind = frame.get("type")
        if kind == "batch":
            events = frame.get("events")
            if not isinstance(events, list):
                w.rec.error(now, "bad frame: batch without events")
                return False
            w.batches += 1
            for ev in events:
                if isinstance(ev, dict):
                    self._event(ev, ev.get("type"), now)
            return True
        return self._event(frame, kind, now)

    def _event(self, ev: dict[str, Any], kind: Any, now: int) -> bool:
        w = self.w
        sid = ev.get("streamId")
        if kind == CHAT or kind == UPDATE:
            self._hot(digest_event(ev, CHAT if kind == CHAT else UPDATE, w.own_prefix), now)
            return False
        if kind == "error":
            if "clientMsgId" in ev:
                w.pending_acks.pop(ev["clientMsgId"], None)
                w.rec.count(now, "chat_rejected")
            w.rec.error(now, error_kind(ev.get("message")))
            return False
        if kind == "ack":
            send_ns = w.pending_acks.pop(ev.get("clientMsgId"), None)
            if send_ns is not None:
                w.rec.count(now, "acks")
                w.rec.record(now, "ack", (now - send_ns) // 1000)
            return False
        if kind == "resumed":
            w.rec.count(now, "resumed")
            if self.resume_from is not None:
                self.last_seq, self.epoch = self.resume_from
            self.set_ready(now, resumed=True)
            return True
        if kind == "resume_failed":
            w.rec.count(now, "resume_failed")
            return False
        if kind in ("registered", "pong", "admin_registered"):
            return False
        if sid is not None and sid != self.sid:
            return False  # stream_started / stream_stopped of other streams go to everyone
        self.rec.events += 1
        seq = ev.get("seq")
        if isinstance(seq, int):
            self._order(ev, kind, seq, now)
        if kind == "pinned_products_updated":
            self._pins(ev, now)
        elif kind == "chat_history":
            if not self.ready:
                self.set_ready(now, resumed=False)
                return True
        elif kind == "stream_started":
            data = ev.get("streamData") or {}
            if self.initial_likes is None and isinstance(data.get("likes"), int):
                self.initial_likes = data["likes"]
        elif kind == "stream_stopped":
            self.stopped = True
        return False

    def _order(self, ev: dict[str, Any], kind: Any, seq: int, now: int) -> None:
        epoch = ev.get("epoch")
        if epoch != self.epoch or self.last_seq is None:
            if self.epoch is not None and epoch != self.epoch:
                self.w.rec.count(now, "epoch_changes")
            self.epoch = epoch
            self.last_seq = seq
            self.missing.clear()
            return
        last = self.last_seq
        if seq == last + 1:
            self.last_seq = seq
        elif seq > last + 1:
            self.w.rec.count(now, "seq_gaps", seq - last - 1)
            if len(self.missing) < 10_000:
                self.missing.update(range(last + 1, min(seq, last + 1 + 10_000)))
            self.last_seq = seq
        elif seq == last and kind in SNAPSHOT_TYPES:
            pass  # snapshot frames (and a resync's stream_update) repeat the current seq
        elif seq in self.missing:
            self.missing.discard(seq)
            self.w.rec.count(now, "reordered")
        else:
            self.w.rec.count(now, "duplicates")

    def _update(self, ev: dict[str, Any], seq: Any, now: int) -> None:
        self.w.last_update_ns[self.sid] = now
        self.updates += 1
        self.rec.stream_updates += 1
        likes = ev.get("likes")
        if isinstance(likes, int) and isinstance(seq, int) and seq >= self.last_likes_seq:
            self.last_likes, self.last_likes_seq = likes, seq
            vc = ev.get("viewerCount")
            self.last_viewer_count = vc if isinstance(vc, int) else None

    def _pins(self, ev: dict[str, Any], now: int) -> None:
        for product in ev.get("pinnedProducts") or []:
            if not isinstance(product, dict):
                continue
            got = messages.parse_pin(self.w.plan.run_id, product)
            if got is not None and got[0] > self.pin_max:
                self.pin_max = got[0]
                if self.ready:  # a snapshot's pins are not a delivery of the pin event
                    self.w.rec.count(now, "pins_received")
                    self.w.rec.record(now, "pin", (now - got[1]) // 1000)


class ReadySet:
    """The viewers of one stream that are watching: O(1) add, remove and random pick."""

    def __init__(self) -> None:
        self.items: list[Viewer] = []
        self.index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, v: Viewer) -> None:
        if id(v) not in self.index:
            self.index[id(v)] = len(self.items)
            self.items.append(v)

    def discard(self, v: Viewer) -> None:
        i = self.index.pop(id(v), None)
        if i is None:
            return
        last = self.items.pop()
        if last is not v:
            self.items[i] = last
            self.index[id(last)] = i

    def pick(self) -> Viewer | None:
        return random.choice(self.items) if self.items else None


def connect_error_kind(e: BaseException) -> str:
    if isinstance(e, wsclient.InvalidStatus):
        return f"http_{e.status}"
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, wsclient.HandshakeError):
        return f"handshake ({type(e).__name__})"
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno)).lower()
    return type(e).__name__


class Worker:
    """The viewers of one process, the senders, and the once-a-second ticks to the parent."""

    def __init__(self, plan: WorkerPlan, start_ns: int, out: Any) -> None:
        self.plan = plan
        self.start_ns = start_ns
        self.out = out
        self.rec = SecondRecorder(start_ns)
        self.viewers = [Viewer(self, s) for s in plan.viewers]
        self.ready_by_stream: dict[str, ReadySet] = {}
        for sid in [s.stream_id for s in plan.viewers] + list(plan.chat_rate) + list(plan.like_rate):
            self.ready_by_stream.setdefault(sid, ReadySet())
        self.connect_slots = asyncio.Semaphore(plan.connect_concurrency)
        self.pending_acks: dict[str, int] = {}
        self.own_prefix = messages.own_prefix(plan.run_id)
        self.digests: dict[bytes, tuple[bytes, Any]] = {}  # frame key -> (frame, digest) (see digest_frame)
        self.digest_bytes = 0
        self.batches = 0
        self.last_update_ns: dict[str, int] = {}  # stream -> when a viewer here last got a stream_update
        self.settle_s: float | None = None  # how long settling took (None: no likes sent, no wait)
        self.settled = True
        self._n = 0
        self._cpu = (time.process_time(), time.monotonic())
        self._cpu_counted = self._cpu[0]

    def remember(self, key: bytes, p: bytes, d: Any) -> None:
        """Keep a frame's digest for the other viewers (bounded: forgotten all at once when full).
        `key` is the frame's head and tail (see `CACHE_KEY_HEAD`); the whole frame is kept too,
        and a hit counts only if it is equal, byte for byte."""
        if len(self.digests) >= CACHE_MAX_ENTRIES or self.digest_bytes > CACHE_MAX_BYTES:
            self.digests.clear()
            self.digest_bytes = 0
        self.digests[key] = (p, d)
        self.digest_bytes += len(p)

    def at(self, seconds: float) -> float:
        """Seconds from now until `seconds` after the run's start."""
        return self.start_ns / 1e9 + seconds - time.time()

    async def run(self) -> None:
        await asyncio.sleep(max(self.at(0), 0))
        ticker = asyncio.create_task(self.ticker())
        ramp = asyncio.create_task(self.ramp())
        sender = asyncio.create_task(self.sender())
        await asyncio.sleep(max(self.at(self.plan.duration + self.plan.drain), 0))
        sender.cancel()
        ramp.cancel()
        if self.plan.like_rate:
            await self.settle()
        now = time.time_ns()
        for v in self.viewers:
            v.stopping = True
        for v in self.viewers:
            if v.window_start is not None:  # a v2 viewer still reconnecting: its window ended at the drop
                v.windows.append((v.window_start, now if v.ready else (v.closed_at or now)))
                v.window_start = None
        await asyncio.gather(*(close_quietly(v.ws) for v in self.viewers if v.ws is not None))
        tasks = [v.task for v in self.viewers if v.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ticker.cancel()
        self.flush(final=True)
        self.out.put(("final", self.plan.index, self.final()))

    async def ramp(self) -> None:
        rate = self.plan.ramp_rate
        for i, v in enumerate(self.viewers):
            if rate > 0:
                delay = self.at(i / rate)
                if delay > 0:
                    await asyncio.sleep(delay)
            v.task = asyncio.create_task(v.run())

    async def sender(self) -> None:
        """Chat and likes at the planned rates: every 10 ms, send what is owed."""
        owed_chat = {s: random.random() for s in self.plan.chat_rate}
        owed_like = {s: random.random() for s in self.plan.like_rate}
        last = time.monotonic()
        pad = self.plan.message_bytes
        v2 = self.plan.protocol >= 2
        while True:
            await asyncio.sleep(0.01)
            now_m = time.monotonic()
            dt, last = now_m - last, now_m
            elapsed = time.time() - self.start_ns / 1e9
            if elapsed >= self.plan.duration:
                return
            if elapsed < self.plan.chat_start:
                continue
            for sid, rate in self.plan.chat_rate.items():
                owed_chat[sid] += rate * dt
                stop_at = self.plan.chat_stop_at.get(sid)
                while owed_chat[sid] >= 1:
                    owed_chat[sid] -= 1
                    if stop_at is not None and elapsed >= stop_at:
                        continue
                    v = self.pick(sid)
                    if v is None:
                        self.rec.count(time.time_ns(), "chat_skipped")
                        continue
                    self._n += 1
                    send_ns = time.time_ns()
                    frame: dict[str, Any] = {
                        "type": "chat_message", "streamId": sid, "username": f"lt{self.plan.index}",
                        "message": messages.chat_text(self.plan.run_id, self.plan.index, self._n, send_ns, pad)}
                    if v2:
                        cid = f"{self.plan.index}-{self._n}"
                        frame["clientMsgId"] = cid
                        self.pending_acks[cid] = send_ns
                    if not v.ws.send_text(orjson.dumps(frame)):
                        if v2:
                            self.pending_acks.pop(frame["clientMsgId"], None)
                        self.rec.error(time.time_ns(), "send: connection closed")
                        continue
                    self.rec.count(send_ns, "chat_sent")
                    self.rec.sent(send_ns, sid)
            for sid, rate in self.plan.like_rate.items():
                owed_like[sid] += rate * dt
                while owed_like[sid] >= 1:
                    owed_like[sid] -= 1
                    v = self.pick(sid)
                    if v is None or v.stopped:
                        continue
                    if not v.ws.send_text(orjson.dumps({"type": "toggle_like", "sessionId": v.spec.session_id,
                                                        "streamId": sid})):
                        continue
                    v.toggles += 1
                    self.rec.count(time.time_ns(), "likes_sent")

    async def settle(self) -> None:
        """Keep receiving until no viewer here has had a `stream_update` for
        `SETTLE_QUIET_S` (the like counts have stopped changing), at most `settle` s."""
        start = time.monotonic()
        deadline = start + self.plan.settle
        streams = list(self.plan.like_rate)
        while True:
            now_ns = time.time_ns()
            last = max((self.last_update_ns.get(s, 0) for s in streams), default=0)
            if (now_ns - last) / 1e9 >= SETTLE_QUIET_S:
                break
            if time.monotonic() >= deadline:
                self.settled = False
                break
            await asyncio.sleep(0.05)
        self.settle_s = time.monotonic() - start

    @property
    def ready_count(self) -> int:
        return sum(len(r) for r in self.ready_by_stream.values())

    def pick(self, stream_id: str) -> Viewer | None:
        ready = self.ready_by_stream.get(stream_id)
        v = ready.pick() if ready is not None else None
        return None if v is None or v.stopped else v

    async def ticker(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(self.at(k) + 0.02, 0))
            k = int((time.time_ns() - self.start_ns) // 1_000_000_000) + 1
            self.flush()

    def flush(self, final: bool = False) -> None:
        cpu, wall = time.process_time(), time.monotonic()
        busy = (cpu - self._cpu[0]) / max(wall - self._cpu[1], 1e-3)
        ms = int((cpu - self._cpu_counted) * 1000)  # whole milliseconds; the rest is counted next time
        self._cpu_counted += ms / 1000
        self.rec.count(time.time_ns(), "worker_cpu_ms", ms)
        self._cpu = (cpu, wall)
        gauges = {"connected": self.ready_count, "cpuPercent": round(100 * busy)}
        ticks = self.rec.flush(None if final else time.time_ns(), gauges)
        if ticks:
            self.out.put(("ticks", self.plan.index, ticks))

    def final(self) -> dict[str, Any]:
        windows: dict[str, list[tuple[int, int]]] = {}
        streams: dict[str, dict[str, Any]] = {}
        end = time.time_ns()
        for v in self.viewers:
            sid = v.spec.stream_id
            windows.setdefault(sid, []).extend(v.windows)
            st = streams.setdefault(sid, {"toggles": 0, "likedSessions": 0, "updates": 0, "lastLikes": None,
                                          "lastLikesSeq": -1, "initialLikes": None, "viewerSeconds": 0.0,
                                          "lastViewerCount": None, "settleSeconds": self.settle_s,
                                          "settled": self.settled})
            st["toggles"] += v.toggles
            st["likedSessions"] += v.toggles % 2
            st["updates"] += v.updates
            st["viewerSeconds"] += sum(min(e, end) - s for s, e in v.windows) / 1e9
            if v.last_likes_seq > st["lastLikesSeq"]:
                st.update(lastLikes=v.last_likes, lastLikesSeq=v.last_likes_seq,
                          lastViewerCount=v.last_viewer_count)
            if st["initialLikes"] is None and v.initial_likes is not None:
                st["initialLikes"] = v.initial_likes
        return {"windows": windows, "streams": streams, "unacked": len(self.pending_acks),
                "batches": self.batches}


async def close_quietly(ws: wsclient.WsClient) -> None:
    try:
        await asyncio.wait_for(ws.close(), 3)
    except Exception:  # noqa: BLE001 - closing at the end; nothing left to measure
        pass


def worker_main(plan: WorkerPlan, out: Any, ready: Any, go: Any, start_ns: Any) -> None:
    """Process entry point: report ready, wait for the start, run, report the end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    freeze_startup()  # the tester's own collections must not show up as latency
    ready.put(plan.index)
    go.wait()

    async def main() -> None:
        await Worker(plan, int(start_ns.value), out).run()

    try:
        runner(main())
    except Exception as e:  # noqa: BLE001 - tell the parent, which reports it
        out.put(("crash", plan.index, f"{type(e).__name__}: {e}"))
        raise
