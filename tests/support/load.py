"""Chat and like load for fault-injection tests, with what it saw, stamped.

`App` is one app on a real WebSocket: an opted-in one (`protocol: 2`, every
chat and like carrying a `clientMsgId` that the gateway answers with `ack` or
`error`, events in `batch` frames, `resume` on reconnect) or an old one (no
protocol field, plain `chat_message` / `toggle_like` frames, events one per
frame). `Load` runs several of each sending chat and likes at a steady pace,
plus a REST prober and a memory sampler of the gateways, until stopped; then
it says what was acknowledged, how long every answer took, and when chat
flowed again after a fault. Every time is `time.monotonic()`, and every wait
has a timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.clients import Frame, WsClient

CHAT_EVERY_S = 0.4  # per app: 2.5 chat messages a second, within the per-connection chat limit (5/s)
LIKE_EVERY = 3  # a like toggle after every third chat message
REST_EVERY_S = 0.5
SAMPLE_EVERY_S = 0.5


def _ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/"


class App:
    """One app connection that sends chat and likes and watches the stream.
    `sent`: its chat text and like ids, with when each was sent (text -> time;
    a like's key is its client id)."""

    def __init__(self, tag: str, url: str, opted_in: bool) -> None:
        self.tag = tag
        self.opted_in = opted_in
        self.session_id = f"{tag}-{time.monotonic_ns() % 10**9}"
        self.url = url
        self.client = WsClient(_ws(url))
        self.sent: dict[str, float] = {}
        self.chat_ids: dict[str, str] = {}  # client id -> chat text (opted-in)
        self.like_ids: list[str] = []  # client ids of like toggles (opted-in)
        self.old_clients: list[WsClient] = []  # connections before a reconnect
        self.lost: set[str] = set()  # client ids sent on a connection that died before answering
        self.paused = False  # not sending (while it reconnects)
        self._n = itertools.count()

    async def connect(self, stream_id: str) -> None:
        """Register as the app would and wait for its chat history. An opted-in app names the stream
        and asks for protocol 2; an old app names neither (it watches the only live stream)."""
        await self.client.__aenter__()
        frame: dict[str, Any] = {"type": "register", "sessionId": self.session_id}
        if self.opted_in:
            frame.update(protocol=2, streamId=stream_id)
        await self.client.send(frame)
        await self.client.wait_type("chat_history", timeout=30.0)

    async def reconnect(self, url: str, stream_id: str) -> Frame | None:
        """Connect again (to `url`), as an app does when its gateway went away. An opted-in app resumes
        from the last event it saw and returns the gateway's `resumed` or `resume_failed` answer."""
        self.old_clients.append(self.client)
        self.lost |= set(self.unanswered())
        last = self.last_position()
        self.url = url
        self.client = WsClient(_ws(url))
        await self.client.__aenter__()
        frame: dict[str, Any] = {"type": "register", "sessionId": self.session_id}
        if self.opted_in:
            frame.update(protocol=2, streamId=stream_id)
            if last is not None:
                frame["resume"] = {"seq": last[0], "epoch": last[1]}
        await self.client.send(frame)
        if self.opted_in and last is not None:
            return await self.client.wait_for(lambda f: f.get("type") in ("resumed", "resume_failed"), timeout=30.0)
        await self.client.wait_type("chat_history", timeout=30.0)
        return None

    def last_position(self) -> tuple[int, str] | None:
        """(seq, epoch) of the last event this opted-in app saw."""
        for f in reversed([f for c in self.connections() for f in c.frames]):
            if f.get("type") == "batch" and f["events"]:
                return int(f["events"][-1]["seq"]), str(f["events"][-1]["epoch"])
        return None

    def connections(self) -> list[WsClient]:
        return [*self.old_clients, self.client]

    async def send_chat(self, scenario: str) -> None:
        n = next(self._n)
        text = f"{scenario}:{self.tag}:{n}"
        frame: dict[str, Any] = {"type": "chat_message", "message": text, "username": self.tag}
        if self.opted_in:
            frame["clientMsgId"] = f"c{n}"
            self.chat_ids[f"c{n}"] = text
        self.sent[text] = time.monotonic()
        await self.client.send(frame)
        if n % LIKE_EVERY == LIKE_EVERY - 1:
            like: dict[str, Any] = {"type": "toggle_like", "sessionId": self.session_id}
            if self.opted_in:
                like["clientMsgId"] = f"l{n}"
                self.like_ids.append(f"l{n}")
                self.sent[f"l{n}"] = time.monotonic()
            await self.client.send(like)

    def answers(self) -> dict[str, tuple[Frame, float]]:
        """Client id -> the first `ack` or `error` carrying it, and when it arrived."""
        found: dict[str, tuple[Frame, float]] = {}
        for c in self.connections():
            for f, at in zip(c.frames, c.arrived_at, strict=True):
                cid = f.get("clientMsgId")
                if f.get("type") in ("ack", "error") and cid is not None and cid not in found:
                    found[cid] = (f, at)
        return found

    def unanswered(self) -> list[str]:
        answered = self.answers()
        return [cid for cid in [*self.chat_ids, *self.like_ids] if cid not in answered and cid not in self.lost]

    def acked_chat(self) -> list[str]:
        """This app's chat the gateway acknowledged (stored), in sending order."""
        answered = self.answers()
        return [text for cid, text in self.chat_ids.items() if answered.get(cid, ({}, 0.0))[0].get("type") == "ack"]

    def chat_seen(self) -> list[tuple[str, float]]:
        """Every chat message this app received as an event (history excluded), with when."""
        seen = []
        for c in self.connections():
            for f, at in zip(c.frames, c.arrived_at, strict=True):
                if f.get("type") == "batch":
                    seen += [(e["message"], at) for e in f["events"] if e.get("type") == "chat_message"]
                elif f.get("type") == "chat_message":
                    seen.append((f["message"], at))
        return seen

    async def close(self) -> None:
        for c in self.connections():
            await c.close()


@dataclass
class Probe:
    """One REST request the prober made: what, its status, how long it took."""

    what: str
    status: int  # 0: no answer at all (transport error or the prober's own timeout)
    seconds: float
    retry_after: str | None
    json_body: bool


@dataclass
class Load:
    """Apps sending chat and likes to one stream, a REST prober and a gateway memory sampler.

    `gateways`: base URL -> pid of the gateways to sample (RSS) and probe (REST, `/metrics`)."""

    scenario: str
    stream_id: str
    apps: list[App]
    gateways: dict[str, int]
    probes: list[Probe] = field(default_factory=list)
    rss_kib: dict[str, list[int]] = field(default_factory=dict)
    outbox: dict[str, list[float]] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        for app in self.apps:
            await app.connect(self.stream_id)
        self._tasks = [asyncio.create_task(self._send(app)) for app in self.apps]
        self._tasks += [asyncio.create_task(self._probe(url)) for url in self.gateways]
        self._tasks.append(asyncio.create_task(self._sample()))

    async def stop(self) -> None:
        """Stop sending and probing (what is in flight is still answered; see `settle`)."""
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 90.0)

    def drop_gateway(self, url: str) -> None:
        """A gateway that is gone: no more probes or samples of it."""
        self.gateways.pop(url, None)

    async def settle(self, timeout: float) -> None:
        """Wait until every opted-in command has its answer, or `timeout` passes (the caller asserts)."""
        deadline = time.monotonic() + timeout
        while any(app.unanswered() for app in self.apps if app.opted_in) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)

    async def _send(self, app: App) -> None:
        while not self._stop.is_set():
            if app.paused:
                await asyncio.sleep(CHAT_EVERY_S)
                continue
            try:
                await app.send_chat(self.scenario)
            except Exception:  # noqa: BLE001 - the socket went away with its gateway: the test reconnects the app
                pass
            await asyncio.sleep(CHAT_EVERY_S)

    async def _probe(self, url: str) -> None:
        """REST as apps use it while watching: read the stream and the live list, like, read chat.
        Each request may take up to 60 s before the prober gives up (status 0)."""
        sid = self.stream_id
        requests = [
            ("GET", "/livestreams/active", None),
            ("GET", f"/livestreams/{sid}", None),
            ("POST", f"/livestreams/{sid}/like", {"X-Session-Id": f"rest-{self.scenario}"}),
            ("GET", f"/livestreams/{sid}/chat?limit=5", None),
        ]
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
            while not self._stop.is_set() and url in self.gateways:
                for method, path, headers in requests:
                    began = time.monotonic()
                    try:
                        r = await http.request(method, path, headers=headers)
                        status, retry_after = r.status_code, r.headers.get("Retry-After")
                        json_body = r.headers.get("content-type", "").startswith("application/json")
                    except httpx.HTTPError:
                        status, retry_after, json_body = 0, None, False
                    if url in self.gateways:
                        self.probes.append(
                            Probe(f"{method} {path}", status, time.monotonic() - began, retry_after, json_body)
                        )
                await asyncio.sleep(REST_EVERY_S)

    async def _sample(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            while not self._stop.is_set():
                for url, pid in list(self.gateways.items()):
                    rss = rss_kib(pid)
                    if rss is not None:
                        self.rss_kib.setdefault(url, []).append(rss)
                    try:
                        text = (await http.get(f"{url}/metrics")).text
                    except httpx.HTTPError:
                        continue
                    queued = metric(text, "wrencos_outbox_queued")
                    if queued is not None:
                        self.outbox.setdefault(url, []).append(queued)
                await asyncio.sleep(SAMPLE_EVERY_S)

    # ------------------------------------------------------------ what it saw

    def opted_in(self) -> list[App]:
        return [a for a in self.apps if a.opted_in]

    def answer_seconds(self) -> list[float]:
        """How long each opted-in command waited for its ack or error."""
        waits = []
        for app in self.opted_in():
            for cid, (_, at) in app.answers().items():
                text = app.chat_ids.get(cid, cid)
                if text in app.sent:
                    waits.append(at - app.sent[text])
        return waits

    def refusals(self) -> Counter[str]:
        """The codes of the error answers the opted-in apps got."""
        return Counter(
            str(f.get("code")) for app in self.opted_in() for f, _ in app.answers().values() if f["type"] == "error"
        )

    def chat_flowing_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first chat message sent at or after it that any app received."""
        sent = {text: at for app in self.apps for text, at in app.sent.items()}
        firsts = [at for app in self.apps for text, at in app.chat_seen() if sent.get(text, -1.0) >= moment]
        return min(firsts) - moment if firsts else None


def rss_kib(pid: int) -> int | None:
    """The resident memory of a process, in KiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def metric(text: str, name: str) -> float | None:
    """The value of an unlabelled gauge in a Prometheus text page."""
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None
