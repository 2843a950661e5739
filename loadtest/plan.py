"""What the parent asks of one worker process (`runner.build_plans` makes them; the
worker receives its plan pickled, so everything here is plain data)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ViewerSpec:
    """One simulated app: the stream it watches, the gateway it connects to, its session id."""

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
