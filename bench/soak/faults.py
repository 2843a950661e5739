"""The fault schedule of a soak, scaled to its length, and the injection of each fault.

Every fault is real: a signal to a real process, or a stop and start of one. Kinds:

* `actor_kill`: SIGKILL the process of a stream's actor (found with `StreamClient.info()`); Ray
  restarts it and it recovers from its journal;
* `gateway_kill`: SIGKILL a gateway's process group, then start it again on the same port;
* `db_restart`: stop the database, keep it down a moment, start it on the same port and data;
* `db_hang`: SIGSTOP the database for a while, then SIGCONT (it holds every connection, answers nothing);
* `registry_kill`: SIGKILL the registry actor's process; Ray restarts it.

Faults never overlap: each starts once the one before it is over, at its scheduled time or later.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.registry_client import RegistryClient
from bench.soak.system import SoakSystem

KINDS = ("actor_kill", "gateway_kill", "db_restart", "db_hang", "registry_kill")
DB_DOWN_S = 2.0
DB_HANG_MAX_S = 30.0
CALL_TIMEOUT_S = 30.0


@dataclass
class Fault:
    at_s: float  # planned, seconds after the start of the load
    kind: str
    target: str = ""
    hold_s: float = 0.0  # how long a database hang lasts
    started_s: float | None = None  # when it happened
    ended_s: float | None = None  # when it was over (the restarted process ready, the database resumed)
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.started_s is not None and self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "plannedAtS": round(self.at_s, 1),
            "startedAtS": None if self.started_s is None else round(self.started_s, 1),
            "endedAtS": None if self.ended_s is None else round(self.ended_s, 1),
            "holdS": self.hold_s,
            "detail": self.detail,
            "error": self.error,
        }


def schedule(duration_s: float, streams: list[str], gateways: list[str]) -> list[Fault]:
    """Faults spread over the run at fixed fractions of it, every kind at least once, the last one
    at 85 % so that the end of the run shows the recovery. Longer runs (10 minutes or more) kill
    more actors and both gateways. The database hangs for 10 % of the run, at most 30 s."""
    plan: list[tuple[float, str]] = [
        (0.08, "actor_kill"),
        (0.18, "gateway_kill"),
        (0.30, "actor_kill"),
        (0.40, "db_restart"),
        (0.50, "actor_kill"),
        (0.58, "db_hang"),
        (0.75, "registry_kill"),
        (0.85, "actor_kill"),
    ]
    if duration_s >= 600:
        plan += [(0.24, "actor_kill"), (0.45, "registry_kill"), (0.66, "gateway_kill"), (0.70, "actor_kill")]
    faults: list[Fault] = []
    kills = gw_kills = 0
    for frac, kind in sorted(plan):
        f = Fault(frac * duration_s, kind)
        if kind == "actor_kill":
            f.target = streams[kills % len(streams)]
            kills += 1
        elif kind == "gateway_kill":
            f.target = gateways[gw_kills % len(gateways)]
            gw_kills += 1
        elif kind == "db_hang":
            f.hold_s = round(min(DB_HANG_MAX_S, 0.10 * duration_s), 1)
        faults.append(f)
    return faults


async def inject(fault: Fault, system: SoakSystem, clock: Callable[[], float]) -> None:
    """Do `fault` now; record when it started and ended, what it hit, or why it failed."""
    fault.started_s = clock()
    try:
        if fault.kind == "actor_kill":
            registry = await asyncio.to_thread(RegistryClient.find)
            if registry is None:
                raise RuntimeError("no registry")
            actor = await registry.stream_client(fault.target)
            if actor is None:
                raise RuntimeError(f"stream {fault.target} is not live")
            info = await actor.info(timeout_s=CALL_TIMEOUT_S)
            fault.started_s = clock()
            os.kill(int(info["pid"]), signal.SIGKILL)
            fault.detail = {"pid": int(info["pid"]), "seq": info.get("seq")}
        elif fault.kind == "gateway_kill":
            gw = next(g for g in system.gateways if g.name == fault.target)
            fault.detail = {"pid": system.kill_gateway(gw)}
            fault.detail["readyAfterS"] = round(await asyncio.to_thread(system.restart_gateway, gw), 1)
        elif fault.kind == "db_restart":
            fault.detail = {"pid": system.db_pid(), "downS": DB_DOWN_S}
            await asyncio.to_thread(system.restart_db, DB_DOWN_S)
        elif fault.kind == "db_hang":
            pid = system.db_pid()
            os.kill(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(fault.hold_s)
            finally:
                os.kill(pid, signal.SIGCONT)
            fault.detail = {"pid": pid}
        elif fault.kind == "registry_kill":
            registry = await asyncio.to_thread(RegistryClient.find)
            if registry is None:
                raise RuntimeError("no registry")
            pid = await asyncio.wait_for(registry.ping_pid(), CALL_TIMEOUT_S)
            fault.started_s = clock()
            os.kill(pid, signal.SIGKILL)
            fault.detail = {"pid": pid}
        else:
            raise ValueError(f"unknown fault kind {fault.kind}")
    except Exception as e:  # noqa: BLE001 - a fault that could not be injected is reported, and fails the verdict
        fault.error = f"{type(e).__name__}: {e}"
    fault.ended_s = clock()


async def run_schedule(faults: list[Fault], system: SoakSystem, started: float) -> None:
    """Inject the faults in order, each at its time (or as soon as the one before is over)."""

    def clock() -> float:
        return time.monotonic() - started

    for fault in faults:
        await asyncio.sleep(max(0.0, fault.at_s - clock()))
        await inject(fault, system, clock)
