"""What an actor needs to know, passed explicitly when it is created."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from persistence.database import DatabaseConfig


@dataclass(frozen=True, slots=True)
class ActorConfig:
    db: DatabaseConfig
    history_size: int = 50  # chat messages kept in memory and sent on join
    update_interval: float = 0.25  # seconds between coalesced stream_update events
    commit_interval: float = 0.02  # at most one database commit per stream per this many seconds
    event_log_size: int = 4096  # published events kept for polls and resumption
    gateway_lease: float = 6.0  # a gateway silent this long has its viewers removed
    snapshot_interval: float = 2.0  # a full checkpoint at most this often; the journal covers the rest
    max_pending_commands: int = 50_000  # beyond this (storage down), new commands are refused
    spare_actors: int = 2  # stream actors kept started ahead, so going live costs no process start
    # The spare pool grows toward the recent go-live rate, up to `spare_actors_max`, and shrinks
    # back to `spare_actors` after `spare_idle_seconds` without one (see `registry_actor.SparePlan`).
    spare_actors_max: int = 8
    spare_idle_seconds: float = 60.0
    # Spares started at once. Ray itself starts at most one worker process per CPU at a time
    # (`RAY_worker_maximum_startup_concurrency`), so more than that only queues in the raylet.
    spare_starts_parallel: int = 2
    # A scheduled stream gets its actor started this long before `scheduledAt` (0: off); see `core.prewarm_plan`.
    prewarm_seconds: float = 120.0
    # A go-live that finds no `stream` capacity gives up after this long (503, the stream stays scheduled).
    go_live_timeout: float = 60.0
    log_level: str = "info"
    log_format: str = "json"  # "json" or "console": the format `wrencos` logs in (runtime/logs.py)
    # For tests only, never set in production: a commit holding a chat message that contains this
    # text raises inside `StreamActor._commit_once`, after the inbox is taken and the commit applied
    # (before it is stored), as a bug would. Off (None) unless a test passes it, or sets
    # FAULT_INJECT_COMMIT_ENV in the environment of the process that makes the config (a gateway).
    fault_inject_commit: str | None = field(default_factory=lambda: os.environ.get(FAULT_INJECT_COMMIT_ENV) or None)


FAULT_INJECT_COMMIT_ENV = "WRENCOS_TEST_FAULT_INJECT_COMMIT"  # tests only: see `ActorConfig.fault_inject_commit`
