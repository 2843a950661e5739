"""Opted-in apps (protocol 2) that account for every command they send, as the client contract
asks of them: each chat message and like toggle carries a `clientMsgId`; it is answered by an `ack`
(stored) or an `error` carrying the id; what is in flight when the connection drops is sent again
with the same id after the reconnect (the stream stores a resend once), and so is a refusal (the
busy answers say when to retry).

A command unanswered `SLOW_AFTER_S` after it was sent, on a connection that stayed open, is slow
(listed, with when); one unanswered `HUNG_AFTER_S` after is hung, and nothing may be. The two
differ on purpose: while the database is down, the stream keeps the commands it holds and answers
them when it is back (its documented design), so an answer may take as long as the outage; the
hung bound is twice the longest outage of the schedule (`faults.DB_HANG_MAX_S`).

At the end, every acknowledged chat text and each session's last acknowledged like state are what
the database must hold for the stream (`verdict`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

SLOW_AFTER_S = 10.0
HUNG_AFTER_S = 60.0
CONNECT_TIMEOUT_S = 10.0
PREFIX = "soak "  # every chat text of the soak's apps starts with this


@dataclass
class Pending:
    """A command sent and not yet acknowledged."""

    frame: dict[str, Any]
    sent_at: float  # monotonic, of the latest send
    connection: int  # which connection it was last sent on
    slow: bool = False
    hung: bool = False


@dataclass
class Ledger:
    """What all the apps of a soak sent and got back (shared, so the figures add up)."""

    sent: int = 0
    resent: int = 0
    acked_chat: list[str] = field(default_factory=list)
    acked_likes: int = 0
    acks_by_second: Counter[int] = field(default_factory=Counter)
    ack_times: list[float] = field(default_factory=list)  # seconds since the start, of every ack
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    slow: list[dict[str, Any]] = field(default_factory=list)
    hung: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acked(self) -> int:
        return len(self.acked_chat) + self.acked_likes


class OptedInApp:
    """One app session on one gateway, sending chat (and now and then a like toggle) to one stream."""

    def __init__(
        self, name: str, ws_url: str, stream_id: str, ledger: Ledger, started: float, chat_per_s: float
    ) -> None:
        self.name = name
        self.ws_url = ws_url
        self.stream_id = stream_id
        self.ledger = ledger
        self.started = started
        self.period = 1.0 / chat_per_s
        self.pending: dict[str, Pending] = {}
        self.liked: bool | None = None  # the state of the last acknowledged toggle
        self.ws: ClientConnection | None = None
        self.connection = 0
        self.sending = True
        self.closing = False
        self.n = 0
        self._resends: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Stay connected (reconnecting as the apps do) until `stop()`; send while `sending`."""
        sender = asyncio.create_task(self._send_loop())
        watchdog = asyncio.create_task(self._watch_hung())
        failures = 0
        try:
            while True:
                if await self._connection():
                    failures = 0
                else:
                    failures += 1
                if self.closing:
                    return
                self.ledger.reconnects += 1
                await asyncio.sleep(min(0.5 * 2**failures, 4.0) * (0.8 + 0.4 * random.random()))
        finally:
            sender.cancel()
            watchdog.cancel()
            await asyncio.gather(sender, watchdog, return_exceptions=True)

    async def _connection(self) -> bool:
        """One connection: register, resend what is pending, read answers until it closes.
        True if it got to watching."""
        try:
            ws = await asyncio.wait_for(connect(self.ws_url, open_timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 1)
        except (OSError, TimeoutError, WebSocketException) as e:
            self.ledger.errors[f"ws connect: {type(e).__name__}"] += 1
            return False
        watching = False
        try:
            await ws.send(
                orjson.dumps(
                    {"type": "register", "sessionId": self.name, "streamId": self.stream_id, "protocol": 2}
                ).decode()  # a text frame, as the apps send
            )
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                async for raw in ws:
                    if orjson.loads(raw).get("type") == "chat_history":
                        break
            watching = True
            self.connection += 1
            self.ws = ws
            for cid, p in list(self.pending.items()):  # in the order first sent: the same ids, stored once
                await self._send(cid, p.frame, resend=True)
            async for raw in ws:
                self._on_frame(orjson.loads(raw))
        except (OSError, TimeoutError, WebSocketException) as e:
            self.ledger.errors[f"ws {'closed' if watching else 'register'}: {type(e).__name__}"] += 1
        finally:
            self.ws = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        if watching and ws.close_code is not None and not self.closing:
            self.ledger.errors[f"ws closed by server: {ws.close_code}"] += 1
        return watching

    async def _send(self, cid: str, frame: dict[str, Any], resend: bool = False) -> None:
        ws = self.ws
        self.pending[cid] = Pending(frame, time.monotonic(), self.connection)
        if ws is None:
            return  # sent on the next connection
        if resend:
            self.ledger.resent += 1
        await ws.send(orjson.dumps(frame).decode())

    async def _send_loop(self) -> None:
        while self.sending:
            await asyncio.sleep(self.period * (0.5 + random.random()))
            if self.ws is None or not self.sending:
                continue
            self.n += 1
            cid = f"c{self.n}"
            text = f"{PREFIX}{self.name} {self.n}"
            self.ledger.sent += 1
            with contextlib.suppress(WebSocketException):
                await self._send(cid, {"type": "chat_message", "message": text, "clientMsgId": cid})
            # One like toggle in flight at a time, so the last acknowledged one is the session's state.
            if self.n % 4 == 0 and not any(k.startswith("l") for k in self.pending):
                self.ledger.sent += 1
                with contextlib.suppress(WebSocketException):
                    await self._send(f"l{self.n}", {"type": "toggle_like", "clientMsgId": f"l{self.n}"})

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        cid = frame.get("clientMsgId")
        if kind == "ack" and isinstance(cid, str):
            p = self.pending.pop(cid, None)
            if p is None:
                return  # the ack of a resend whose first answer already came
            at = time.monotonic() - self.started
            self.ledger.acks_by_second[int(at)] += 1
            self.ledger.ack_times.append(at)
            if cid.startswith("c"):
                self.ledger.acked_chat.append(p.frame["message"])
            else:
                self.ledger.acked_likes += 1
                self.liked = bool(frame.get("liked"))
        elif kind == "error":
            self.ledger.errors[f"error frame: {frame.get('code') or frame.get('message')}"] += 1
            if isinstance(cid, str) and cid in self.pending:
                # Refused (busy, reloading, ...): an opted-in app sends it again later, with the same id.
                retry = frame.get("retryAfter")
                delay = float(retry) if isinstance(retry, (int, float)) else 1.0
                asyncio.get_running_loop().call_later(min(delay, 5.0), self._resend_later, cid)

    def _resend_later(self, cid: str) -> None:
        p = self.pending.get(cid)
        if p is not None and self.ws is not None:
            task = asyncio.ensure_future(self._resend(cid, p))
            self._resends.add(task)
            task.add_done_callback(self._resends.discard)

    async def _resend(self, cid: str, p: Pending) -> None:
        with contextlib.suppress(WebSocketException):
            await self._send(cid, p.frame, resend=True)

    async def _watch_hung(self) -> None:
        """Mark the commands unanswered for `SLOW_AFTER_S` (then `HUNG_AFTER_S`) on the connection
        that is still the open one: an answer that can still come on it is late, not lost."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for cid, p in self.pending.items():
                if self.ws is None or p.connection != self.connection:
                    continue
                waited = now - p.sent_at
                for bound, flag, into in (
                    (SLOW_AFTER_S, "slow", self.ledger.slow),
                    (HUNG_AFTER_S, "hung", self.ledger.hung),
                ):
                    if waited > bound and not getattr(p, flag):
                        setattr(p, flag, True)
                        into.append(
                            {"app": self.name, "clientMsgId": cid, "sentAtS": round(p.sent_at - self.started, 1)}
                        )

    def stop_sending(self) -> None:
        self.sending = False

    async def close(self) -> None:
        """Close the connection; `run()` returns instead of reconnecting."""
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
