"""One load-generating process: many viewers on asyncio, and the chat/like senders.

The parent starts one per core (`runner.py`) with a `WorkerPlan`; the worker
ramps its viewers up (`viewer.Viewer`), sends chat and likes from random
watching viewers at the planned rates, ships its seconds to the parent
(`shipping.Shipper`), and at the end reports its viewers' windows and like
figures.

Likes: each viewer keeps the count of the newest `stream_update` it saw; the
report compares it with the taps sent. Counts are coalesced (a few updates a
second), so the comparison waits for the stream to settle: after the drain,
while likes were sent, the worker keeps receiving until no `stream_update`
has arrived for `SETTLE_QUIET_S` (longer than the stream's update interval),
at most `settle` seconds more. The count must then be exactly right: the wait
only lets the last update arrive, it forgives nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from loadtest import messages, wsclient
from loadtest.frames import FrameCache
from loadtest.plan import WorkerPlan
from loadtest.shipping import Crash, Outbox, Shipper, StreamEnd, Window, WorkerEnd
from loadtest.stats import SecondRecorder
from loadtest.viewer import Crowd, Viewer
from runtime.gc_policy import freeze_startup

SETTLE_QUIET_S = 1.0  # 4 of the server's update intervals (250 ms) without a stream_update: settled


class Worker:
    """The viewers of one process, the senders, and the once-a-second ticks to the parent."""

    def __init__(self, plan: WorkerPlan, start_ns: int, out: Outbox) -> None:
        self.plan = plan
        self.start_ns = start_ns
        self.rec = SecondRecorder(start_ns)
        self.crowd = Crowd(
            plan, self.rec, FrameCache(messages.own_prefix(plan.run_id)), asyncio.Semaphore(plan.connect_concurrency)
        )
        self.viewers = [Viewer(self.crowd, s) for s in plan.viewers]
        for sid in [s.stream_id for s in plan.viewers] + list(plan.chat_rate) + list(plan.like_rate):
            self.crowd.ready(sid)
        self.shipper = Shipper(plan.index, self.rec, out)
        self.settle_s: float | None = None  # how long settling took (None: no likes sent, no wait)
        self.settled = True
        self._n = 0

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
            v.end_at_stop(now)
        await asyncio.gather(*(close_quietly(v.ws) for v in self.viewers if v.ws is not None))
        tasks = [v.task for v in self.viewers if v.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        ticker.cancel()
        self.shipper.tick(self.ready_count, final=True)
        self.shipper.final(self.final())

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
        plan = self.plan
        pending_acks = self.crowd.pending_acks
        owed_chat = {s: random.random() for s in plan.chat_rate}
        owed_like = {s: random.random() for s in plan.like_rate}
        last = time.monotonic()
        pad = plan.message_bytes
        v2 = plan.protocol >= 2
        while True:
            await asyncio.sleep(0.01)
            now_m = time.monotonic()
            dt, last = now_m - last, now_m
            elapsed = time.time() - self.start_ns / 1e9
            if elapsed >= plan.duration:
                return
            if elapsed < plan.chat_start:
                continue
            for sid, rate in plan.chat_rate.items():
                owed_chat[sid] += rate * dt
                stop_at = plan.chat_stop_at.get(sid)
                while owed_chat[sid] >= 1:
                    owed_chat[sid] -= 1
                    if stop_at is not None and elapsed >= stop_at:
                        continue
                    v = self.pick(sid)
                    ws = v.ws if v is not None else None
                    if ws is None:
                        self.rec.count(time.time_ns(), "chat_skipped")
                        continue
                    self._n += 1
                    send_ns = time.time_ns()
                    frame: dict[str, Any] = {
                        "type": "chat_message",
                        "streamId": sid,
                        "username": f"lt{plan.index}",
                        "message": messages.chat_text(plan.run_id, plan.index, self._n, send_ns, pad),
                    }
                    cid = f"{plan.index}-{self._n}" if v2 else ""
                    if v2:
                        frame["clientMsgId"] = cid
                        pending_acks[cid] = send_ns
                    if not ws.send_text(orjson.dumps(frame)):
                        if v2:
                            pending_acks.pop(cid, None)
                        self.rec.error(time.time_ns(), "send: connection closed")
                        continue
                    self.rec.count(send_ns, "chat_sent")
                    self.rec.sent(send_ns, sid)
            for sid, rate in plan.like_rate.items():
                owed_like[sid] += rate * dt
                while owed_like[sid] >= 1:
                    owed_like[sid] -= 1
                    v = self.pick(sid)
                    if v is None or v.ws is None:
                        continue
                    toggle = {"type": "toggle_like", "sessionId": v.spec.session_id, "streamId": sid}
                    if not v.ws.send_text(orjson.dumps(toggle)):
                        continue
                    v.toggles += 1
                    self.rec.count(time.time_ns(), "likes_sent")

    async def settle(self) -> None:
        """Keep receiving until no viewer here has had a `stream_update` for
        `SETTLE_QUIET_S` (the like counts have stopped changing), at most `settle` s."""
        start = time.monotonic()
        deadline = start + self.plan.settle
        streams = list(self.plan.like_rate)
        last_update_ns = self.crowd.last_update_ns
        while True:
            now_ns = time.time_ns()
            last = max((last_update_ns.get(s, 0) for s in streams), default=0)
            if (now_ns - last) / 1e9 >= SETTLE_QUIET_S:
                break
            if time.monotonic() >= deadline:
                self.settled = False
                break
            await asyncio.sleep(0.05)
        self.settle_s = time.monotonic() - start

    @property
    def ready_count(self) -> int:
        return sum(len(r) for r in self.crowd.ready_by_stream.values())

    def pick(self, stream_id: str) -> Viewer | None:
        """A random watching viewer of `stream_id`, unless the stream stopped (watching: it has its `ws`)."""
        ready = self.crowd.ready_by_stream.get(stream_id)
        v = ready.pick() if ready is not None else None
        return None if v is None or v.stopped else v

    async def ticker(self) -> None:
        k = 1
        while True:
            await asyncio.sleep(max(self.at(k) + 0.02, 0))
            k = int((time.time_ns() - self.start_ns) // 1_000_000_000) + 1
            self.shipper.tick(self.ready_count)

    def final(self) -> WorkerEnd:
        """The viewers' windows, and per stream the like figures (see the module's docstring)."""
        windows: dict[str, list[Window]] = {}
        streams: dict[str, StreamEnd] = {}
        end = time.time_ns()
        for v in self.viewers:
            sid = v.spec.stream_id
            windows.setdefault(sid, []).extend(v.windows)
            st = streams.get(sid)
            if st is None:
                st = streams[sid] = StreamEnd(
                    toggles=0,
                    likedSessions=0,
                    updates=0,
                    lastLikes=None,
                    lastLikesSeq=-1,
                    initialLikes=None,
                    viewerSeconds=0.0,
                    lastViewerCount=None,
                    settleSeconds=self.settle_s,
                    settled=self.settled,
                )
            st["toggles"] += v.toggles
            st["likedSessions"] += v.toggles % 2
            st["updates"] += v.updates
            st["viewerSeconds"] += sum(min(w.end, end) - w.start for w in v.windows) / 1e9
            if v.last_likes_seq > st["lastLikesSeq"]:
                st["lastLikes"], st["lastLikesSeq"] = v.last_likes, v.last_likes_seq
                st["lastViewerCount"] = v.last_viewer_count
            if st["initialLikes"] is None and v.initial_likes is not None:
                st["initialLikes"] = v.initial_likes
        return WorkerEnd(
            windows=windows, streams=streams, unacked=len(self.crowd.pending_acks), batches=self.crowd.batches
        )


async def close_quietly(ws: wsclient.WsClient) -> None:
    """Close `ws` within 3 s, whatever happens: the run is over, nothing is left to measure."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(), 3)


def worker_main(plan: WorkerPlan, out: Outbox, ready: Any, go: Any, start_ns: Any) -> None:
    """Process entry point: report ready, wait for the start, run, ship the end (or the crash)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    runner: Callable[[Coroutine[Any, Any, None]], None]
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
    except Exception as e:
        out.put(Crash(plan.index, f"{type(e).__name__}: {e}"))
        raise
