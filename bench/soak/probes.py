"""REST probes: `GET /ready` and `GET /livestreams/active` on every gateway once a second, each with
a client timeout of `TIMEOUT_S`. An answer of any status is an answer; a refused connection (the
gateway is down) is counted by kind; only a request that got no answer within the timeout is hung."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

TIMEOUT_S = 10.0
PATHS = ("/ready", "/livestreams/active")


@dataclass
class ProbeLog:
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "GET /ready 503"
    failures: Counter[str] = field(default_factory=Counter)  # "GET /ready ConnectError"
    hung: list[dict[str, Any]] = field(default_factory=list)
    slowest_s: float = 0.0


async def probe_forever(gateways: list[tuple[str, str]], log: ProbeLog, started: float) -> None:
    """Probe each (name, base URL) every second until cancelled; each probe runs on its own so a slow
    answer never delays the next second's probes."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT_S), limits=httpx.Limits(max_connections=200)) as c:
        tasks: set[asyncio.Task[None]] = set()

        async def one(name: str, url: str, path: str) -> None:
            t0 = time.monotonic()
            log.requests += 1
            try:
                r = await c.get(url + path)
                log.statuses[f"GET {path} {r.status_code}"] += 1
            except httpx.TimeoutException as e:
                log.hung.append(
                    {"gateway": name, "path": path, "at_s": round(t0 - started, 1), "error": type(e).__name__}
                )
            except httpx.HTTPError as e:
                log.failures[f"GET {path} {type(e).__name__}"] += 1
            log.slowest_s = max(log.slowest_s, time.monotonic() - t0)

        try:
            while True:
                for name, url in gateways:
                    for path in PATHS:
                        task = asyncio.create_task(one(name, url, path))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                await asyncio.sleep(1.0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
