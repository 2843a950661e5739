"""`wrencos viewer STREAM_ID`: watch a stream from a terminal, as a customer's app does.

Connects to the gateway's WebSocket (the load tester's client, `loadtest.wsclient`),
registers for the stream (as a guest, or logged in with `--email`), sends `--say TEXT`
as a chat message once registered, and prints what arrives, one line per event, until
`--seconds` have passed or Ctrl-C. Exit code 0; 1 when the gateway refused the
registration or the message (the reason is printed), 2 when nothing answered.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Callable
from typing import Any

import orjson

from loadtest.wsclient import HandshakeError, WsClient, connect
from wrencos.command_errors import CANNOT_RUN, REFUSED, CommandError
from wrencos.gateway_api import unreachable_reason

CONNECT_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 15.0  # a registration (or a chat message) not answered within this is a failure


def describe(frame: dict[str, Any]) -> str:
    """One line for a frame: the fields a person reads first, the rest as JSON."""
    kind = str(frame.get("type"))
    match kind:
        case "chat_message":
            mark = " [admin]" if frame.get("isAdmin") else ""
            return f"chat_message {frame.get('username')}{mark}: {frame.get('message')}"
        case "stream_update":
            return f"stream_update viewers={frame.get('viewerCount')} likes={frame.get('likes')}"
        case "chat_history":
            return f"chat_history {len(frame.get('messages') or [])} message(s)"
        case "stream_started":
            data = frame.get("streamData") or {}
            return f"stream_started {frame.get('streamId')} {data.get('title')!r}"
        case "error":
            return f"error [{frame.get('code')}] {frame.get('message')}"
    rest = {k: v for k, v in frame.items() if k != "type"}
    return f"{kind} {orjson.dumps(rest).decode()}"


class _Watch:
    """What the viewer has seen so far; `answered` is set once its registration and its
    message (if any) have their answer, `failure` says why when that answer is a refusal."""

    def __init__(self, stream_id: str, say: str | None, name: str | None, out: Callable[[str], None]) -> None:
        self.stream_id = stream_id
        self.say = say
        self.name = name
        self.out = out
        self.client_msg_id = f"cli-{secrets.token_hex(4)}"
        self.registered = False
        self.answered = asyncio.Event()
        self.failure: str | None = None
        self.ws: WsClient | None = None

    def on_message(self, payload: bytes, _now: int) -> None:
        frame = orjson.loads(payload)
        frames = frame.get("events", []) if frame.get("type") == "batch" else [frame]
        for f in frames:
            self.out(describe(f))
            self.seen(f)

    def seen(self, f: dict[str, Any]) -> None:
        kind = f.get("type")
        if kind == "chat_history" and not self.registered:
            # The last answer to a registration: the stream's state and history have arrived.
            self.registered = True
            if self.say is None:
                self.answered.set()
            elif self.ws is not None:
                chat = {"type": "chat_message", "message": self.say, "streamId": self.stream_id}
                if self.name:
                    chat["username"] = self.name  # a guest's name; an account chats under its own
                self.ws.send_text(orjson.dumps({**chat, "clientMsgId": self.client_msg_id}))
        elif kind == "ack" and f.get("clientMsgId") == self.client_msg_id:
            self.answered.set()
        elif kind == "error" and (not self.registered or f.get("clientMsgId") == self.client_msg_id):
            self.failure = str(f.get("message"))
            self.answered.set()


async def watch(
    ws_url: str,
    stream_id: str,
    *,
    token: str | None,
    name: str | None,
    say: str | None,
    seconds: float | None,
    out: Callable[[str], None] = print,
) -> int:
    """Watch until `seconds` pass (None: until cancelled); the exit code."""
    state = _Watch(stream_id, say, name, out)
    try:
        ws = await connect(ws_url, state.on_message, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, HandshakeError) as e:
        raise CommandError(
            f"no gateway answers at {ws_url} ({unreachable_reason(e)}): start one with `make run`, "
            "or give its URL with --gateway",
            CANNOT_RUN,
        ) from None
    state.ws = ws
    register: dict[str, Any] = {"type": "register", "sessionId": f"cli-{secrets.token_hex(6)}", "streamId": stream_id}
    if token:
        register["token"] = token
    ws.send_text(orjson.dumps(register))
    try:
        async with asyncio.timeout(seconds):
            answered: asyncio.Future[Any] = asyncio.ensure_future(state.answered.wait())
            either: list[asyncio.Future[Any]] = [answered, ws.closed]
            done, _ = await asyncio.wait(either, timeout=ANSWER_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
            answered.cancel()
            if not done:
                state.failure = f"no answer from the gateway within {ANSWER_TIMEOUT_S:g} s"
            elif state.failure is None:
                await asyncio.shield(ws.closed)  # print events until the time is up or the gateway closes
    except TimeoutError:
        pass  # --seconds are up
    if state.failure is None and not state.answered.is_set():
        state.failure = "no answer from the gateway before --seconds ran out"
    if state.failure is None and ws.closed.done():
        state.failure = f"the gateway closed the connection (code {ws.close_code})"
    await ws.close()
    if state.failure is not None:
        print(f"error: {state.failure}", file=sys.stderr)
        return REFUSED
    return 0
