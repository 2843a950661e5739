"""One simulated app connection watching one stream, and what the viewers of a worker share.

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
- likes: the count and viewer count of the newest `stream_update` seen.
- reconnects: a connection that the server closes (or that breaks) is
  reconnected like the apps do (1 s, 2 s, 4 s ... up to `max_reconnects` tries
  in a row); v2 viewers resume from the last seq seen.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from loadtest import messages, wsclient
from loadtest.frames import (
    CACHE_KEY_HEAD,
    CACHE_KEY_TAIL,
    CACHE_KEY_WHOLE,
    CHAT,
    UPDATE,
    BatchDigest,
    BatchSummary,
    EventDigest,
    FrameCache,
    OtherFrame,
    classify,
    digest_event,
)
from loadtest.plan import ViewerSpec, WorkerPlan
from loadtest.shipping import Window
from loadtest.stats import BatchReceipts, SecondRecorder, error_kind

SNAPSHOT_TYPES = frozenset({"stream_started", "pinned_products_updated", "chat_history", "stream_update"})


class ResumePoint(NamedTuple):
    """Where a v2 viewer asks to resume from after a reconnect: the last seq it saw, in that epoch."""

    seq: int | None
    epoch: str | None


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


@dataclass(slots=True, eq=False)
class Crowd:
    """What the viewers of one worker share: the plan, the recorder, the frame cache,
    who is watching each stream, the chat messages awaiting their v2 ack, and when
    a `stream_update` last arrived per stream (for the worker's settling)."""

    plan: WorkerPlan
    rec: SecondRecorder
    frames: FrameCache
    connect_slots: asyncio.Semaphore
    ready_by_stream: dict[str, ReadySet] = field(default_factory=dict)
    pending_acks: dict[str, int] = field(default_factory=dict)  # clientMsgId -> send time
    last_update_ns: dict[str, int] = field(default_factory=dict)
    batches: int = 0  # v2 batch frames received, over all viewers

    def ready(self, stream_id: str) -> ReadySet:
        got = self.ready_by_stream.get(stream_id)
        if got is None:
            got = self.ready_by_stream[stream_id] = ReadySet()
        return got


class Viewer:
    """One simulated app connection watching one stream.

    Frames arrive through `on_message`, called by the WebSocket client
    (`wsclient`) for each text message with the time it was read. Chat
    messages, counter updates and batches of them are looked up in the
    worker's `FrameCache` (decoded once per worker) and take a short path;
    every other frame goes through `_handle`."""

    __slots__ = (
        "closed_at",
        "crowd",
        "epoch",
        "frames",
        "initial_likes",
        "join_timer",
        "joined",
        "last_likes",
        "last_likes_seq",
        "last_n",
        "last_seq",
        "last_viewer_count",
        "missing",
        "pin_max",
        "ready",
        "rec",
        "resume_from",
        "sid",
        "spec",
        "stopped",
        "stopping",
        "t0",
        "task",
        "timed_out",
        "toggles",
        "updates",
        "window_start",
        "windows",
        "ws",
    )

    def __init__(self, crowd: Crowd, spec: ViewerSpec) -> None:
        self.crowd = crowd
        self.spec = spec
        self.rec = crowd.rec
        self.frames = crowd.frames
        self.sid = spec.stream_id
        self.ws: wsclient.WsClient | None = None
        self.ready = False
        self.stopping = False
        self.last_seq: int | None = None
        self.epoch: str | None = None
        self.missing: set[int] = set()
        self.window_start: int | None = None
        self.windows: list[Window] = []
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
        self.resume_from: ResumePoint | None = None
        self.joined = False
        self.timed_out = False
        self.t0 = 0
        self.join_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Connect, and reconnect like the apps do, until stopped or out of tries."""
        crowd = self.crowd
        failures = 0
        first = True
        while not self.stopping:
            if not first:
                delay = min(2 ** (failures - 1), 16) if failures else 1
                await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
                if self.stopping:
                    return
                crowd.rec.count(time.time_ns(), "reconnects")
            first = False
            opened = await self.connect_once()
            if self.stopping:
                return
            failures = 0 if opened else failures + 1
            if failures > crowd.plan.max_reconnects:
                crowd.rec.error(time.time_ns(), "gave up reconnecting")
                return

    async def connect_once(self) -> bool:
        """One connection, from connect to close. True if it got to watching."""
        crowd = self.crowd
        plan = crowd.plan
        rec = crowd.rec
        t0 = time.time_ns()
        rec.count(t0, "connect_attempts")
        try:
            async with crowd.connect_slots:
                ws = await wsclient.connect(self.spec.ws_url, self.on_message, timeout=plan.connect_timeout)
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            now = time.time_ns()
            rec.count(now, "connect_failed")
            rec.error(now, "connect: " + connect_error_kind(e))
            return False
        self.ws = ws
        t_open = time.time_ns()
        rec.record(t_open, "handshake", (t_open - t0) // 1000)
        self.t0 = t0
        self.joined = self.timed_out = False
        join_timer = self.join_timer = asyncio.get_running_loop().call_later(plan.connect_timeout, self._join_timeout)
        # A new connection starts a new seq baseline; a v2 resume continues the old one.
        self.resume_from = ResumePoint(self.last_seq, self.epoch) if plan.protocol >= 2 else None
        self.last_seq = None
        self.missing.clear()
        register: dict[str, Any] = {
            "type": "register",
            "sessionId": self.spec.session_id,
            "streamId": self.spec.stream_id,
        }
        if plan.protocol >= 2:
            register["protocol"] = 2
            if self.resume_from is not None and self.resume_from.seq is not None:
                register["resume"] = {"seq": self.resume_from.seq, "epoch": self.resume_from.epoch}
        ws.send_text(orjson.dumps(register))
        await asyncio.shield(ws.closed)  # frames are handled by on_message meanwhile
        join_timer.cancel()
        now = time.time_ns()
        if not self.stopping:
            if self.timed_out:
                rec.error(now, "connect: no snapshot in time")
            else:
                rec.count(now, "unexpected_closes")
                if ws.failure is not None:
                    rec.error(now, f"receive: {ws.failure}")
                else:
                    code = ws.close_code
                    rec.error(now, f"closed by server: {code}" if code is not None else "connection lost")
            if not self.joined:
                rec.count(now, "connect_failed")
        self.end_window(now, keep_for_resume=plan.protocol >= 2)
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
            self.crowd.ready(self.sid).discard(self)
        self.ready = False
        if self.window_start is not None and not keep_for_resume:
            self.windows.append(Window(self.window_start, now))
            self.window_start = None
        self.closed_at = now if keep_for_resume else None

    def end_at_stop(self, now: int) -> None:
        """The run is over: a v2 viewer still reconnecting has its window end at the drop."""
        if self.window_start is not None:
            self.windows.append(Window(self.window_start, now if self.ready else (self.closed_at or now)))
            self.window_start = None

    def set_ready(self, now: int, resumed: bool) -> None:
        if not self.ready:
            self.ready = True
            self.crowd.ready(self.sid).add(self)
        if not resumed:
            if self.window_start is not None:  # v2 resume failed: the old window ended at the disconnect
                self.windows.append(Window(self.window_start, self.closed_at or now))
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
        frames = self.frames
        # FrameCache.key and the lookup, inline: this runs for every frame of every viewer.
        key = p if len(p) <= CACHE_KEY_WHOLE else p[:CACHE_KEY_HEAD] + p[-CACHE_KEY_TAIL:]
        hit = frames.entries.get(key)
        if hit is not None and hit.frame == p:
            d = hit.digest
        else:
            got = classify(p, frames.own_prefix)
            if isinstance(got, (EventDigest, BatchDigest)):
                d = got
                frames.remember(key, p, d)
            else:  # not one of the frequent kinds (or unusable): the generic path, never cached
                if isinstance(got, OtherFrame):
                    self._handle(got.frame, now)
                else:
                    rec.error(now, got.reason)
                if self.ready and not self.joined:
                    self._joined(now)
                return
        if isinstance(d, EventDigest):
            self._hot(d, now)
        else:
            self._batch_frame(d, now)

    def _batch_frame(self, b: BatchDigest, now: int) -> None:
        """A v2 batch frame: whole if it follows on, else event by event."""
        self.crowd.batches += 1
        s = b.summary
        if s is None or not self._batch(s, now):
            for e in b.events:
                if isinstance(e, EventDigest):
                    self._hot(e, now)
                else:
                    self._event(e, e.get("type"), now)
        if self.ready and not self.joined:
            self._joined(now)

    def _batch(self, b: BatchSummary, now: int) -> bool:
        """A whole batch frame of this stream that follows on from the last seq
        seen: what `_hot` would do for each of its events, at once. False (and
        nothing done) for any other frame: the caller goes event by event."""
        last = self.last_seq
        if b.stream_id != self.sid or last is None or b.first_seq != last + 1 or b.epoch != self.epoch:
            return False
        rec = self.rec
        rec.events += b.events
        self.last_seq = b.last_seq
        sends = b.sends
        if sends:
            rec.deliveries += len(sends)
            held = rec.batch_receipts.get(b)
            if held is None:
                rec.batch_receipts[b] = BatchReceipts(b.send_array, [now])
            else:
                held.received.append(now)
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
        for u in b.updates:
            self._update(u.event, u.seq, now)
        return True

    def _hot(self, d: EventDigest, now: int) -> None:
        """A chat_message or stream_update event: order, then the receipt or the counters."""
        sid = d.stream_id
        if sid is not None and sid != self.sid:
            return
        rec = self.rec
        rec.events += 1
        seq = d.seq
        if seq is not None:
            last = self.last_seq
            if last is not None and seq == last + 1 and d.epoch == self.epoch:
                self.last_seq = seq  # in order: what _order would do, without the call
            else:
                self._order(d.event, d.kind, seq, now)
        if d.kind is not CHAT:
            self._update(d.event, seq, now)
            return
        own = d.own
        if own is None:
            if d.foreign:
                rec.foreign_deliveries += 1
            return
        send_ns = own.send_ns
        rec.deliveries += 1
        rec.latency.append((now - send_ns) // 1000)
        start = self.window_start
        if start is not None and send_ns >= start:
            sec = (send_ns - rec.start_ns) // 1_000_000_000
            rbs = rec.recv_by_send
            rbs[sec] = rbs.get(sec, 0) + 1
        else:
            rec.recv_unexpected += 1
        if "seq" not in d.event:  # no sequence numbers: order by content, per sender
            worker, n = own.worker, own.n
            last_n = self.last_n.get(worker, -1)
            if n < last_n:
                rec.count(now, "content_reorders")
            elif n == last_n:
                rec.count(now, "content_duplicates")
            else:
                self.last_n[worker] = n

    def _handle(self, frame: dict[str, Any], now: int) -> bool:
        """A decoded frame of any type but the cached ones; True if it was meaningful for joining."""
        return self._event(frame, frame.get("type"), now)

    def _event(self, ev: dict[str, Any], kind: Any, now: int) -> bool:
        crowd = self.crowd
        rec = crowd.rec
        sid = ev.get("streamId")
        if kind in (CHAT, UPDATE):
            self._hot(digest_event(ev, CHAT if kind == CHAT else UPDATE, crowd.frames.own_prefix), now)
            return False
        if kind == "error":
            if "clientMsgId" in ev:
                crowd.pending_acks.pop(ev["clientMsgId"], None)
                rec.count(now, "chat_rejected")
            rec.error(now, error_kind(ev.get("message")))
            return False
        if kind == "ack":
            cid = ev.get("clientMsgId")
            send_ns = crowd.pending_acks.pop(cid, None) if isinstance(cid, str) else None
            if send_ns is not None:
                rec.count(now, "acks")
                rec.record(now, "ack", (now - send_ns) // 1000)
            return False
        if kind == "resumed":
            rec.count(now, "resumed")
            if self.resume_from is not None:
                self.last_seq, self.epoch = self.resume_from
            self.set_ready(now, resumed=True)
            return True
        if kind == "resume_failed":
            rec.count(now, "resume_failed")
            return False
        if kind in ("registered", "pong", "admin_registered"):
            return False
        if sid is not None and sid != self.sid:
            return False  # stream_started / stream_stopped of other streams go to everyone
        rec.events += 1
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
        rec = self.rec
        epoch = ev.get("epoch")
        if epoch != self.epoch or self.last_seq is None:
            if self.epoch is not None and epoch != self.epoch:
                rec.count(now, "epoch_changes")
            self.epoch = epoch
            self.last_seq = seq
            self.missing.clear()
            return
        last = self.last_seq
        if seq == last + 1:
            self.last_seq = seq
        elif seq > last + 1:
            rec.count(now, "seq_gaps", seq - last - 1)
            if len(self.missing) < 10_000:
                self.missing.update(range(last + 1, min(seq, last + 1 + 10_000)))
            self.last_seq = seq
        elif seq == last and kind in SNAPSHOT_TYPES:
            pass  # snapshot frames (and a resync's stream_update) repeat the current seq
        elif seq in self.missing:
            self.missing.discard(seq)
            rec.count(now, "reordered")
        else:
            rec.count(now, "duplicates")

    def _update(self, ev: dict[str, Any], seq: Any, now: int) -> None:
        self.crowd.last_update_ns[self.sid] = now
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
            got = messages.parse_pin(self.crowd.plan.run_id, product)
            if got is not None and got.n > self.pin_max:
                self.pin_max = got.n
                if self.ready:  # a snapshot's pins are not a delivery of the pin event
                    self.rec.count(now, "pins_received")
                    self.rec.record(now, "pin", (now - got.send_ns) // 1000)


def connect_error_kind(e: BaseException) -> str:
    """A connection failure as the kind it is counted under."""
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
