"""The rules of one live stream, as a pure, synchronous state machine.

`StreamState` knows nothing of Ray, sockets or the database. Commands go in
(`apply_batch`), numbered events come out (`take_events`), and the whole state
can be written out (`to_checkpoint`) and read back (`from_checkpoint`). The
Ray actor in `stream_actor.py` is a thin shell that feeds it, stores what it
produces and publishes the events; every rule of the stream lives here.

Guarantees:

* **Ordered.** Every event gets the next sequence number of the stream
  (`seq`, starting at 1) inside an `epoch`. The epoch is chosen when the stream
  first goes live and is kept by checkpoints; a new epoch means history was lost.
* **Idempotent by batch.** A batch of commands is applied at most once: applying
  a batch id that was already applied returns the first results and changes
  nothing. The ids of the most recent batches are part of the checkpoint.
* **Coalesced counters.** Viewer count and likes never produce one event per
  change: they mark the counters dirty, and `take_events` emits at most one
  `stream_update` per `update_interval` seconds. It carries the counts and who
  started and stopped liking since the previous one (`likedByAdded`,
  `likedByRemoved`), never the whole list: with thousands of likers the list
  would cost more than everything else. Gateways keep the set and tell each
  old app whether *it* likes (see `core/stream_view.py`).
* **Deterministic.** Time comes in as arguments (`now` wall clock for what is
  shown, `clock` seconds since the epoch for coalescing), so tests drive it exactly
  and a journal replays it exactly (see `replay`).
"""

from __future__ import annotations

import copy
import re
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Union

from runtime.clock import iso

# Limits that keep one stream's memory and every frame bounded.
MAX_MESSAGE_CHARS = 500
MAX_USERNAME_CHARS = 50
MAX_PINNED_PRODUCTS = 50
CLIENT_IDS_KEPT = 8192  # recent client message ids remembered per stream, for deduplication
DEFAULT_USERNAME = "Guest"
# Moderation limits.
MAX_BLOCKED_WORDS = 500
MAX_BLOCKED_WORD_CHARS = 50
MAX_SLOW_MODE_SECONDS = 3600
MAX_MUTED = 10_000  # mutes kept per stream (expired ones are dropped first)
DELETED_SEQS_KEPT = 1024  # recent deletions remembered, to filter history after a restart
SLOW_MODE_SENDERS_KEPT = 50_000
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------
# Commands: what a gateway asks the stream to do, on behalf of one connection.
# Commands and results cross Ray in every batch: they are plain frozen
# dataclasses without __slots__, because unpickling a slotted dataclass calls
# dataclasses.fields() per object (measured: most of a busy gateway's time).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Join:
    """A viewer session starts watching through the sending gateway."""

    session_id: str


@dataclass(frozen=True)
class Leave:
    """A viewer session stops watching through the sending gateway."""

    session_id: str


@dataclass(frozen=True)
class SyncViewers:
    """The sending gateway's complete set of viewer sessions for this stream.

    Sent after the actor restarted, so the count is rebuilt from the gateways
    that actually hold the connections, not only from the last checkpoint.
    """

    session_ids: tuple[str, ...]


@dataclass(frozen=True)
class GatewayGone:
    """The sending gateway is shutting down: its viewers have all left."""


@dataclass(frozen=True)
class Chat:
    """A chat message. `is_admin` is decided by the gateway, never the client."""

    username: str
    message: str
    is_admin: bool
    session_id: str | None = None
    user_id: str | None = None
    client_msg_id: str | None = None  # the sender's id for it: a resend is stored once
    moderator: bool = False  # sent by a moderator: not subject to mutes, slow mode or blocked words


@dataclass(frozen=True)
class ToggleLike:
    """Like, or unlike if already liked. `liker` is a user id or a session id.
    With a `client_msg_id`, a resend of the same toggle is applied once.

    `more`: further taps that arrived right after this one (none with a client
    id), applied in order as if each were its own `ToggleLike`. A gateway sends
    a storm's taps this way: one command of many likers instead of a command,
    an answer and a journal record per tap. The answer is this tap's, or the
    first refusal among them."""

    liker: str
    client_msg_id: str | None = None
    more: tuple[str, ...] = ()


@dataclass(frozen=True)
class PinProduct:
    """Pin a product over the video (admin). `display_order` None appends it."""

    product_id: str
    name: str
    price: Any
    image: str | None = None
    display_order: int | None = None


@dataclass(frozen=True)
class UnpinProduct:
    """Take a pinned product down (admin)."""

    product_id: str


