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

import orjson
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from loadtest import messages
from loadtest.stats import SecondRecorder, error_kind

SNAPSHOT_TYPES = frozenset({"stream_started", "pinned_products_updated", "chat_history", "stream_update"})


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


class Viewer:
    """One simulated app connection watching one stream."""

    __slots__ = ("w", "spec", "ws", "ready", "stopping", "last_seq", "epoch", "missing", "window_start",
                 "windows", "toggles", "stopped", "last_n", "pin_max", "updates", "last_likes",
                 "last_likes_seq", "initial_likes", "last_viewer_count", "task", "closed_at", "resume_from")

    def __init__(self, worker: "Worker", spec: ViewerSpec) -> None:
        self.w = worker
        self.spec = spec
        self.ws: Any = None
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
                self.ws = await websockets.connect(
                    self.spec.ws_url, open_timeout=w.plan.connect_timeout, max_size=2**24,
                    compression=None, ping_interval=None, max_queue=None, close_timeout=2)
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            now = time.time_ns()
            w.rec.count(now, "connect_failed")
            w.rec.error(now, "connect: " + connect_error_kind(e))
            return False
        t_open = time.time_ns()
        w.rec.record(t_open, "handshake", (t_open - t0) // 1000)
        ws = self.ws
        joined = False
        timed_out = False

        def join_timeout() -> None:
            nonlocal timed_out
            if not joined:
                timed_out = True
                asyncio.ensure_future(close_quietly(ws))

        timer = asyncio.get_running_loop().call_later(w.plan.connect_timeout, join_timeout)
        # A new connection starts a new seq baseline; a v2 resume continues the old one.
        self.resume_from = (self.last_seq, self.epoch) if w.plan.protocol >= 2 else None
        self.last_seq = None
        self.missing.clear()
        try:
            register: dict[str, Any] = {"type": "register", "sessionId": self.spec.session_id,
                                        "streamId": self.spec.stream_id}
            if w.plan.protocol >= 2:
                register["protocol"] = 2
                if self.resume_from is not None and self.resume_from[0] is not None:
                    register["resume"] = {"seq": self.resume_from[0], "epoch": self.resume_from[1]}
            await ws.send(orjson.dumps(register).decode())
            async for raw in ws:
                now = time.time_ns()
                self._handle(raw, now)
                if not joined and self.ready:
                    joined = True
                    timer.cancel()
                    w.rec.count(now, "connect_ok")
                    w.rec.record(now, "connect", (now - t0) // 1000)
        except ConnectionClosed:
            pass
        except Exception as e:  # noqa: BLE001
            w.rec.error(time.time_ns(), f"receive: {type(e).__name__}")
        timer.cancel()
        now = time.time_ns()
        if not self.stopping:
            if timed_out:
                w.rec.error(now, "connect: no snapshot in time")
            else:
                code = ws.close_code
                w.rec.count(now, "unexpected_closes")
                w.rec.error(now, f"closed by server: {code}" if code is not None else "connection lost")
            if not joined:
                w.rec.count(now, "connect_failed")
        self.end_window(now, keep_for_resume=w.plan.protocol >= 2)
        return joined

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

    def _handle(self, raw: str | bytes, now: int) -> bool:
        """Handle one frame; True if it was meaningful for joining."""
        w = self.w
        w.frames += 1
        w.bytes += len(raw)
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
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
        if sid is not None and sid != self.spec.stream_id:
            return False  # stream_started / stream_stopped of other streams go to everyone
        w.events += 1
        seq = ev.get("seq")
        if isinstance(seq, int):
            self._order(ev, kind, seq, now)
        if kind == "chat_message":
            self._chat(ev, now)
        elif kind == "stream_update":
            self._update(ev, seq)
        elif kind == "pinned_products_updated":
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

    def _chat(self, ev: dict[str, Any], now: int) -> None:
        w = self.w
        mark = messages.parse_chat(ev.get("message"))
        if mark is None:
            return
        if mark.run_id != w.plan.run_id:
            w.rec.count(now, "foreign_deliveries")
            return
        w.deliveries += 1
        w.rec.count(now, "deliveries")
        w.rec.record(now, "latency", (now - mark.send_ns) // 1000)
        if self.window_start is not None and mark.send_ns >= self.window_start:
            w.rec.received_expected(now, mark.send_ns)
        else:
            w.rec.count(now, "recv_unexpected")
        if "seq" not in ev:  # no sequence numbers: order by content, per sender
            last = self.last_n.get(mark.worker, -1)
            if mark.n < last:
                w.rec.count(now, "content_reorders")
            elif mark.n == last:
                w.rec.count(now, "content_duplicates")
            else:
                self.last_n[mark.worker] = mark.n

    def _update(self, ev: dict[str, Any], seq: Any) -> None:
        self.updates += 1
        self.w.rec.count(time.time_ns(), "stream_updates")
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
    if isinstance(e, InvalidStatus):
        return f"http_{e.response.status_code}"
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, InvalidHandshake):
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
        self.frames = self.bytes = self.events = self.deliveries = self.batches = 0
        self.sent = 0
        self._n = 0
        self._cpu = (time.process_time(), time.monotonic())

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
                    try:
                        await v.ws.send(orjson.dumps(frame).decode())
                    except ConnectionClosed:
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
                    try:
                        await v.ws.send(orjson.dumps({"type": "toggle_like", "sessionId": v.spec.session_id,
                                                      "streamId": sid}).decode())
                    except ConnectionClosed:
                        continue
                    v.toggles += 1
                    self.rec.count(time.time_ns(), "likes_sent")

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
        self.rec.count(time.time_ns(), "worker_cpu_ms", int((cpu - self._cpu[0]) * 1000))
        self._cpu = (cpu, wall)
        gauges = {"connected": self.ready_count, "cpuPercent": round(100 * busy)}
        self.rec.count(time.time_ns(), "frames", self.frames)
        self.rec.count(time.time_ns(), "events", self.events)
        self.rec.count(time.time_ns(), "bytes", self.bytes)
        self.frames = self.events = self.bytes = 0
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
                                          "lastViewerCount": None})
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


async def close_quietly(ws: Any) -> None:
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
    ready.put(plan.index)
    go.wait()

    async def main() -> None:
        await Worker(plan, int(start_ns.value), out).run()

    try:
        runner(main())
    except Exception as e:  # noqa: BLE001 - tell the parent, which reports it
        out.put(("crash", plan.index, f"{type(e).__name__}: {e}"))
        raise
