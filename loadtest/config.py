"""Options of a load test run, gateway URL handling and thresholds."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class Gateway:
    """One gateway: its REST base URL and its WebSocket URL."""

    http: str
    ws: str

    @staticmethod
    def parse(url: str) -> Gateway:
        """Accepts `http://host:port`, `https://...`, `ws://host:port/` or `wss://host:port/ws`."""
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"gateway URL must be http(s):// or ws(s)://, got {url!r}")
        secure = scheme in ("https", "wss")
        http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
        ws_path = parts.path if scheme in ("ws", "wss") and parts.path else "/"
        ws = urlunsplit(("wss" if secure else "ws", parts.netloc, ws_path, "", ""))
        return Gateway(http=http, ws=ws)


@dataclass(slots=True)
class Thresholds:
    """Limits checked at the end; any one missed makes the command exit 1.

    `max_loss` and `min_connect_rate` are ratios (0.001 = 0.1 %)."""

    max_p50_ms: float | None = None
    max_p99_ms: float | None = None
    max_loss: float | None = None
    min_connect_rate: float | None = None
    max_connect_p99_ms: float | None = None
    max_errors: int | None = None
    max_reorders: int | None = None
    min_deliveries_per_s: float | None = None

    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in self.__slots__)


@dataclass(slots=True)
class LoadConfig:
    """Everything a run needs. Rates are per stream; `ramp` is viewers per second over the whole run."""

    gateways: list[Gateway]
    streams: int = 1
    viewers: int = 100
    stream_ids: list[str] = field(default_factory=list)
    ramp: float = 500.0
    duration: float = 30.0
    drain: float = 3.0
    settle: float = 10.0  # with likes: after the drain, at most this long more for like counts to stop changing
    chat_rate: float = 5.0
    chat_start: float = 0.0
    like_rate: float = 0.0
    message_bytes: int = 0
    protocol: int = 1
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    pin_every: float = 0.0
    flash_sale_at: list[float] = field(default_factory=list)
    flash_sale_path: str = "/livestreams/{stream_id}/flash-sales"
    stop_at: float | None = None
    actions: list[tuple[str, float]] = field(default_factory=list)
    admin_email: str | None = None
    admin_password: str | None = None
    admin_token: str | None = None
    keep_streams: bool = False
    out_dir: Path = Path("loadtest-results")
    json_path: Path | None = None
    html_path: Path | None = None
    name: str = "loadtest"
    connect_timeout: float = 10.0
    max_reconnects: int = 5
    connect_concurrency: int = 200
    live: bool = True
    thresholds: Thresholds = field(default_factory=Thresholds)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def total_viewers(self) -> int:
        return self.viewers * (len(self.stream_ids) or self.streams)

    def public(self) -> dict[str, object]:
        """The options as they go into the report (no secrets)."""
        return {
            "gateways": [g.http for g in self.gateways],
            "streams": len(self.stream_ids) or self.streams,
            "viewersPerStream": self.viewers,
            "streamIds": list(self.stream_ids),
            "ramp": self.ramp,
            "duration": self.duration,
            "drain": self.drain,
            "settle": self.settle,
            "chatRate": self.chat_rate,
            "likeRate": self.like_rate,
            "chatStart": self.chat_start,
            "messageBytes": self.message_bytes,
            "protocol": self.protocol,
            "workers": self.workers,
            "pinEvery": self.pin_every,
            "flashSaleAt": self.flash_sale_at,
            "stopAt": self.stop_at,
            "actions": [f"{n}@{t}" for n, t in self.actions],
            "runId": self.run_id,
            "connectTimeout": self.connect_timeout,
            "maxReconnects": self.max_reconnects,
            "name": self.name,
        }