@dataclass(frozen=True)
class StartFlashSale:
    """Announce a flash sale on a pinned product (admin). `sale` is the stored
    sale: saleId, productId, price, quantity, remaining, perCustomerLimit,
    endsAt (ISO 8601 UTC), version. The database holds the truth (stock is
    taken there, atomically); the stream tells viewers."""

    sale: dict[str, Any]


@dataclass(frozen=True)
class FlashSaleChanged:
    """The stored sale changed (units sold or returned). Applied only if its
    `version` is newer than what the stream shows; viewers get coalesced updates."""

    sale: dict[str, Any]


@dataclass(frozen=True)
class EndFlashSale:
    """End a sale now (admin, or sold out)."""

    sale_id: str
    reason: str = "ended"


@dataclass(frozen=True)
class DeleteMessage:
    """Hide a chat message (moderator): it leaves the recent history, viewers
    get `chat_message_deleted`, the chat store marks it deleted. Idempotent."""

    seq: int


@dataclass(frozen=True)
class Mute:
    """Mute a viewer until `until` (ISO 8601 UTC, from `runtime.clock.iso`).
    The viewer is `target` (a user id or a session id), or the sender of the
    recent chat message `message_seq`. Muting again replaces the end time."""

    until: str
    target: str | None = None
    message_seq: int | None = None


@dataclass(frozen=True)
class Unmute:
    """Lift a mute now (a user id or a session id). Unmuting twice is harmless."""

    target: str


@dataclass(frozen=True)
class SetBlockedWords:
    """Replace the stream's blocked words (matched as whole words, ignoring case)."""

    words: tuple[str, ...]


@dataclass(frozen=True)
class SetSlowMode:
    """At most one chat message per sender every `seconds` (0 turns it off)."""

    seconds: int


Command = Union[
    Join, Leave, SyncViewers, GatewayGone, Chat, ToggleLike, PinProduct, UnpinProduct,
    StartFlashSale, FlashSaleChanged, EndFlashSale,
    DeleteMessage, Mute, Unmute, SetBlockedWords, SetSlowMode,
]


@dataclass(frozen=True)
class Result:
    """The answer to one command: accepted (with what it produced) or an error."""

    ok: bool
    error: str | None = None
    seq: int | None = None  # the event that the command produced, if any
    data: dict[str, Any] | None = None

    @staticmethod
    def rejected(message: str, code: str | None = None, **data: Any) -> "Result":
        """A refusal; `code` (and any other data) lets the gateway tell the client
        more than the message (`{"code": "slow_mode", "retryAfter": 3}`)."""
        if code is None and not data:
            return Result(ok=False, error=message)
        return Result(ok=False, error=message, data={**({"code": code} if code else {}), **data})


OK = Result(ok=True)


@dataclass(frozen=True)
class Event:
    """One numbered event of the stream. `body` is what clients see, minus
    the envelope (`type`, `streamId`, `seq`, `epoch`) that the shell adds."""

    seq: int
    type: str
    body: dict[str, Any]


@dataclass(slots=True)
class ChatRecord:
    seq: int
    username: str
    message: str
    is_admin: bool
    timestamp: str
    session_id: str | None
    user_id: str | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "seq": self.seq,
            "username": self.username,
            "message": self.message,
            "isAdmin": self.is_admin,
            "timestamp": self.timestamp,
        }

    def to_doc(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "username": self.username,
            "message": self.message,
            "isAdmin": self.is_admin,
            "timestamp": self.timestamp,
            "sessionId": self.session_id,
            "userId": self.user_id,
        }

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> "ChatRecord":
        return ChatRecord(
            seq=int(doc["seq"]),
            username=str(doc["username"]),
            message=str(doc["message"]),
            is_admin=bool(doc["isAdmin"]),
            timestamp=str(doc["timestamp"]),
            session_id=doc.get("sessionId"),
            user_id=doc.get("userId"),
        )


