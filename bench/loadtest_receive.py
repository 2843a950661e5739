"""What the load tester's receive path costs per frame: `python -m bench.loadtest_receive`.

No sockets and no server: one worker's viewers are fed the frames a server
sends (compact JSON, `type` first, as the gateway encodes them), each frame to
every viewer of the stream, the way `wsclient` hands them over. It prints the
best CPU time (of the process, over `--repeat` runs) per frame handed to a
viewer, for:

- v1: `chat_message` frames of this run, one `stream_update` after every 10;
- v2: `batch` frames of 10 events (9 chat messages and a `stream_update`),
  consecutive seqs (the common case: applied whole);
- the same two with every frame distinct and one viewer (`cold`): each frame
  is decoded, which a worker does once per distinct frame.

The figures are the Python side of the receive path only (the kernel's share
of a socket read, ~5 µs here, is not in them); compare them before and after a
change on the same machine.
"""

from __future__ import annotations

import argparse
import queue
import time
from collections.abc import Callable

import orjson

from loadtest import messages
from loadtest.plan import ViewerSpec, WorkerPlan
from loadtest.viewer import Viewer
from loadtest.worker import Worker

STREAM = "0123456789abcdef01234567"
EPOCH = "65f0c0ffee0123456789abcd"
RUN = "bench1"


def chat_event(seq: int, send_ns: int) -> dict[str, object]:
    return {
        "type": "chat_message",
        "id": seq,
        "seq": seq,
        "username": "lt0",
        "message": messages.chat_text(RUN, 0, seq, send_ns, pad_to=60),
        "isAdmin": False,
        "timestamp": "2026-11-30T16:00:00.000Z",
        "streamId": STREAM,
        "epoch": EPOCH,
    }


def v1_frames(n: int, send_ns: int) -> list[bytes]:
    """`n` frames as an old app gets them: chat messages, a personal `stream_update` after every 10."""
    out = []
    for seq in range(1, n + 1):
        if seq % 11 == 0:
            out.append(
                orjson.dumps(
                    {
                        "type": "stream_update",
                        "viewerCount": 2000,
                        "likes": seq,
                        "likedBy": [],
                        "streamId": STREAM,
                        "seq": seq,
                        "epoch": EPOCH,
                    }
                )
            )
        else:
            out.append(orjson.dumps(chat_event(seq, send_ns + seq)))
    return out


def v2_frames(n: int, send_ns: int, events: int = 10) -> list[bytes]:
    """`n` batch frames of `events` consecutive events each, framed like the gateway's hub."""
    out = []
    seq = 0
    for _ in range(n):
        texts = []
        for i in range(events):
            seq += 1
            if i == events - 1:
                ev = {
                    "type": "stream_update",
                    "viewerCount": 5000,
                    "likes": seq,
                    "likedByAdded": [],
                    "likedByRemoved": [],
                    "streamId": STREAM,
                    "seq": seq,
                    "epoch": EPOCH,
                }
                texts.append(orjson.dumps(ev).decode())
            else:
                texts.append(orjson.dumps(chat_event(seq, send_ns + seq)).decode())
        out.append(('{"type":"batch","streamId":"' + STREAM + '","events":[' + ",".join(texts) + "]}").encode())
    return out


def watching_viewers(count: int, start_ns: int) -> list[Viewer]:
    """`count` viewers of one worker, all watching since `start_ns`."""
    specs = [ViewerSpec(STREAM, "ws://bench", f"s{i}") for i in range(count)]
    plan = WorkerPlan(
        index=0,
        run_id=RUN,
        viewers=specs,
        ramp_rate=0,
        duration=0,
        drain=0,
        chat_rate={},
        like_rate={},
        chat_stop_at={},
    )
    w = Worker(plan, start_ns, queue.Queue())
    for v in w.viewers:
        v.ready = v.joined = True
        v.window_start = start_ns
    return w.viewers


def per_frame_us(frames: Callable[[int], list[bytes]], viewers: int, repeat: int) -> float:
    """Best CPU µs per (frame, viewer) over `repeat` runs, the seconds' histograms included."""
    best = float("inf")
    for _ in range(repeat):
        start = time.time_ns() - 2 * 10**9
        ps = frames(start + 10**9)
        vs = watching_viewers(viewers, start)
        now = start + 15 * 10**8
        rec = vs[0].rec
        t0 = time.process_time_ns()
        for p in ps:
            for v in vs:
                v.on_message(p, now)
        rec.settle()
        best = min(best, (time.process_time_ns() - t0) / 1000 / (len(ps) * len(vs)))
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loadtest_receive", description=__doc__.split("\n")[0])
    ap.add_argument("--viewers", type=int, default=200, help="viewers of the stream in the worker")
    ap.add_argument("--frames", type=int, default=400, help="v1 frames per run (v2: a tenth as many batches)")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    v2_n = max(a.frames // 10, 1)
    rows = [
        ("v1 frame", per_frame_us(lambda s: v1_frames(a.frames, s), a.viewers, a.repeat)),
        ("v2 batch frame (10 events)", per_frame_us(lambda s: v2_frames(v2_n, s), a.viewers, a.repeat)),
        ("v1 frame, cold (decoded)", per_frame_us(lambda s: v1_frames(a.frames * 10, s), 1, a.repeat)),
        ("v2 batch frame, cold (decoded)", per_frame_us(lambda s: v2_frames(v2_n * 10, s), 1, a.repeat)),
    ]
    print(f"receive path, CPU µs per frame handed to a viewer ({a.viewers} viewers, best of {a.repeat}):")
    for name, us in rows:
        print(f"  {name:32s} {us:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
