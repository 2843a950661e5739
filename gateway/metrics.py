"""`GatewayMetrics`: what a gateway exposes at `/metrics` for Prometheus.

Counts that change on the hot path (frames written, events received,
commands sent) are plain integers kept by the parts that do the work and read
only when Prometheus scrapes, so the fan-out pays nothing for them. Timings
are Prometheus histograms, observed once per batch or per tick, never per
viewer.

Every series is per gateway process; sum over gateways for the cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter as PromCounter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runtime.gc_policy import GcPauses


@dataclass(frozen=True)
class LiveGauges:
    """What the gateway is doing now, read once per scrape (see `GatewayMetrics.bind`)."""

    connections_v1: int  # open WebSockets of old apps (one event per frame)
    connections_v2: int  # open WebSockets of opted-in apps (batch frames)
    watchers: int  # connections watching a stream
    live_streams: int  # live streams in the cluster, as this gateway knows it
    relays_active: int  # live streams this gateway receives events of
    draining: bool
    frames_sent: int  # frames written to viewers since start
    outbox_queued: int = 0  # commands queued toward stream actors (each like tap counted)
    streams_degraded: int = 0  # followed streams whose actor's last poll said unhealthy


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Fan-out is tens of milliseconds when healthy (the write and batch ticks are 40 and 100 ms).
FANOUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TrafficCounts:
    """Plain counters the relays bump on the hot path (read at scrape time)."""

    def __init__(self) -> None:
        self.events_received = 0  # stream events received from actors
        self.commands: Counter[str] = Counter()  # commands sent to actors, by kind
        self.refused: Counter[str] = Counter()  # commands refused before reaching an actor, by reason


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.traffic = TrafficCounts()
        self.fanout_seconds = Histogram(
            "wrencos_fanout_seconds",
            "From this gateway receiving a batch of a stream's events to their write to every local socket "
            "(includes the write or batch tick)",
            buckets=FANOUT_BUCKETS,
            registry=self.registry,
        )
        self.actor_call_seconds = Histogram(
            "wrencos_actor_call_seconds",
            "Ray actor calls that are not long polls, by method",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=self.registry,
        )
        self.actor_call_errors = PromCounter(
            "wrencos_actor_call_errors_total",
            "Ray actor calls that failed, by method and error (retried or not)",
            ["method", "error"],
            registry=self.registry,
        )
        self.dependency_up = Gauge(
            "wrencos_dependency_up",
            "1 when the dependency answered the last /ready check in time, 0 when it did not",
            ["dependency"],
            registry=self.registry,
        )
        self.gc_pauses = GcPauses(self.registry)

    def bind(self, read: Callable[[], LiveGauges]) -> None:
        """Call `read` at each scrape for the gauges (nothing is counted on the hot path for them)."""
        self.registry.register(_LiveCollector(read, self.traffic))

    # The actor clients' observer (`actors.call_policy.CallObserver`): told of every call they make.

    def call_done(self, method: str, seconds: float) -> None:
        """An actor call answered after `seconds` (long polls are not told)."""
        self.actor_call_seconds.labels(method).observe(seconds)

    def call_failed(self, method: str, error: Exception) -> None:
        """One attempt of an actor call failed (retried or not), by the client's error class."""
        self.actor_call_errors.labels(method, type(error).__name__).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, read: Callable[[], LiveGauges], traffic: TrafficCounts) -> None:
        self.read, self.traffic = read, traffic

    def collect(self) -> Iterator[Any]:
        now = self.read()
        conns = GaugeMetricFamily(
            "wrencos_connections", "Open WebSocket connections on this gateway, by protocol", labels=["protocol"]
        )
        conns.add_metric(["1"], now.connections_v1)
        conns.add_metric(["2"], now.connections_v2)
        yield conns
        yield GaugeMetricFamily("wrencos_watchers", "Connections watching a stream on this gateway", value=now.watchers)
        yield GaugeMetricFamily(
            "wrencos_live_streams", "Live streams in the cluster, as this gateway knows it", value=now.live_streams
        )
        yield GaugeMetricFamily(
            "wrencos_relays_active",
            "Live streams this gateway receives events of (it has viewers or admins of them)",
            value=now.relays_active,
        )
        yield GaugeMetricFamily(
            "wrencos_draining", "1 while this gateway drains (no new connections)", value=1 if now.draining else 0
        )
        yield GaugeMetricFamily(
            "wrencos_outbox_queued",
            "Commands queued on this gateway toward stream actors (each like tap counted)",
            value=now.outbox_queued,
        )
        yield GaugeMetricFamily(
            "wrencos_streams_degraded",
            "Followed streams whose actor last reported itself unhealthy (storage retrying)",
            value=now.streams_degraded,
        )
        yield CounterMetricFamily(
            "wrencos_stream_events_received",
            "Stream events received from stream actors",
            value=self.traffic.events_received,
        )
        yield CounterMetricFamily(
            "wrencos_frames_sent", "WebSocket frames written to viewers (each event or batch)", value=now.frames_sent
        )
        commands = CounterMetricFamily(
            "wrencos_commands_sent", "Commands sent to stream actors, by kind", labels=["command"]
        )
        for kind, n in sorted(self.traffic.commands.items()):
            commands.add_metric([kind], n)
        yield commands
        refused = CounterMetricFamily(
            "wrencos_commands_refused",
            "Commands this gateway refused before sending them, by reason",
            labels=["reason"],
        )
        for reason, n in sorted(self.traffic.refused.items()):
            refused.add_metric([reason], n)
        yield refused