@dataclass(slots=True)
class StreamMeta:
    """What the stream is: fixed while it is live, shown in `stream_started`."""

    stream_id: str
    title: str
    description: str = ""
    start_time: str = ""
    stream_url: str = ""
    quality: str = "auto"

    def to_doc(self) -> dict[str, Any]:
        return {
            "streamId": self.stream_id,
            "title": self.title,
            "description": self.description,
            "startTime": self.start_time,
            "streamUrl": self.stream_url,
            "quality": self.quality,
        }

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> "StreamMeta":
        return StreamMeta(
            stream_id=str(doc["streamId"]),
            title=str(doc.get("title", "")),
            description=str(doc.get("description", "")),
            start_time=str(doc.get("startTime", "")),
            stream_url=str(doc.get("streamUrl", "")),
            quality=str(doc.get("quality", "auto")),
        )


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass
class StreamState:
    """The live state of one stream and the rules that change it.

    After `apply_batch`, the caller must call `take_events` to collect what the
    batch produced (and any coalesced `stream_update` that is due), store it,
    then publish it. `new_chat` lists the chat records not yet handed out for
    storage; `take_new_chat` hands them out once.
    """

    meta: StreamMeta
    epoch: str = field(default_factory=new_epoch)
    seq: int = 0
    history_size: int = 50
    update_interval: float = 0.25
    batch_memory: int = 1024
    # session id -> ids of the gateways it watches through
    viewers: dict[str, set[str]] = field(default_factory=dict)
    liked_by: dict[str, None] = field(default_factory=dict)  # an ordered set
    pinned: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent_chat: deque[ChatRecord] = field(default_factory=deque)
    chat_count: int = 0
    peak_viewers: int = 0
    total_joins: int = 0
    applied_batches: OrderedDict[str, list[Result]] = field(default_factory=OrderedDict)
    _events: list[Event] = field(default_factory=list)
    flash_sales: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "<sender>\x00<client id>" -> [seq, data] of what that client operation produced
    client_ops: OrderedDict[str, list[Any]] = field(default_factory=OrderedDict)
    # Moderation: mutes (viewer key -> until, ISO), blocked words (casefolded),
    # slow mode, each sender's last accepted message (ms since 1970) while it is on,
    # and the most recent deletions.
    muted: dict[str, str] = field(default_factory=dict)
    blocked_words: list[str] = field(default_factory=list)
    slow_mode: int = 0
    last_chat_ms: OrderedDict[str, int] = field(default_factory=OrderedDict)
    deleted_seqs: deque[int] = field(default_factory=deque)
    _new_chat: list[ChatRecord] = field(default_factory=list)
    _new_deletions: list[int] = field(default_factory=list)
    _blocked_re: re.Pattern[str] | None = None
    _new_viewers: list[str] = field(default_factory=list)
    # who started / stopped liking since the last stream_update (net changes)
    _liked_added: dict[str, None] = field(default_factory=dict)
    _liked_removed: dict[str, None] = field(default_factory=dict)
    _sales_dirty: set[str] = field(default_factory=set)
    _counters_dirty: bool = False
    _last_update_at: float | None = None

    def __post_init__(self) -> None:
        self.recent_chat = deque(self.recent_chat, maxlen=self.history_size)
        self.deleted_seqs = deque(self.deleted_seqs, maxlen=DELETED_SEQS_KEPT)
        self._blocked_re = _word_pattern(self.blocked_words)

    # ------------------------------------------------------------ reading

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    @property
    def likes(self) -> int:
        return len(self.liked_by)

    def pinned_list(self) -> list[dict[str, Any]]:
        return sorted(self.pinned.values(), key=lambda p: (p["displayOrder"], p["productId"]))

    def stream_data(self) -> dict[str, Any]:
        """The `streamData` of a `stream_started` message: the stream as it is now."""
        return {
            **self.meta.to_doc(),
            "viewerCount": self.viewer_count,
            "likes": self.likes,
            "likedBy": list(self.liked_by),
            "pinnedProducts": self.pinned_list(),
            "flashSales": copy.deepcopy(self.flash_sale_list()),
            "slowModeSeconds": self.slow_mode,
        }

    def moderation(self, now: datetime | None = None) -> dict[str, Any]:
        """The moderation settings, for moderators (never sent to viewers:
        the blocked words stay private). Mutes that ended before `now` are left out."""
        stamp = iso(now) if now is not None else ""
        return {
            "slowModeSeconds": self.slow_mode,
            "blockedWords": list(self.blocked_words),
            "muted": [{"userKey": k, "until": u} for k, u in sorted(self.muted.items()) if u > stamp],
        }

    def flash_sale_list(self) -> list[dict[str, Any]]:
        return sorted(self.flash_sales.values(), key=lambda s: (s["endsAt"], s["saleId"]))

    def snapshot(self) -> dict[str, Any]:
        """Everything a gateway needs to serve new viewers without asking again:
        the stream data, the recent chat (oldest first) and the stream position."""
        return {
            "streamData": self.stream_data(),
            "chat": [c.to_wire() for c in self.recent_chat],
            "chatCount": self.chat_count,
            "peakViewers": self.peak_viewers,
            "seq": self.seq,
            "epoch": self.epoch,
            "moderation": self.moderation(),
        }

    def stats(self) -> dict[str, Any]:
        return {
            "viewerCount": self.viewer_count,
            "peakViewers": self.peak_viewers,
            "totalJoins": self.total_joins,
            "likes": self.likes,
            "chatCount": self.chat_count,
            "pinnedProducts": self.pinned_list(),
            "seq": self.seq,
            "epoch": self.epoch,
        }

    # ------------------------------------------------------------ changing

    def apply_batch(
        self, gateway_id: str, batch_id: str, commands: Iterable[Command], now: datetime
    ) -> list[Result]:
        """Apply a gateway's batch in order, at most once per `batch_id`."""
        if batch_id in self.applied_batches:
            return self.applied_batches[batch_id]
        results = [self.apply(gateway_id, c, now) for c in commands]
        self.applied_batches[batch_id] = results
        while len(self.applied_batches) > self.batch_memory:
            self.applied_batches.popitem(last=False)
        return results

    def apply(self, gateway_id: str, command: Command, now: datetime) -> Result:
        match command:
            case Join(session_id):
                return self._join(gateway_id, session_id)
            case Leave(session_id):
                return self._leave(gateway_id, session_id)
            case SyncViewers(session_ids):
                return self._sync_viewers(gateway_id, session_ids)
            case GatewayGone():
                self.drop_gateway(gateway_id)
                return OK
            case Chat():
                return self._chat(command, now)
            case ToggleLike(liker, client_id, more):
                result = self._toggle_like(liker, client_id)
                return self._toggle_likes(more, result) if more else result
            case PinProduct():
                return self._pin(command)
            case UnpinProduct(product_id):
                return self._unpin(product_id)
            case StartFlashSale(sale):
                return self._start_sale(sale)
            case FlashSaleChanged(sale):
                return self._sale_changed(sale)
            case EndFlashSale(sale_id, reason):
                return self._end_sale(sale_id, reason)
            case DeleteMessage(seq):
                return self._delete_message(seq)
            case Mute():
                return self._mute(command, now)
            case Unmute(target):
                return self._unmute(target)
            case SetBlockedWords(words):
                return self._set_blocked_words(words)
            case SetSlowMode(seconds):
                return self._set_slow_mode(seconds)
        return Result.rejected(f"unknown command {type(command).__name__}")

    def gateways(self) -> set[str]:
        """The gateways through which someone watches."""
        return {g for gws in self.viewers.values() for g in gws}

    def drop_gateway(self, gateway_id: str) -> int:
        """Forget every viewer that watched only through `gateway_id` (it died
        or drained). Returns how many viewers left."""
        gone = [s for s, gws in self.viewers.items() if gws == {gateway_id}]
        for s in gone:
            del self.viewers[s]
        for gws in self.viewers.values():
            gws.discard(gateway_id)
        if gone:
            self._counters_changed()
        return len(gone)

    def take_events(self, clock: float, now: datetime | None = None) -> list[Event]:
        """Hand out the events produced since the last call, in order, plus a
        coalesced `stream_update` (and `flash_sale_updated`s) if something
        changed and one is due, and the end of every flash sale whose time is up
        (when `now` is given)."""
        if now is not None:
            stamp = iso(now)
            for sale in self.flash_sale_list():
                if sale["endsAt"] <= stamp:
                    self._end_sale(sale["saleId"], "time")
        if (self._counters_dirty or self._sales_dirty) and self.update_due_in(clock) == 0.0:
            self._emit_update(clock)
        events, self._events = self._events, []
        return events

    def next_sale_end(self) -> str | None:
        """The earliest `endsAt` of the running sales (ISO 8601), if any."""
        return min((s["endsAt"] for s in self.flash_sales.values()), default=None)

    def take_new_viewers(self) -> list[str]:
        """Sessions that started watching since the last call, to be recorded (analytics)."""
        viewers, self._new_viewers = self._new_viewers, []
        return viewers

    def update_due_in(self, clock: float) -> float | None:
        """Seconds until a pending `stream_update` is due (0 if now), None if none is pending."""
        if not self._counters_dirty and not self._sales_dirty:
            return None
        if self._last_update_at is None:
            return 0.0
        return max(0.0, self._last_update_at + self.update_interval - clock)

    def take_new_chat(self) -> list[ChatRecord]:
        """Chat records produced since the last call, to be stored."""
        chat, self._new_chat = self._new_chat, []
        return chat

    def take_new_deletions(self) -> list[int]:
        """Seqs of chat messages deleted since the last call, to be marked
        deleted in the chat store (after the new chat is stored)."""
        deleted, self._new_deletions = self._new_deletions, []
        return deleted

    def stop(self) -> Event:
        """The last event of the stream. Counters pending are flushed first,
        running flash sales end."""
        for sale_id in list(self.flash_sales):
            self._end_sale(sale_id, "stream_stopped")
        if self._counters_dirty or self._sales_dirty:
            self._emit_update(None)
        return self._emit("stream_stopped", {})

    # ------------------------------------------------------------ rules

    def _join(self, gateway_id: str, session_id: str) -> Result:
        gateways = self.viewers.setdefault(session_id, set())
        if not gateways:
            self.total_joins += 1
            self._new_viewers.append(session_id)
        gateways.add(gateway_id)
        self.peak_viewers = max(self.peak_viewers, self.viewer_count)
        self._counters_changed()
        return OK

    def _leave(self, gateway_id: str, session_id: str) -> Result:
        gateways = self.viewers.get(session_id)
        if gateways is None:
            return OK  # leaving twice is harmless
        gateways.discard(gateway_id)
        if not gateways:
            del self.viewers[session_id]
        self._counters_changed()
        return OK

    def _sync_viewers(self, gateway_id: str, session_ids: tuple[str, ...]) -> Result:
        wanted = set(session_ids)
        for s in [s for s, gws in self.viewers.items() if gateway_id in gws and s not in wanted]:
            self._leave(gateway_id, s)
        for s in wanted:
            if gateway_id not in self.viewers.get(s, ()):
                self._join(gateway_id, s)
        return OK

    def _seen(self, sender: str | None, client_id: str | None) -> Result | None:
        """The first result of a client operation already applied, if any."""
        if not client_id:
            return None
        done = self.client_ops.get(f"{sender}\x00{client_id}")
        return None if done is None else Result(ok=True, seq=done[0], data=done[1])

    def _remember(self, sender: str | None, client_id: str | None, result: Result) -> Result:
        if client_id:
            self.client_ops[f"{sender}\x00{client_id}"] = [result.seq, result.data]
            while len(self.client_ops) > CLIENT_IDS_KEPT:
                self.client_ops.popitem(last=False)
        return result

    def _chat(self, c: Chat, now: datetime) -> Result:
        sender = c.user_id or c.session_id
        seen = self._seen(sender, c.client_msg_id)
        if seen is not None:
            return seen
        message = c.message.strip() if isinstance(c.message, str) else ""
        if not message:
            return Result.rejected("chat_message needs a non-empty 'message'")
        if len(message) > MAX_MESSAGE_CHARS:
            return Result.rejected(f"chat message is longer than {MAX_MESSAGE_CHARS} characters")
        username = (c.username or "").strip() or DEFAULT_USERNAME
        if len(username) > MAX_USERNAME_CHARS:
            return Result.rejected(f"username is longer than {MAX_USERNAME_CHARS} characters")
        refused = None if (c.is_admin or c.moderator) else self._moderate(c, message, now)
        if refused is not None:
            return refused
        record = ChatRecord(
            seq=self.seq + 1,
            username=username,
            message=message,
            is_admin=c.is_admin,
            timestamp=iso(now),
            session_id=c.session_id,
            user_id=c.user_id,
        )
        event = self._emit("chat_message", record.to_wire())
        assert event.seq == record.seq
        self.recent_chat.append(record)
        self._new_chat.append(record)
        self.chat_count += 1
        return self._remember(sender, c.client_msg_id, Result(ok=True, seq=event.seq))

    def _moderate(self, c: Chat, message: str, now: datetime) -> Result | None:
        """The refusal for a viewer's message that moderation stops, else None
        (and, under slow mode, the sender's clock is started)."""
        stamp = iso(now)
        for key in (c.user_id, c.session_id):
            until = self.muted.get(key) if key else None
            if until is not None:
                if until > stamp:
                    return Result.rejected(f"You are muted in this chat until {until}", "muted", until=until)
                del self.muted[key]  # type: ignore[arg-type]
        if self._blocked_re is not None and self._blocked_re.search(message.casefold()):
            return Result.rejected("Your message contains a word that is not allowed in this chat", "blocked_word")
        sender = c.user_id or c.session_id
        if self.slow_mode > 0 and sender:
            at = (now - _UNIX_EPOCH) // timedelta(milliseconds=1)
            last = self.last_chat_ms.get(sender)
            wait_ms = 0 if last is None else last + self.slow_mode * 1000 - at
            if wait_ms > 0:
                wait = -(-wait_ms // 1000)
                return Result.rejected(f"Slow mode is on: one message every {self.slow_mode} s; retry in {wait} s",
                                       "slow_mode", retryAfter=wait)
            self.last_chat_ms[sender] = at
            self.last_chat_ms.move_to_end(sender)
            while len(self.last_chat_ms) > SLOW_MODE_SENDERS_KEPT:
                self.last_chat_ms.popitem(last=False)
        return None

    def _delete_message(self, seq: int) -> Result:
        if not isinstance(seq, int) or seq < 1 or seq > self.seq:
            return Result.rejected(f"message {seq} does not exist in this stream", "not_found")
        if seq in self.deleted_seqs:
            return OK  # deleted already
        kept = [r for r in self.recent_chat if r.seq != seq]
        if len(kept) != len(self.recent_chat):
            self.recent_chat.clear()
            self.recent_chat.extend(kept)
        self.deleted_seqs.append(seq)
        self._new_deletions.append(seq)
        event = self._emit("chat_message_deleted", {"messageId": seq})
        return Result(ok=True, seq=event.seq)

    def _mute(self, m: Mute, now: datetime) -> Result:
        target = m.target
        if m.message_seq is not None:
            record = next((r for r in self.recent_chat if r.seq == m.message_seq), None)
            if record is None:
                return Result.rejected(f"message {m.message_seq} is not in the recent chat: "
                                       "mute by userId or sessionId", "not_found")
            target = record.user_id or record.session_id
        if not target:
            return Result.rejected("mute needs a userId, a sessionId or a messageId")
        stamp = iso(now)
        if m.until <= stamp:
            return Result.rejected("a mute must end in the future")
        if target not in self.muted and len(self.muted) >= MAX_MUTED:
            for key in [k for k, u in self.muted.items() if u <= stamp]:
                del self.muted[key]
            if len(self.muted) >= MAX_MUTED:
                return Result.rejected(f"at most {MAX_MUTED} viewers can be muted at once")
        self.muted[target] = m.until
        event = self._emit("user_muted", {"userKey": target, "until": m.until})
        return Result(ok=True, seq=event.seq, data={"userKey": target, "until": m.until})

    def _unmute(self, target: str) -> Result:
        if self.muted.pop(target, None) is None:
            return OK
        event = self._emit("user_unmuted", {"userKey": target})
        return Result(ok=True, seq=event.seq, data={"userKey": target})

    def _set_blocked_words(self, words: tuple[str, ...]) -> Result:
        cleaned: dict[str, None] = {}
        for w in words:
            w = w.strip().casefold() if isinstance(w, str) else ""
            if not w or len(w) > MAX_BLOCKED_WORD_CHARS:
                return Result.rejected(f"blocked words are 1 to {MAX_BLOCKED_WORD_CHARS} characters")
            cleaned[w] = None
        if len(cleaned) > MAX_BLOCKED_WORDS:
            return Result.rejected(f"at most {MAX_BLOCKED_WORDS} blocked words")
        self.blocked_words = list(cleaned)
        self._blocked_re = _word_pattern(self.blocked_words)
        event = self._emit("moderation_updated", {"slowModeSeconds": self.slow_mode,
                                                  "blockedWords": len(self.blocked_words)})
        return Result(ok=True, seq=event.seq, data={"blockedWords": list(self.blocked_words)})

    def _set_slow_mode(self, seconds: int) -> Result:
        if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= MAX_SLOW_MODE_SECONDS:
            return Result.rejected(f"slow mode is 0 to {MAX_SLOW_MODE_SECONDS} seconds")
        self.slow_mode = seconds
        if seconds == 0:
            self.last_chat_ms.clear()
        event = self._emit("moderation_updated", {"slowModeSeconds": self.slow_mode,
                                                  "blockedWords": len(self.blocked_words)})
        return Result(ok=True, seq=event.seq, data={"slowModeSeconds": seconds})

    def _toggle_like(self, liker: str, client_id: str | None = None) -> Result:
        if not liker:
            return Result.rejected("toggle_like needs a user or a session")
        seen = self._seen(liker, client_id)
        if seen is not None:
            return seen
        if liker in self.liked_by:
            del self.liked_by[liker]
            liked = False
            if self._liked_added.pop(liker, False) is False:
                self._liked_removed[liker] = None
        else:
            self.liked_by[liker] = None
            liked = True
            if self._liked_removed.pop(liker, False) is False:
                self._liked_added[liker] = None
        self._counters_changed()
        return self._remember(liker, client_id, Result(ok=True, data={"liked": liked, "likes": self.likes}))

    def _toggle_likes(self, likers: tuple[str, ...], result: Result) -> Result:
        """`_toggle_like` for each of `likers` (taps without a client id), in
        order; the first refusal, else `result`."""
        liked_by, added, removed = self.liked_by, self._liked_added, self._liked_removed
        for liker in likers:
            if not liker:
                if result.ok:
                    result = Result.rejected("toggle_like needs a user or a session")
                continue
            if liker in liked_by:
                del liked_by[liker]
                if added.pop(liker, False) is False:
                    removed[liker] = None
            else:
                liked_by[liker] = None
                if removed.pop(liker, False) is False:
                    added[liker] = None
            self._counters_dirty = True
        return result

    def _pin(self, p: PinProduct) -> Result:
        if not p.product_id:
            return Result.rejected("pin needs a productId")
        if p.product_id not in self.pinned and len(self.pinned) >= MAX_PINNED_PRODUCTS:
            return Result.rejected(f"at most {MAX_PINNED_PRODUCTS} products can be pinned")
        order = p.display_order
        if order is None:
            existing = self.pinned.get(p.product_id)
            order = (
                existing["displayOrder"]
                if existing
                else max((q["displayOrder"] for q in self.pinned.values()), default=0) + 1
            )
        self.pinned[p.product_id] = {
            "productId": p.product_id,
            "name": p.name,
            "price": p.price,
            "image": p.image,
            "displayOrder": order,
        }
        event = self._emit("pinned_products_updated", {"pinnedProducts": self.pinned_list()})
        return Result(ok=True, seq=event.seq)

    def _unpin(self, product_id: str) -> Result:
        if product_id not in self.pinned:
            return Result.rejected(f"product {product_id} is not pinned")
        del self.pinned[product_id]
        event = self._emit("pinned_products_updated", {"pinnedProducts": self.pinned_list()})
        return Result(ok=True, seq=event.seq)

    def _start_sale(self, sale: dict[str, Any]) -> Result:
        missing = {"saleId", "productId", "price", "quantity", "remaining", "endsAt"} - set(sale)
        if missing:
            return Result.rejected(f"flash sale lacks {', '.join(sorted(missing))}")
        if sale["productId"] not in self.pinned:
            return Result.rejected(f"product {sale['productId']} is not pinned: pin it before a flash sale")
        if sale["saleId"] in self.flash_sales:
            return Result(ok=True)  # announced already
        self.flash_sales[sale["saleId"]] = dict(sale)
        event = self._emit("flash_sale_started", {"flashSale": dict(sale)})
        return Result(ok=True, seq=event.seq)

    def _sale_changed(self, sale: dict[str, Any]) -> Result:
        current = self.flash_sales.get(sale.get("saleId", ""))
        if current is None:
            return Result.rejected("no such flash sale running")
        if int(sale.get("version", 0)) <= int(current.get("version", 0)):
            return OK  # an older report, arriving late
        current.update(sale)
        if int(current.get("remaining", 1)) <= 0:
            return self._end_sale(current["saleId"], "sold_out")
        self._sales_dirty.add(current["saleId"])
        return OK

    def _end_sale(self, sale_id: str, reason: str) -> Result:
        sale = self.flash_sales.pop(sale_id, None)
        if sale is None:
            return OK  # ended already
        self._sales_dirty.discard(sale_id)
        event = self._emit("flash_sale_ended", {"flashSale": {**sale, "status": "ended"}, "reason": reason})
        return Result(ok=True, seq=event.seq)

    # ------------------------------------------------------------ events

    def _emit(self, type_: str, body: dict[str, Any]) -> Event:
        self.seq += 1
        event = Event(seq=self.seq, type=type_, body=body)
        self._events.append(event)
        return event

    def _counters_changed(self) -> None:
        # Any change counts, even when the numbers end where they were: an
        # unlike and a like from two people leave `likes` equal but not `likedBy`.
        self._counters_dirty = True

    def _emit_update(self, clock: float | None) -> None:
        self._last_update_at = clock
        if self._counters_dirty:
            self._counters_dirty = False
            self._emit(
                "stream_update",
                {"viewerCount": self.viewer_count, "likes": self.likes,
                 "likedByAdded": list(self._liked_added), "likedByRemoved": list(self._liked_removed)},
            )
            self._liked_added, self._liked_removed = {}, {}
        for sale_id in sorted(self._sales_dirty):
            sale = self.flash_sales[sale_id]
            self._emit("flash_sale_updated", {"flashSale": dict(sale)})
        self._sales_dirty.clear()

    # ------------------------------------------------------------ checkpoints

    def to_checkpoint(self) -> dict[str, Any]:
        """Everything needed to come back exactly, except chat (stored on its own).
        Shares nothing the state changes later, so it can be stored while commands go on."""
        return {
            "meta": self.meta.to_doc(),
            "epoch": self.epoch,
            "seq": self.seq,
            "viewers": {s: sorted(g) for s, g in self.viewers.items()},
            "likedBy": list(self.liked_by),
            "pinned": copy.deepcopy(self.pinned_list()),
            "flashSales": copy.deepcopy(self.flash_sale_list()),
            "chatCount": self.chat_count,
            "peakViewers": self.peak_viewers,
            "totalJoins": self.total_joins,
            "clientOps": [[k, v[0], v[1]] for k, v in self.client_ops.items()],
            "lastUpdateAt": self._last_update_at,
            "countersDirty": self._counters_dirty,
            "likedAdded": list(self._liked_added),
            "likedRemoved": list(self._liked_removed),
            "salesDirty": sorted(self._sales_dirty),
            "moderation": {
                "muted": dict(self.muted),
                "blockedWords": list(self.blocked_words),
                "slowModeSeconds": self.slow_mode,
                "lastChatMs": [[k, v] for k, v in self.last_chat_ms.items()],
                "deletedSeqs": list(self.deleted_seqs),
            },
            "appliedBatches": [
                [batch_id, [[r.ok, r.error, r.seq, r.data] for r in results]]
                for batch_id, results in self.applied_batches.items()
            ],
        }

    @staticmethod
    def from_checkpoint(
        doc: dict[str, Any],
        recent_chat: Iterable[ChatRecord],
        *,
        history_size: int = 50,
        update_interval: float = 0.25,
    ) -> "StreamState":
        """Rebuild from `to_checkpoint()` output and the stored recent chat.

        The results of recent batches come back too, so a batch replayed
        after a restart gets the same answers and changes nothing.
        """
        moderation = doc.get("moderation") or {}
        deleted = [int(x) for x in moderation.get("deletedSeqs", [])]
        gone = set(deleted)
        state = StreamState(
            meta=StreamMeta.from_doc(doc["meta"]),
            epoch=str(doc["epoch"]),
            seq=int(doc["seq"]),
            history_size=history_size,
            update_interval=update_interval,
            viewers={s: set(g) for s, g in doc.get("viewers", {}).items()},
            liked_by=dict.fromkeys(doc.get("likedBy", [])),
            pinned={p["productId"]: dict(p) for p in doc.get("pinned", [])},
            flash_sales={s["saleId"]: dict(s) for s in doc.get("flashSales", [])},
            recent_chat=deque(r for r in recent_chat if r.seq not in gone),
            chat_count=int(doc.get("chatCount", 0)),
            peak_viewers=int(doc.get("peakViewers", 0)),
            total_joins=int(doc.get("totalJoins", 0)),
            muted={str(k): str(v) for k, v in moderation.get("muted", {}).items()},
            blocked_words=[str(w) for w in moderation.get("blockedWords", [])],
            slow_mode=int(moderation.get("slowModeSeconds", 0)),
            last_chat_ms=OrderedDict((str(k), int(v)) for k, v in moderation.get("lastChatMs", [])),
            deleted_seqs=deque(deleted),
        )
        state.client_ops = OrderedDict((k, [seq, data]) for k, seq, data in doc.get("clientOps", []))
        state._last_update_at = doc.get("lastUpdateAt")
        state._counters_dirty = bool(doc.get("countersDirty", False))
        state._liked_added = dict.fromkeys(doc.get("likedAdded", []))
        state._liked_removed = dict.fromkeys(doc.get("likedRemoved", []))
        state._sales_dirty = set(doc.get("salesDirty", []))
        for batch_id, results in doc.get("appliedBatches", []):
            state.applied_batches[batch_id] = [Result(ok=r[0], error=r[1], seq=r[2], data=r[3] if len(r) > 3 else None)
                                               for r in results]
        return state


def _word_pattern(words: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of `words` (casefolded) as a whole word or phrase."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@dataclass(frozen=True)
class CommitInput:
    """Everything one commit applies: replaying the same inputs on the same
    state gives the same results and the same events."""

    batches: list[tuple[str, str, list[Command]]]  # (gateway id, batch id, commands)
    now: datetime  # wall clock, for what is shown
    clock: float  # seconds since the epoch, for coalescing
    expired_gateways: list[str] = field(default_factory=list)


def apply_commit(state: StreamState, commit: CommitInput) -> tuple[list[list[Result]], list[Event]]:
    """Apply one commit's inputs: every batch in order, the lease expiries,
    then collect the events (with any coalesced update or sale end that is due)."""
    results = [state.apply_batch(gw, batch_id, commands, commit.now) for gw, batch_id, commands in commit.batches]
    for gateway_id in commit.expired_gateways:
        state.drop_gateway(gateway_id)
    events = state.take_events(commit.clock, commit.now)
    return results, events
