"""Measurements: histograms, per-second aggregation, loss accounting, the summary.

Pure (no I/O). Workers record into a `SecondRecorder` and ship one `tick`
(plain dict) per second; the parent merges ticks into an `Aggregate`, whose
`raw()` form is what goes into the JSON report and what `merge` adds up.

Every time series is keyed by whole seconds since the run's start
(`start_unix_ns`), taken from `time.time_ns()` on this machine.

Histograms are HdrHistograms of microseconds (1 µs .. 120 s, 2 significant
digits: values are exact to 1 %), so percentiles of a second, of the run and
of several machines are exact merges, never averages of percentiles.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from hdrh.histogram import HdrHistogram

MAX_US = 120_000_000
HIST_NAMES = ("latency", "connect", "handshake", "ack", "pin")
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_hist() -> HdrHistogram:
    return HdrHistogram(1, MAX_US, 2)


def record_us(hist: HdrHistogram, micros: int) -> None:
    """Record one value; values outside 1 µs .. 120 s are clamped (negative
    latencies only happen with skewed clocks, which one machine does not have)."""
    hist.record_value(min(max(micros, 1), MAX_US))


def encode(hist: HdrHistogram) -> str:
    return hist.encode().decode() if hist.get_total_count() else ""


def decode(text: str) -> HdrHistogram:
    h = new_hist()
    if text:
        h.add(HdrHistogram.decode(text.encode()))
    return h


def hist_summary(h: HdrHistogram) -> dict[str, float | int | None]:
    """Count and percentiles in milliseconds (None when empty)."""
    n = h.get_total_count()
    if not n:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None, "mean": None}
    pct = h.get_percentile_to_value_dict(list(PERCENTILES))
    return {
        "count": int(n),
        "p50": pct[50.0] / 1000,
        "p90": pct[90.0] / 1000,
        "p99": pct[99.0] / 1000,
        "p999": pct[99.9] / 1000,
        "max": h.get_max_value() / 1000,
        "mean": round(h.get_mean_value() / 1000, 3),
    }


_ID = re.compile(r"\b[0-9a-f]{24}\b|\b\d+\b")


def error_kind(message: object) -> str:
    """A server error message with ids and numbers taken out, so errors group by kind."""
    text = message if isinstance(message, str) else repr(message)
    return "server: " + _ID.sub("#", text)[:120]


# ---------------------------------------------------------------- worker side


class Tick(TypedDict):
    """One second of one worker, as shipped to the parent (the raw report's form: plain data)."""

    second: int
    counters: dict[str, int]
    errors: dict[str, int]
    hists: dict[str, str]  # encoded HdrHistograms
    sent: dict[str, list[int]]  # stream -> send times of the chat messages sent in this second
    recvBySend: dict[int, int]  # send second -> expected receipts that arrived in this second
    gauges: dict[str, int]  # instantaneous values, on the last second of a flush only


@dataclass(slots=True)
class BatchReceipts:
    """One batch frame's receipts in the hot second: latency = each receive time minus each
    send time, every pair (what `latency` would hold, had the frame been applied event by event)."""

    sends: np.ndarray  # send times of this run's chat messages in the frame (int64 ns)
    received: list[int]  # the receive time of each viewer that applied the frame whole


HOT_COUNTERS = ("frames", "bytes", "events", "deliveries", "stream_updates", "recv_unexpected", "foreign_deliveries")
"""Counters of the receive path, kept as plain attributes of the recorder (see `SecondRecorder`)."""


def counts_indexes(hist: HdrHistogram, values: np.ndarray) -> np.ndarray:
    """`hist`'s counts index of each value (int64, inside the trackable range), vectorised:
    the same arithmetic as `HdrHistogram._counts_index_for`."""
    um, hm = hist.unit_magnitude, hist.sub_bucket_half_count_magnitude
    # bit length of (v | mask): frexp's exponent, exact for values below 2**53
    bits = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bits - um - (hm + 1)
    sub = values >> (bucket + um)
    return ((bucket + 1) << hm) + sub - hist.sub_bucket_half_count


def record_many_us(hist: HdrHistogram, micros: Iterable[int]) -> None:
    """Record many values at once (clamped like `record_us`). The histogram's counts
    are exactly those of recording each value with `record_us`: each distinct
    bucket is recorded once, with its count, as its lowest equivalent value."""
    a = np.fromiter(micros, dtype=np.int64) if not isinstance(micros, np.ndarray) else micros.astype(np.int64)
    if not len(a):
        return
    np.clip(a, 1, MAX_US, out=a)
    idx, n = np.unique(counts_indexes(hist, a), return_counts=True)
    for i, c in zip(idx.tolist(), n.tolist(), strict=True):
        hist.record_value(hist.get_value_from_index(i), c)


class SecondRecorder:
    """What one worker measured, per second of the run, until it is flushed.

    Two ways in:

    - `count`, `error`, `record`, `sent`, `received_expected`: anything, at any
      time, filed under the second of the time given;
    - the receive path's hot counters, for a cost of a few attribute updates per
      frame: the attributes named in `HOT_COUNTERS`, `latency` (a list of
      microseconds) and `recv_by_send` (send second -> expected receipts). They
      all belong to the *hot second* `[lo, hi)`: before using them for a time
      `now`, check `lo <= now < hi` and call `roll(now)` if not. `roll` and
      `flush` file them under the hot second, so every figure lands in the
      second it was measured in, as with `count`.
    """

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.open: dict[int, dict[str, Any]] = {}
        self.hot_sec = 0
        self.lo = self.hi = start_ns  # empty: the first use rolls
        self.frames = self.bytes = self.events = self.deliveries = self.stream_updates = 0
        self.recv_unexpected = self.foreign_deliveries = 0
        self.latency: list[int] = []
        # Receipts of whole batch frames, keyed by the frame's summary (`frames.BatchSummary`,
        # hashed by identity: the key is held here, so no other frame can take its place).
        self.batch_receipts: dict[object, BatchReceipts] = {}
        self.recv_by_send: dict[int, int] = {}

    def second(self, now_ns: int) -> int:
        return (now_ns - self.start_ns) // 1_000_000_000

    def _bucket(self, sec: int) -> dict[str, Any]:
        b = self.open.get(sec)
        if b is None:
            b = self.open[sec] = {
                "counters": Counter(),
                "errors": Counter(),
                "hists": {},
                "sent": {},
                "recvBySend": Counter(),
            }
        return b

    def count(self, now_ns: int, name: str, n: int = 1) -> None:
        self._bucket(self.second(now_ns))["counters"][name] += n

    def error(self, now_ns: int, kind: str) -> None:
        self._bucket(self.second(now_ns))["errors"][kind] += 1

    def record(self, now_ns: int, hist: str, micros: int) -> None:
        record_us(self._hist(self.second(now_ns), hist), micros)

    def _hist(self, sec: int, name: str) -> HdrHistogram:
        hists = self._bucket(sec)["hists"]
        h = hists.get(name)
        if h is None:
            h = hists[name] = new_hist()
        return h

    def sent(self, send_ns: int, stream_id: str) -> None:
        """One chat message sent at `send_ns` to `stream_id` (for loss accounting)."""
        self._bucket(self.second(send_ns))["sent"].setdefault(stream_id, []).append(send_ns)

    def received_expected(self, now_ns: int, send_ns: int) -> None:
        """A receipt the loss accounting expects, filed under the second it was *sent*."""
        self._bucket(self.second(now_ns))["recvBySend"][self.second(send_ns)] += 1

    def roll(self, now_ns: int) -> None:
        """File the hot counters under the hot second; the second of `now_ns` becomes the hot one."""
        self.settle()
        sec = self.second(now_ns)
        self.hot_sec = sec
        self.lo = self.start_ns + sec * 1_000_000_000
        self.hi = self.lo + 1_000_000_000

    def settle(self) -> None:
        """Move the hot counters into the hot second's bucket (they start again from zero)."""
        counters = None
        for name in HOT_COUNTERS:
            n = getattr(self, name)
            if n:
                if counters is None:
                    counters = self._bucket(self.hot_sec)["counters"]
                counters[name] += n
                setattr(self, name, 0)
        if self.latency:
            record_many_us(self._hist(self.hot_sec, "latency"), self.latency)
            self.latency = []
        if self.batch_receipts:
            hist = self._hist(self.hot_sec, "latency")
            for got in self.batch_receipts.values():
                received = np.array(got.received, dtype=np.int64)
                record_many_us(hist, ((received[:, None] - got.sends[None, :]) // 1000).ravel())
            self.batch_receipts = {}
        if self.recv_by_send:
            self._bucket(self.hot_sec)["recvBySend"].update(self.recv_by_send)
            self.recv_by_send = {}

    def flush(self, now_ns: int | None, gauges: dict[str, int]) -> list[Tick]:
        """Ticks for every second before `now_ns` (all, when None). `gauges` are
        instantaneous values (connected viewers) stamped on the last closed second."""
        self.settle()
        current = None if now_ns is None else self.second(now_ns)
        done = sorted(s for s in self.open if current is None or s < current)
        if current is not None and current - 1 not in self.open and current >= 1:
            done.append(current - 1)
            self._bucket(current - 1)
        ticks: list[Tick] = []
        for sec in sorted(set(done)):
            b = self.open.pop(sec)
            ticks.append(
                {
                    "second": sec,
                    "counters": dict(b["counters"]),
                    "errors": dict(b["errors"]),
                    "hists": {k: encode(h) for k, h in b["hists"].items()},
                    "sent": b["sent"],
                    "recvBySend": dict(b["recvBySend"]),
                    "gauges": gauges if sec == max(done) else {},
                }
            )
        return ticks


# ---------------------------------------------------------------- loss accounting


def expected_receipts(send_ns: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each send time, how many viewer windows [start, end] contain it.

    A viewer's window opens when it has its stream's snapshot (from then on
    the server must deliver every new event to it) and closes when its
    connection ends. A message sent inside the window must reach that viewer."""
    if len(send_ns) == 0:
        return np.zeros(0, dtype=np.int64)
    s = np.sort(np.asarray(starts, dtype=np.int64))
    e = np.sort(np.asarray(ends, dtype=np.int64))
    t = np.asarray(send_ns, dtype=np.int64)
    return (np.searchsorted(s, t, side="right") - np.searchsorted(e, t, side="left")).astype(np.int64)


# ---------------------------------------------------------------- parent side


class Aggregate:
    """All workers' ticks and final reports, merged; `raw()` is mergeable across runs."""

    def __init__(self, start_unix_ns: int) -> None:
        self.start_unix_ns = start_unix_ns
        self.seconds: dict[int, dict[str, Any]] = {}
        self.totals: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.hists: dict[str, HdrHistogram] = {n: new_hist() for n in HIST_NAMES}
        self.sent: dict[str, list[int]] = {}
        self.recv_by_send: Counter[int] = Counter()
        self.windows: dict[str, list[tuple[int, int]]] = {}
        self.streams: dict[str, dict[str, Any]] = {}
        self.gauges: dict[int, dict[int, dict[str, int]]] = {}  # second -> worker -> gauges
        self.loss: dict[str, Any] | None = None

    def _second(self, sec: int) -> dict[str, Any]:
        s = self.seconds.get(sec)
        if s is None:
            s = self.seconds[sec] = {
                "counters": Counter(),
                "errors": Counter(),
                "hists": {n: new_hist() for n in HIST_NAMES},
            }
        return s

    def add_tick(self, worker: int, tick: Mapping[str, Any]) -> None:
        s = self._second(tick["second"])
        s["counters"].update(tick["counters"])
        s["errors"].update(tick["errors"])
        self.totals.update(tick["counters"])
        self.errors.update(tick["errors"])
        for name, text in tick["hists"].items():
            if text:
                h = HdrHistogram.decode(text.encode())
                s["hists"][name].add(h)
                self.hists[name].add(h)
        for stream_id, times in tick["sent"].items():
            self.sent.setdefault(stream_id, []).extend(times)
        self.recv_by_send.update({int(k): v for k, v in tick["recvBySend"].items()})
        if tick.get("gauges"):
            self.gauges.setdefault(tick["second"], {})[worker] = tick["gauges"]

    def count(self, now_ns: int, name: str, n: int = 1) -> None:
        """A count made by the parent itself (admin actions)."""
        sec = (now_ns - self.start_unix_ns) // 1_000_000_000
        self._second(sec)["counters"][name] += n
        self.totals[name] += n

    def error(self, now_ns: int, kind: str) -> None:
        sec = (now_ns - self.start_unix_ns) // 1_000_000_000
        self._second(sec)["errors"][kind] += 1
        self.errors[kind] += 1

    def add_final(self, final: Mapping[str, Any]) -> None:
        """A worker's end report (`shipping.WorkerEnd`): viewer windows and per-stream like figures."""
        for stream_id, wins in final["windows"].items():
            self.windows.setdefault(stream_id, []).extend(tuple(w) for w in wins)
        for stream_id, st in final["streams"].items():
            mine = self.streams.setdefault(
                stream_id,
                {
                    "toggles": 0,
                    "likedSessions": 0,
                    "updates": 0,
                    "lastLikes": None,
                    "lastLikesSeq": -1,
                    "initialLikes": None,
                    "viewerSeconds": 0.0,
                    "lastViewerCount": None,
                    "settleSeconds": None,
                    "settled": True,
                },
            )
            merge_settle(mine, st)
            mine["toggles"] += st["toggles"]
            mine["likedSessions"] += st["likedSessions"]
            mine["updates"] += st["updates"]
            mine["viewerSeconds"] += st["viewerSeconds"]
            if st["lastLikesSeq"] > mine["lastLikesSeq"]:
                mine["lastLikesSeq"] = st["lastLikesSeq"]
                mine["lastLikes"] = st["lastLikes"]
                mine["lastViewerCount"] = st["lastViewerCount"]
            if mine["initialLikes"] is None and st["initialLikes"] is not None:
                mine["initialLikes"] = st["initialLikes"]

    def compute_loss(self) -> dict[str, Any]:
        """Expected receipts (each message × the viewers of its stream whose
        window contains its send time) against the receipts that arrived."""
        expected_by_sec: Counter[int] = Counter()
        total = 0
        for stream_id, times in self.sent.items():
            wins = self.windows.get(stream_id, [])
            t = np.asarray(times, dtype=np.int64)
            exp = expected_receipts(
                t, np.array([w[0] for w in wins], dtype=np.int64), np.array([w[1] for w in wins], dtype=np.int64)
            )
            secs = (t - self.start_unix_ns) // 1_000_000_000
            for sec, n in zip(secs.tolist(), exp.tolist(), strict=True):
                expected_by_sec[int(sec)] += int(n)
            total += int(exp.sum())
        received = sum(self.recv_by_send.values())
        by_second = {
            str(s): [expected_by_sec.get(s, 0), self.recv_by_send.get(s, 0)]
            for s in sorted(set(expected_by_sec) | set(self.recv_by_send))
        }
        self.loss = {"expected": total, "receivedExpected": received, "bySecond": by_second}
        return self.loss

    def raw(self) -> dict[str, Any]:
        """The mergeable form: counters, errors and encoded histograms per second and in total."""
        loss = self.loss if self.loss is not None else self.compute_loss()
        seconds = {}
        for sec in sorted(self.seconds):
            s = self.seconds[sec]
            g = self.gauges.get(sec, {})
            seconds[str(sec)] = {
                "counters": dict(s["counters"]),
                "errors": dict(s["errors"]),
                "hists": {k: encode(h) for k, h in s["hists"].items() if h.get_total_count()},
                "connected": sum(v.get("connected", 0) for v in g.values()) if g else None,
                "maxWorkerCpu": max((v.get("cpuPercent", 0) for v in g.values()), default=None),
            }
        return {
            "startUnixNs": self.start_unix_ns,
            "seconds": seconds,
            "counters": dict(self.totals),
            "errors": dict(self.errors),
            "hists": {k: encode(h) for k, h in self.hists.items()},
            "loss": loss,
            "streams": self.streams,
        }


def fill_connected(seconds: list[dict[str, Any]]) -> list[int]:
    """Connected viewers per second; a second without a gauge keeps the last value."""
    out, last = [], 0
    for s in seconds:
        if s.get("connected") is not None:
            last = int(s["connected"])
        out.append(last)
    return out


def summarize(raw: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The figures of a run (or of merged runs), from its raw form."""
    c = Counter(raw["counters"])
    hists = {k: decode(v) for k, v in raw["hists"].items()}
    loss = raw["loss"]
    secs = sorted(int(k) for k in raw["seconds"])
    series = timeseries(raw)
    deliveries = series["deliveries"]
    sending = [d for d, s in zip(deliveries, series["sent"], strict=True) if s or d]
    attempts = c["connect_attempts"]
    expected, got = int(loss["expected"]), int(loss["receivedExpected"])
    lost = max(expected - got, 0)
    out: dict[str, Any] = {
        "durationSeconds": duration_s,
        "seconds": len(secs),
        "connections": {
            "attempts": attempts,
            "succeeded": c["connect_ok"],
            "failed": c["connect_failed"],
            "successRate": (c["connect_ok"] / attempts) if attempts else None,
            "peakConnected": max(series["connected"], default=0),
            "reconnects": c["reconnects"],
            "unexpectedCloses": c["unexpected_closes"],
            "connectMs": hist_summary(hists.get("connect", new_hist())),
            "handshakeMs": hist_summary(hists.get("handshake", new_hist())),
        },
        "chat": {
            "sent": c["chat_sent"],
            "skippedNoViewer": c["chat_skipped"],
            "expectedReceipts": expected,
            "receivedExpected": got,
            "lost": lost,
            "lossRatio": (lost / expected) if expected else 0.0,
            "deliveries": c["deliveries"],
            "unexpectedReceipts": c["recv_unexpected"],
            "foreignDeliveries": c["foreign_deliveries"],
            "duplicates": c["duplicates"] + c["content_duplicates"],
            "reordered": c["reordered"] + c["content_reorders"],
            "seqGapEvents": c["seq_gaps"] - c["reordered"],
            "latencyMs": hist_summary(hists.get("latency", new_hist())),
        },
        "throughput": {
            "deliveriesPerSecondMean": (sum(sending) / len(sending)) if sending else 0.0,
            "deliveriesPerSecondPeak": max(deliveries, default=0),
            "framesPerSecondMean": (c["frames"] / len(secs)) if secs else 0.0,
            "eventsReceived": c["events"],
            "framesReceived": c["frames"],
            "bytesReceived": c["bytes"],
        },
        "likes": {"sent": c["likes_sent"], "streamUpdates": c["stream_updates"], "streams": {}},
        "pins": {
            "sent": c["pins_sent"],
            "received": c["pins_received"],
            "latencyMs": hist_summary(hists.get("pin", new_hist())),
        },
        "acks": {
            "acked": c["acks"],
            "rejected": c["chat_rejected"],
            "latencyMs": hist_summary(hists.get("ack", new_hist())),
        },
        "resume": {"resumed": c["resumed"], "failed": c["resume_failed"]},
        "loadGenerator": {
            "cpuSeconds": c["worker_cpu_ms"] / 1000,
            "maxWorkerCpuPercent": max((s.get("maxWorkerCpu") or 0 for s in raw["seconds"].values()), default=0),
            "framesPerCpuSecond": (c["frames"] / (c["worker_cpu_ms"] / 1000)) if c["worker_cpu_ms"] else None,
            # workers' CPU (receiving, sending, connecting, bookkeeping: everything) per frame / event received
            "cpuMicrosPerFrame": (c["worker_cpu_ms"] * 1000 / c["frames"]) if c["frames"] else None,
            "cpuMicrosPerEvent": (c["worker_cpu_ms"] * 1000 / c["events"]) if c["events"] else None,
        },
        "errors": dict(sorted(raw["errors"].items(), key=lambda kv: -kv[1])),
        "errorCount": sum(raw["errors"].values()),
    }
    for stream_id, st in raw.get("streams", {}).items():
        initial = st.get("initialLikes") or 0
        viewer_s = st.get("viewerSeconds") or 0.0
        out["likes"]["streams"][stream_id] = {
            "toggles": st["toggles"],
            "expectedLikes": initial + st["likedSessions"],
            "observedLikes": st["lastLikes"],
            "lastViewerCount": st.get("lastViewerCount"),
            "updatesPerViewerSecond": (st["updates"] / viewer_s) if viewer_s else None,
            # Seconds waited after the drain for the count to stop changing (None: no wait), and
            # whether it did within the bound (see loadtest/worker.py: the comparison stays exact).
            "settleSeconds": st.get("settleSeconds"),
            "settled": st.get("settled", True),
        }
    return out


def timeseries(raw: dict[str, Any]) -> dict[str, list[Any]]:
    """Per-second arrays from second 0 to the last second seen (missing seconds are zeros)."""
    keys = [int(k) for k in raw["seconds"]]
    last = max(keys, default=-1)
    rows = [
        raw["seconds"].get(str(s), {"counters": {}, "errors": {}, "hists": {}, "connected": None})
        for s in range(last + 1)
    ]
    pre = [raw["seconds"][str(k)] for k in sorted(keys) if k < 0]
    out: dict[str, list[Any]] = {"t": list(range(last + 1))}
    for name, key in (
        ("sent", "chat_sent"),
        ("deliveries", "deliveries"),
        ("connectOk", "connect_ok"),
        ("connectFailed", "connect_failed"),
        ("reconnects", "reconnects"),
        ("likesSent", "likes_sent"),
        ("frames", "frames"),
    ):
        out[name] = [int(r["counters"].get(key, 0)) for r in rows]
    if pre and out["t"]:  # setup before second 0 (connections that opened early) lands in second 0
        for p in pre:
            out["connectOk"][0] += int(p["counters"].get("connect_ok", 0))
    out["errors"] = [int(sum(r["errors"].values())) for r in rows]
    out["connected"] = fill_connected(rows)
    for p in ("p50", "p90", "p99", "max"):
        out[f"latency_{p}"] = []
    for r in rows:
        s = hist_summary(decode(r["hists"].get("latency", "")))
        for p in ("p50", "p90", "p99", "max"):
            out[f"latency_{p}"].append(s[p])
    by = raw["loss"].get("bySecond", {})
    out["expected"] = [int(by.get(str(s), [0, 0])[0]) for s in out["t"]]
    out["lost"] = [max(int(by.get(str(s), [0, 0])[0]) - int(by.get(str(s), [0, 0])[1]), 0) for s in out["t"]]
    return out


def merge_raw(raws: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Several runs (machines) as one: seconds aligned on the wall clock
    (to the earliest start), counters and histograms added, loss added."""
    raws = list(raws)
    start = min(r["startUnixNs"] for r in raws)
    seconds: dict[int, dict[str, Any]] = {}
    counters: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    hists = {n: new_hist() for n in HIST_NAMES}
    loss_by: dict[int, list[int]] = {}
    expected = received = 0
    streams: dict[str, dict[str, Any]] = {}
    for r in raws:
        shift = round((r["startUnixNs"] - start) / 1e9)
        counters.update(r["counters"])
        errors.update(r["errors"])
        for k, v in r["hists"].items():
            if v:
                hists.setdefault(k, new_hist()).add(decode(v))
        for k, s in r["seconds"].items():
            sec = int(k) + shift
            m = seconds.setdefault(sec, {"counters": Counter(), "errors": Counter(), "hists": {}, "connected": None})
            m["counters"].update(s["counters"])
            m["errors"].update(s["errors"])
            for hk, hv in s["hists"].items():
                if hv:
                    m["hists"].setdefault(hk, new_hist()).add(decode(hv))
            if s.get("connected") is not None:
                m["connected"] = (m["connected"] or 0) + int(s["connected"])
            if s.get("maxWorkerCpu") is not None:
                m["maxWorkerCpu"] = max(m.get("maxWorkerCpu") or 0, s["maxWorkerCpu"])
        expected += int(r["loss"]["expected"])
        received += int(r["loss"]["receivedExpected"])
        for k, (e, g) in r["loss"].get("bySecond", {}).items():
            cell = loss_by.setdefault(int(k) + shift, [0, 0])
            cell[0] += e
            cell[1] += g
        for sid, st in r.get("streams", {}).items():
            mine = streams.get(sid)
            if mine is None:
                streams[sid] = dict(st)
                continue
            for key in ("toggles", "likedSessions", "updates", "viewerSeconds"):
                mine[key] += st[key]
            merge_settle(mine, st)
            if st["lastLikesSeq"] > mine["lastLikesSeq"]:
                mine.update(
                    lastLikesSeq=st["lastLikesSeq"],
                    lastLikes=st["lastLikes"],
                    lastViewerCount=st.get("lastViewerCount"),
                )
    return {
        "startUnixNs": start,
        "seconds": {
            str(k): {
                "counters": dict(v["counters"]),
                "errors": dict(v["errors"]),
                "hists": {hk: encode(h) for hk, h in v["hists"].items()},
                "connected": v["connected"],
                "maxWorkerCpu": v.get("maxWorkerCpu"),
            }
            for k, v in sorted(seconds.items())
        },
        "counters": dict(counters),
        "errors": dict(errors),
        "hists": {k: encode(h) for k, h in hists.items()},
        "loss": {
            "expected": expected,
            "receivedExpected": received,
            "bySecond": {str(k): v for k, v in sorted(loss_by.items())},
        },
        "streams": streams,
    }


def merge_settle(mine: dict[str, Any], other: dict[str, Any]) -> None:
    """The slowest worker's settling time; settled only if every worker settled."""
    waits = [w for w in (mine.get("settleSeconds"), other.get("settleSeconds")) if w is not None]
    mine["settleSeconds"] = max(waits) if waits else None
    mine["settled"] = bool(mine.get("settled", True)) and bool(other.get("settled", True))
