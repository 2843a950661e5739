"""What a worker ships to its parent (`loadtest.shipping`): named messages that cross
a real multiprocessing queue intact, and the CPU it used counted exactly, in whole ms."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import queue
import time
from typing import Any

from loadtest.shipping import Crash, Final, Shipper, StreamEnd, Ticks, Window, WorkerEnd
from loadtest.stats import Aggregate, SecondRecorder, decode

S = 1_000_000_000


def end_of_worker() -> WorkerEnd:
    return WorkerEnd(
        windows={"s1": [Window(10, 20), Window(30, 40)]},
        streams={
            "s1": StreamEnd(
                toggles=3,
                likedSessions=1,
                updates=5,
                lastLikes=8,
                lastLikesSeq=12,
                initialLikes=7,
                viewerSeconds=1.5,
                lastViewerCount=2,
                settleSeconds=None,
                settled=True,
            )
        },
        unacked=2,
        batches=9,
    )


def test_messages_cross_a_multiprocessing_queue_intact() -> None:
    start = time.time_ns() - 3 * S
    rec = SecondRecorder(start)
    rec.count(start + 10, "chat_sent")
    rec.record(start + 10, "latency", 1500)
    ticks = rec.flush(None, {"connected": 4})
    sent: list[Any] = [Ticks(0, ticks), Final(1, end_of_worker()), Crash(2, "ValueError: boom")]
    q: Any = mp.get_context("spawn").Queue()
    try:
        for m in sent:
            q.put(m)
        got = [q.get(timeout=10) for _ in sent]
    finally:
        q.close()
        q.join_thread()
    assert got == sent and [type(m) for m in got] == [Ticks, Final, Crash]
    final = got[1]
    assert isinstance(final, Final) and final.end["windows"]["s1"][1].end == 40  # still a named window
    tick = got[0].ticks[0]
    assert tick["counters"] == {"chat_sent": 1} and tick["gauges"] == {"connected": 4}
    assert decode(tick["hists"]["latency"]).get_total_count() == 1


def test_the_parent_merges_what_a_worker_ships() -> None:
    agg = Aggregate(0)
    agg.add_tick(
        0,
        {
            "second": 0,
            "counters": {"chat_sent": 1},
            "errors": {},
            "hists": {},
            "sent": {"s1": [15]},
            "recvBySend": {0: 1},
            "gauges": {},
        },
    )
    agg.add_final(end_of_worker())
    loss = agg.compute_loss()
    assert loss["expected"] == 1 and loss["receivedExpected"] == 1  # the send at 15 lies in the window 10..20
    assert agg.streams["s1"]["lastLikes"] == 8 and agg.streams["s1"]["toggles"] == 3


def busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_shipper_counts_the_cpu_in_whole_ms_and_carries_the_rest() -> None:
    out: queue.Queue[Any] = queue.Queue()
    rec = SecondRecorder(time.time_ns() - 5 * S)
    gc.disable()  # a collection between the shipper's last clock read and ours would look like lost CPU
    try:
        cpu0 = time.process_time()
        shipper = Shipper(3, rec, out)
        for _ in range(30):  # under a millisecond each time: only the carried remainder makes them count
            busy(0.0007)
            shipper.tick(connected=7)
        span_cpu0, span_wall0 = time.process_time(), time.monotonic()
        busy(0.2)  # long enough that the process clock's coarse steps (4 ms on some kernels) do not matter
        shipper.tick(connected=6, final=True)
        span_share = 100 * (time.process_time() - span_cpu0) / (time.monotonic() - span_wall0)
        used_ms = (time.process_time() - cpu0) * 1000
    finally:
        gc.enable()
    shipper.final(end_of_worker())
    messages = [out.get_nowait() for _ in range(out.qsize())]
    assert all(m.worker == 3 for m in messages)
    *ticks, final = messages
    assert all(isinstance(m, Ticks) for m in ticks) and isinstance(final, Final)
    shipped = [t for m in ticks for t in m.ticks]
    counted = sum(t["counters"].get("worker_cpu_ms", 0) for t in shipped)
    assert used_ms - 3 <= counted <= used_ms, (used_ms, counted)  # whole ms; the rest (< 1 ms) carried
    gauges = [t["gauges"] for t in shipped if t["gauges"]]
    # The last tick's span was a busy spin: the share of a core this process got meanwhile, as we measured it
    # around the same span (about one core on a calm machine; less on a busy one, where others share the cores).
    assert gauges[-1]["connected"] == 6 and abs(gauges[-1]["cpuPercent"] - span_share) <= 10, (gauges, span_share)
    assert gauges[-1]["cpuPercent"] <= 100 * (os.cpu_count() or 1)
