"""The apps' WebSocket protocol, one connection at a time.

`WsSession.handle_text` takes one inbound frame and does what the contract
says (docs/protocol.md, and `/asyncapi.json`). Frames from one connection are
handled in the order they arrive; commands for a stream are queued to its
relay in that order and answered (errors only, for the old protocol) when the
stream has stored them, without holding up the next frame.

Stream resolution for a stream-scoped frame: its `streamId` if given (must
be live), else the stream the connection watches, else the only live stream
(what old apps expect), else an error that says to send `streamId`. A viewer
whose stream has ended is not moved on: its frames without `streamId` are
refused (`stream_ended`, naming the stream) until it watches another stream,
never routed to whichever other stream is live.

Identity: a chat message from a logged-in connection carries the account's
display name (the frame's `username` is ignored); a guest's `username` may not
pass for staff (`core/chat_names.py`, code `name_reserved`). A `register` whose
token fails (code `invalid_token`, or `token_expired`) changes nothing on a
connection that is already registered or logged in: it stays who it was,
watching what it watched, and gets no `registered`. On a new connection it is
registered as a guest (`authenticated: false`) and told why, so an old app
holding an expired token still works as a guest.

An error that refuses a frame carrying a valid `clientMsgId` carries it too, so
a sender waiting for that message's `ack` learns it will not come.

Abuse limits, per connection (token buckets, `WS_*` settings): any frame,
chat messages and like toggles each have a rate and a burst. A frame over its
limit is dropped and answered `{"type":"error","code":"rate_limited",
"retryAfter":N,...}` (at most one such answer a second per limit, so a flood
cannot turn into a flood of errors); the connection stays open. Slow mode is
per stream and lives in the stream core, so it holds across gateways.

Moderation frames (`delete_message`, `mute_user`, `unmute_user`,
`set_blocked_words`, `set_slow_mode`) are for admins and for connections that
registered with a moderator's token; they become stream commands, so they
take effect on every gateway and reach viewers as events.

Pins and moderation are the services' (`gateway/services/pins.py`,
`moderation.py`), the same ones REST calls: a pin takes its product's name,
image and exact price from the catalogue, whatever the frame says. A service's
refusal (`ServiceError`) is answered as an error frame with its `code`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from actors.call_policy import ActorCallError
from core.chat_names import NameReserved, chat_name
from core.commands import Chat, Command, Join, Leave, ToggleLike
from core.results import Result
from core.wire import encode
from gateway.context import GatewayContext
from gateway.realtime import protocol as p
from gateway.security.credentials import InvalidToken
from gateway.security.ratelimit import RateBucket
from gateway.services.errors import INVALID, ServiceError
from gateway.services.moderation import may_moderate
from gateway.services.stream_commands import Queued
from gateway.streams.hub import batch_frame
from gateway.streams.stream_relay import on_result
from gateway.transport.connection import Connection

log = structlog.get_logger("gateway.ws")

# Frames `handle_now` takes straight from the socket (see `dispatch_now`).
_IMMEDIATE = frozenset({"toggle_like", "chat_message", "ping"})
SYNC_WAIT_S = 10.0  # a registration waits at most this for the gateway's first answer from the registry
SYNC_RETRY_AFTER_S = 2


class WsSession:
    def __init__(self, conn: Connection, ctx: GatewayContext) -> None:
        self.conn = conn
        self.ctx = ctx
        st = ctx.settings
        self._frames = RateBucket(st.ws_frame_rate_per_second, st.ws_frame_burst)
        self._chats = RateBucket(st.ws_chat_rate_per_second, st.ws_chat_burst)
        self._likes = RateBucket(st.ws_like_rate_per_second, st.ws_like_burst)
        self._told_at: dict[str, float] = {}  # limit -> when the sender was last told it is over it
        self._untimed = False  # the reader waits for the next frame without a timer
        self._shop_name: str = st.shop_name
        # The stream this connection last watched: once it ends, frames without `streamId` are refused.
        self._watched: str | None = None
        if conn.raw is not None:
            conn.raw.inbound = self.handle_now

    # ------------------------------------------------------------ limits

    def allow_frame(self) -> bool:
        """Take a token for any inbound frame; False (after telling the client, at
        most once a second) when the connection sends faster than allowed."""
        return self._allow(self._frames, "messages")

    def _allow(self, bucket: RateBucket, what: str, client_id: str | None = None) -> bool:
        """Take a token; when there is none, say so: always for a frame with a
        `clientMsgId` (its sender waits for an answer), else at most once a second."""
        wait = bucket.take()
        if wait <= 0:
            return True
        at = time.monotonic()
        if client_id is not None or at - self._told_at.get(what, -10.0) >= 1.0:
            self._told_at[what] = at
            seconds = max(1, int(wait + 0.999))
            extra = {"clientMsgId": client_id} if client_id is not None else {}
            self.conn.send(
                p.error_frame(
                    f"Too many {what}: slow down, retry in {seconds} s",
                    code="rate_limited",
                    retryAfter=seconds,
                    **extra,
                )
            )
        return False

    # ------------------------------------------------------------ entry points

    async def handle_text(self, text: str) -> None:
        """Handle one inbound text frame. Never raises for anything the client
        sent: every refusal becomes an error frame and the connection stays usable."""
        try:
            if not self.allow_frame():
                return
            data: dict[str, Any] = {}
            try:
                data = p.decode_frame(text)
                frame = p.validate_frame(data)
            except p.ProtocolError as e:
                self.error(str(e), e.code, **e.extra, **_answering(data))
                return
            try:
                await self.dispatch(frame)
            except p.ProtocolError as e:
                self.error(str(e), e.code, **e.extra, **_answering(data))
            except ServiceError as e:
                self.refused(e)
            except ActorCallError as e:  # the registry or the stream's actor did not answer in time
                extra = {"retryAfter": e.retry_after} if e.retry_after is not None else {}
                self.error(e.message, e.code, **extra)
        finally:
            # What the reader (`gateway/app.py`) decides next, with no await in
            # between: a registered connection that watches (or an admin) is read
            # without a register or idle timer.
            conn = self.conn
            self._untimed = conn.is_admin or (conn.session_id is not None and conn.watching is not None)

    def handle_now(self, text: str) -> bool:
        """Handle a frame at once, from the socket's `data_received`, if that needs
        no waiting: chat, like taps and pings of a connection that is watching a
        stream (or an admin). True if handled (answered the same way as by
        `handle_text`); False leaves the frame to `handle_text`, untouched: other
        frames, broken ones, and connections whose reader keeps a register or idle
        timer (only frames through `handle_text` restart it)."""
        conn = self.conn
        if not self._untimed or (conn.watching is None and not conn.is_admin):
            return False
        try:
            data = p.decode_frame(text)
        except p.ProtocolError:
            return False
        if data["type"] not in _IMMEDIATE:
            return False
        try:
            if not self.allow_frame():
                return True
            try:
                self.dispatch_now(p.validate_frame(data))
            except p.ProtocolError as e:
                self.error(str(e), e.code, **e.extra, **_answering(data))
        except Exception:  # as the reader does for a handler that fails: log, close
            log.exception("ws_handler_failed", conn=conn.id)
            conn.close()
        return True

    def closed(self) -> None:
        """The socket is gone: leave the stream it watched."""
        if self.conn.raw is not None:
            self.conn.raw.inbound = None
        left = self.ctx.hub.remove(self.conn)
        self._tell_left(left)

    # ------------------------------------------------------------ dispatch

    def dispatch_now(self, frame: p.Frame) -> bool:
        """Handle the frames that need no waiting; False for the others."""
        match frame:
            case p.ToggleLike():
                if self._allow(self._likes, "likes", frame.clientMsgId):
                    self.toggle_like(frame)
            case p.ChatMessage():
                if self._allow(self._chats, "chat messages", frame.clientMsgId):
                    self.chat(frame)
            case p.Ping():
                self.send({"type": "pong"})
            case _:
                return False
        return True

    async def dispatch(self, frame: p.Frame) -> None:
        if self.dispatch_now(frame):
            return
        match frame:
            case p.Register():
                await self.register(frame)
            case p.RegisterAdmin():
                await self.register_admin(frame)
            case p.JoinStream(streamId=stream_id):
                self.require_registered()
                if frame.protocol is not None:
                    self.conn.protocol = frame.protocol
                self.conn.follows_sole_stream = False
                await self.watch_and_catch_up(await self.confirmed_live(stream_id), frame.resume)
            case p.LeaveStream():
                self.conn.follows_sole_stream = False
                self._watched = None  # left on purpose: nothing to be told has ended
                self._tell_left(self.ctx.hub.unwatch(self.conn))
            case p.StartStream():
                await self.start_stream(frame)
            case p.StopStream(streamId=stream_id):
                self.require_admin("stop_stream")
                target = self.resolve_stream(stream_id)
                answer = await self.ctx.directory.stop_stream(target)
                if not answer.ok:
                    self.error(answer.message or "could not stop the stream")
            case p.PinProduct():
                self.require_admin("pin_product")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.pins.pin(stream, frame.productId, frame.displayOrder))
            case p.UnpinProduct():
                self.require_admin("unpin_product")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.pins.unpin(stream, frame.productId))
            case p.DeleteMessage():
                self.require_moderator("delete_message")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.moderation.delete_message(stream, frame))
            case p.MuteUser():
                self.require_moderator("mute_user")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.moderation.mute(stream, frame))
            case p.UnmuteUser():
                self.require_moderator("unmute_user")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.moderation.unmute(stream, frame))
            case p.SetBlockedWords():
                self.require_moderator("set_blocked_words")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.moderation.set_blocked_words(stream, frame))
            case p.SetSlowMode():
                self.require_moderator("set_slow_mode")
                stream = self.resolve_stream(frame.streamId)
                self.answer_refusals(await self.ctx.moderation.set_slow_mode(stream, frame))

    # ------------------------------------------------------------ handlers

    async def register(self, frame: p.Register) -> None:
        conn, ctx = self.conn, self.ctx
        auth_error: tuple[str, str] | None = None
        if frame.token:
            try:
                claims = ctx.tokens.verify(frame.token)
            except InvalidToken as e:
                if conn.session_id is not None or conn.claims is not None:
                    who = f"as {conn.claims.name or 'your account'}" if conn.claims is not None else "as a guest"
                    self.error(f"Authentication failed: {e}; nothing changed: still registered {who}", e.code)
                    return
                auth_error = (
                    f"Authentication failed: {e}; registered as a guest: log in again for a new token",
                    e.code,
                )
            else:
                conn.claims = claims
        if conn.session_id is not None and conn.session_id != frame.sessionId:
            self._tell_left(ctx.hub.unwatch(conn))
        conn.session_id = frame.sessionId
        if frame.protocol is not None:
            conn.protocol = frame.protocol
        self.send(
            {
                "type": "registered",
                "sessionId": frame.sessionId,
                "status": "connected",
                "authenticated": conn.claims is not None,
                "protocol": conn.protocol,
            }
        )
        if auth_error:
            self.error(*auth_error)
        if not await self._synced():
            return
        if frame.streamId is not None:
            conn.follows_sole_stream = False
            if not await ctx.directory.live_here(frame.streamId):
                if frame.resume is not None:
                    self.send({"type": "resume_failed", "streamId": frame.streamId, "reason": "the stream is not live"})
                self.error(f"Stream {frame.streamId} is not live")
                self.send({"type": "chat_history", "messages": [], "streamId": frame.streamId})
                return
            target: str | None = frame.streamId
        else:
            conn.follows_sole_stream = True
            target = conn.watching or ctx.directory.sole_live()
        if target is None:
            self.send({"type": "chat_history", "messages": []})
            return
        await self.watch_and_catch_up(target, frame.resume)

    async def register_admin(self, frame: p.RegisterAdmin) -> None:
        if not frame.token:
            self.error("Token required", "token_required")
            return
        try:
            claims = self.ctx.tokens.verify(frame.token)
        except InvalidToken:
            self.error("Authentication failed", "invalid_token")
            return
        if not claims.is_admin:
            self.error("Authentication failed: not an admin", "forbidden")
            return
        self.conn.claims = claims
        self.conn.is_admin = True
        self.ctx.hub.make_admin(self.conn)
        self.send({"type": "admin_registered", "userId": claims.user_id, "status": "connected"})
        if not await self._synced():
            return
        for relay in list(self.ctx.directory.relays.values()):
            await relay.attend()
            for text in relay.view.join_frames(self.conn.viewer_key):
                self.conn.send(text)

    async def _synced(self) -> bool:
        """Whether this gateway knows the live streams (its first registry answer), waiting at most
        SYNC_WAIT_S. A gateway still starting is out of the load balancer (`/ready` answers 503), so
        this wait is rare; when it runs out the client is told to come back, not held."""
        if self.ctx.directory.synced.is_set():  # the usual case: no timer for each registration
            return True
        try:
            await asyncio.wait_for(self.ctx.directory.synced.wait(), SYNC_WAIT_S)
        except TimeoutError:
            self.error(
                "This gateway has not heard from the stream registry yet; reconnect or register again shortly",
                "unavailable",
                retryAfter=SYNC_RETRY_AFTER_S,
            )
            return False
        return True

    async def start_stream(self, frame: p.StartStream) -> None:
        self.require_admin("start_stream")
        ctx = self.ctx
        stream_id = frame.streamId
        if stream_id is None:
            if not frame.title:
                raise p.ProtocolError("start_stream needs a streamId, or a title for a new stream")
            assert self.conn.claims is not None
            record = await ctx.streams.create(
                title=frame.title,
                description=frame.description or "",
                stream_url=frame.streamUrl or "",
                quality=frame.quality or "auto",
                host_id=self.conn.claims.user_id,
            )
            stream_id = record["_id"]
        answer = await ctx.directory.start_stream(stream_id)
        if not answer.ok:  # with the registry's code where it gave one (`no_capacity`)
            self.error(answer.message or "could not start the stream", answer.code)

    def chat(self, frame: p.ChatMessage) -> None:
        conn = self.conn
        if conn.session_id is None and not conn.is_admin:
            raise p.ProtocolError("Register first: send a 'register' frame with your sessionId")
        stream_id = self.resolve_stream(frame.streamId)
        account: str | None = None
        if conn.claims is not None:
            account = conn.claims.name or conn.claims.email.partition("@")[0]
        elif conn.is_admin:
            account = "Admin"
        try:
            username = chat_name(account, frame.username, self._shop_name)
        except NameReserved as e:
            raise p.ProtocolError(str(e), e.code) from None
        # An admin's mark and a moderator's exemptions (mutes, slow mode) end with their token.
        expired = conn.claims is not None and (conn.is_admin or conn.claims.can_moderate) and conn.claims.expired()
        moderator = conn.claims is not None and conn.claims.can_moderate and not expired
        chat = Chat(
            username=username,
            message=frame.message,
            is_admin=conn.is_admin and not expired,
            session_id=conn.session_id,
            user_id=conn.user_id,
            client_msg_id=frame.clientMsgId,
            moderator=moderator,
        )
        self.command(stream_id, chat, self._acknowledger(stream_id, frame.clientMsgId))

    def toggle_like(self, frame: p.ToggleLike) -> None:
        liker = self.conn.viewer_key
        if liker is None:
            raise p.ProtocolError("Register first: send a 'register' frame with your sessionId")
        stream_id = self.resolve_stream(frame.streamId)
        if frame.clientMsgId is not None:
            self.command(
                stream_id, ToggleLike(liker, frame.clientMsgId), self._acknowledger(stream_id, frame.clientMsgId)
            )
            return
        relay = self.ctx.directory.relay(stream_id)
        if relay is None:
            raise p.ProtocolError(f"Stream {stream_id} is not live")
        relay.toggle_like(liker, self._report)  # a tap without an id: only a refusal is answered

    def _acknowledger(self, stream_id: str, client_id: str | None) -> Callable[[Result], None] | None:
        """For a frame with a `clientMsgId`: once stored, an `ack` (or an error
        carrying the id). Without one, only errors are reported."""
        if client_id is None:
            return None

        def acknowledge(result: Result) -> None:
            if result.ok:
                self.send(
                    {
                        "type": "ack",
                        "clientMsgId": client_id,
                        "seq": result.seq,
                        "streamId": stream_id,
                        **(result.data or {}),
                    }
                )
            else:
                self.conn.send(p.error_frame(result.error or "rejected", clientMsgId=client_id, **(result.data or {})))

        return acknowledge

    # ------------------------------------------------------------ helpers

    def command(self, stream_id: str, command: Command, answer: Callable[[Result], None] | None = None) -> None:
        """Queue a command for the stream; `answer` (default: report errors) runs once it is stored."""
        relay = self.ctx.directory.relay(stream_id)
        if relay is None:
            raise p.ProtocolError(f"Stream {stream_id} is not live")
        fut = relay.submit(command)
        on_result(fut, answer or self._report)

    def answer_refusals(self, queued: Queued[Any]) -> None:
        """Go on with the next frame at once; if the stream refuses the command, say so."""
        queued.when_stored(self.refused)

    def refused(self, e: ServiceError) -> None:
        """A service's refusal as an error frame: its message and `code` (`invalid_frame`
        for input that is invalid in itself, as for a frame that fails its schema)."""
        extra: dict[str, Any] = dict(e.data)
        if e.retry_after is not None:
            extra["retryAfter"] = e.retry_after
        self.error(e.message, "invalid_frame" if e.code == INVALID else e.code, **extra)

    def _report(self, result: Result) -> None:
        if not result.ok:
            extra: dict[str, Any] = dict(result.data or {})
            self.error(result.error or "rejected", extra.pop("code", None) or "rejected", **extra)

    def watch(self, stream_id: str) -> None:
        self._watched = stream_id
        if self.ctx.hub.watch(self.conn, stream_id):
            relay = self.ctx.directory.relay(stream_id)
            if relay is not None:
                relay.submit(Join(self.conn.session_id or ""))

    async def watch_and_catch_up(self, stream_id: str, resume: p.Resume | None = None) -> None:
        """Watch the stream and send where it is: the events missed since `resume`
        if they can all be had (`resumed`), else its current state (after
        `resume_failed` when a resume was asked). Then its events from there on."""
        relay = self.ctx.directory.relay(stream_id)
        if relay is None:
            return
        await relay.attend()
        if resume is not None:
            missed = await relay.events_after(resume.seq, resume.epoch)
            if missed is not None:
                # No await from here to `watch`: the next event is the one after these.
                self.send(
                    {
                        "type": "resumed",
                        "streamId": stream_id,
                        "fromSeq": resume.seq,
                        "toSeq": relay.view.seq,
                        "epoch": relay.view.epoch,
                    }
                )
                if missed:
                    self.send_events(stream_id, [text for _, text in missed])
                self.watch(stream_id)
                return
            reason = (
                "the stream's history was lost (new epoch)"
                if resume.epoch != relay.view.epoch
                else "the gap is older than the history kept"
            )
            self.send(
                {
                    "type": "resume_failed",
                    "streamId": stream_id,
                    "reason": reason,
                    "seq": relay.view.seq,
                    "epoch": relay.view.epoch,
                }
            )
        # No await between reading the view and subscribing: the next event
        # this connection gets is the first one after this snapshot.
        for text in relay.view.join_frames(self.conn.viewer_key):
            self.conn.send(text)
        self.watch(stream_id)

    def send_events(self, stream_id: str, texts: list[str]) -> None:
        if self.conn.protocol >= 2:
            self.conn.send(batch_frame(stream_id, texts))
        else:
            for text in texts:
                self.conn.send(text)

    def _tell_left(self, left: tuple[str, str] | None) -> None:
        if left is None:
            return
        stream_id, session_id = left
        relay = self.ctx.directory.relay(stream_id)
        if relay is not None:
            relay.submit(Leave(session_id))

    async def confirmed_live(self, stream_id: str) -> str:
        """`stream_id` if it is live, asking the registry when this gateway has not heard of it yet
        (a viewer sent here just after its go-live: `LiveDirectory.live_here`)."""
        if not await self.ctx.directory.live_here(stream_id):
            raise p.ProtocolError(f"Stream {stream_id} is not live")
        return stream_id

    def live_stream(self, stream_id: str) -> str:
        if stream_id not in self.ctx.directory.live:
            raise p.ProtocolError(f"Stream {stream_id} is not live")
        return stream_id

    def resolve_stream(self, stream_id: str | None) -> str:
        if stream_id is not None:
            return self.live_stream(stream_id)
        if self.conn.watching is not None:
            self._watched = self.conn.watching  # it may have been moved there (an old app's sole stream)
            return self.conn.watching
        ended = self._watched
        if ended is not None and ended not in self.ctx.directory.live:
            raise p.ProtocolError(
                f"Stream {ended} has ended: join another stream (or say which with 'streamId')",
                "stream_ended",
                streamId=ended,
            )
        sole = self.ctx.directory.sole_live()
        if sole is not None:
            return sole
        if not self.ctx.directory.live:
            raise p.ProtocolError("No stream is live")
        raise p.ProtocolError("Several streams are live: say which one with 'streamId'")

    def require_admin(self, what: str) -> None:
        if not self.conn.is_admin:
            raise p.ProtocolError(f"{what} is for admins: send 'register_admin' with an admin token first", "forbidden")
        self.require_unexpired(what)

    def require_moderator(self, what: str) -> None:
        if not (self.conn.is_admin or may_moderate(self.conn.claims)):
            raise p.ProtocolError(
                f"{what} is for moderators: register with a moderator's or an admin's token first", "forbidden"
            )
        self.require_unexpired(what)

    def require_unexpired(self, what: str) -> None:
        """The rights a token gave a connection end when the token expires (as over REST)."""
        if self.conn.claims is not None and self.conn.claims.expired():
            raise p.ProtocolError(
                f"{what}: your token has expired: log in again and register with the new token", "token_expired"
            )

    def require_registered(self) -> None:
        if self.conn.session_id is None and not self.conn.is_admin:
            raise p.ProtocolError("Register first: send a 'register' frame with your sessionId")

    def send(self, message: dict[str, object]) -> None:
        self.conn.send(encode(message))

    def error(self, message: str, code: str | None = None, **extra: Any) -> None:
        if code is not None:
            extra["code"] = code
        self.conn.send(p.error_frame(message, **extra))


def _answering(data: dict[str, Any]) -> dict[str, str]:
    """`clientMsgId` for the error that refuses a frame carrying one (a chat message or a
    like whose sender waits for an answer), when it is a valid id."""
    client_id = data.get("clientMsgId")
    if isinstance(client_id, str) and 0 < len(client_id) <= p.MAX_CLIENT_MSG_ID:
        return {"clientMsgId": client_id}
    return {}
