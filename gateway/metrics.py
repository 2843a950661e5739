"""`GatewayMetrics`: what a gateway exposes at `/metrics` for Prometheus.

Counts that change on the hot path (frames written, events received,
commands sent) are plain integers kept by the parts that do the work and read
only when Prometheus scrapes, so the fan-out pays nothing for them. Timings
are Prometheus histograms, observed once per batch or per tick, never per
viewer.

Every series is per gateway process; sum over gateways for the cluster.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import CollectorRegistry, Counter as PromCounter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from wrencos.gc_policy import GcPauses

if TYPE_CHECKING:
    from gateway.hub import Hub
    from gateway.live_directory import LiveDirectory

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Fan-out is tens of milliseconds when healthy (the write and batch ticks are 40 and 100 ms).
FANOUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class TrafficCounts:
    """Plain counters the relays bump on the hot path (read at scrape time)."""

    def __init__(self) -> None:
        self.events_received = 0  # stream events received from actors
        self.commands: Counter[str] = Counter()  # commands sent to actors, by kind


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.traffic = TrafficCounts()
        self.fanout_seconds = Histogram(
            "wrencos_fanout_seconds",
            "From this gateway receiving a batch of a stream's events to their write to every local socket "
            "(includes the write or batch tick)",
            buckets=FANOUT_BUCKETS, registry=self.registry)
        self.actor_call_seconds = Histogram(
            "wrencos_actor_call_seconds", "Ray actor calls that are not long polls, by method",
            ["method"], buckets=CALL_BUCKETS, registry=self.registry)
        self.actor_call_errors = PromCounter(
            "wrencos_actor_call_errors_total", "Ray actor calls that failed, by method and error (retried or not)",
            ["method", "error"], registry=self.registry)
        self.gc_pauses = GcPauses(self.registry)

    def bind(self, hub: Hub, directory: LiveDirectory, is_draining: Any) -> None:
        """Read gauges and hot-path counters from these at scrape time."""
        self.registry.register(_LiveCollector(hub, directory, self.traffic, is_draining))

    @contextmanager
    def actor_call(self, method: str) -> Iterator[None]:
        """Time one actor call and count it as an error if it raises."""
        start = time.perf_counter()
        try:
            yield
        except BaseException as e:
            self.error(method, e)
            raise
        finally:
            self.actor_call_seconds.labels(method).observe(time.perf_counter() - start)

    def error(self, method: str, e: BaseException) -> None:
        self.actor_call_errors.labels(method, type(e).__name__).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, hub: Hub, directory: LiveDirectory, traffic: TrafficCounts, is_draining: Any) -> None:
        self.hub, self.directory, self.traffic, self.is_draining = hub, directory, traffic, is_draining

    def collect(self) -> Iterator[Any]:
        hub, directory = self.hub, self.directory
        conns = GaugeMetricFamily("wrencos_connections", "Open WebSocket connections on this gateway, by protocol",
                                  labels=["protocol"])
        by_protocol = Counter("2" if c.protocol >= 2 else "1" for c in hub.connections)
        for protocol in ("1", "2"):
            conns.add_metric([protocol], by_protocol.get(protocol, 0))
        yield conns
        yield GaugeMetricFamily("wrencos_watchers", "Connections watching a stream on this gateway",
                                value=sum(1 for c in hub.connections if c.watching is not None))
        yield GaugeMetricFamily("wrencos_live_streams", "Live streams in the cluster, as this gateway knows it",
                                value=len(directory.live))
        yield GaugeMetricFamily("wrencos_relays_active",
                                "Live streams this gateway receives events of (it has viewers or admins of them)",
                                value=sum(1 for r in directory.relays.values() if r.active))
        yield GaugeMetricFamily("wrencos_draining", "1 while this gateway drains (no new connections)",
                                value=1 if self.is_draining() else 0)
        yield CounterMetricFamily("wrencos_stream_events_received", "Stream events received from stream actors",
                                  value=self.traffic.events_received)
        yield CounterMetricFamily("wrencos_frames_sent", "WebSocket frames written to viewers (each event or batch)",
                                  value=hub.frames_out)
        commands = CounterMetricFamily("wrencos_commands_sent", "Commands sent to stream actors, by kind",
                                       labels=["command"])
        for kind, n in sorted(self.traffic.commands.items()):
            commands.add_metric([kind], n)
        yield commands
