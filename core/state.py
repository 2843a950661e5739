"""The state of one live stream: one small object, its fields declared once.

`StreamState` holds what the rules (`core.rules.*`) read and change, and
nothing else: no Ray, no sockets, no database. Its fields say how each is
stored in a checkpoint (`core.stored`), so the checkpoint codec
(`core.checkpoint`) is derived from this declaration. `core.commit` applies
commands to it.

What the stream *shows* (counters, likers, pinned products, flash sales,
recent chat, slow mode, position) is `view`, a `StreamView` that changes only
by `emit`: every event the rules emit is projected onto it as it is emitted,
exactly as each gateway projects the same events onto its own copy. The
snapshot a gateway starts from is this view's.

Guarantees:

* **Ordered.** Every event gets the next sequence number of the stream
  (`seq`, starting at 1) inside an `epoch`. The epoch is chosen when the stream
  first goes live and is kept by checkpoints; a new epoch means history was lost.
* **Shown = projected.** `snapshot()` is what applying every emitted event to
  the snapshot at creation gives; a coalesced change (viewers, likes, units
  of a flash sale) shows once its `stream_update` or `flash_sale_updated` is
  emitted. After a restart the view starts from the stored state as it is.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core import stored as codec
from core.events import ChatRecord, Event
from core.limits import DELETED_SEQS_KEPT
from core.money import DEFAULT_CURRENCY
from core.results import Result
from core.stored import stored
from core.stream_view import StreamView
from runtime.clock import iso


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
    def from_doc(doc: dict[str, Any]) -> StreamMeta:
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


def word_pattern(words: list[str]) -> re.Pattern[str] | None:
    """One regex matching any of `words` (casefolded) as a whole word or phrase."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def pin_order(product: dict[str, Any]) -> tuple[Any, str]:
    return (product["displayOrder"], product["productId"])


PINS_DUMP, _records_load = codec.records("productId", pin_order)


def pins_load(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pinned products from a checkpoint. One stored before pins carried a
    currency gets the shop's default currency (`DEFAULT_CURRENCY`), the only
    one prices had then: read here, where old checkpoints come in."""
    pinned: dict[str, dict[str, Any]] = _records_load(rows)
    for record in pinned.values():
        record.setdefault("currency", DEFAULT_CURRENCY)
    return pinned


def sale_order(sale: dict[str, Any]) -> tuple[str, str]:
    return (sale["endsAt"], sale["saleId"])


@dataclass(eq=False)
class StreamState:
    """The state of one stream. Fields with `stored(...)` metadata survive a
    restart (see `core.checkpoint`); the configuration comes from the actor at
    every start; the rest is handed out (`take_*`) or derived.

    After applying commands (`core.commit`), the caller must collect the events
    (`take_events`), store them, then publish them; `take_new_chat`,
    `take_new_deletions` and `take_new_viewers` hand out, once, what must be
    stored beside them.
    """

    meta: StreamMeta = field(metadata=stored("meta", StreamMeta.to_doc, StreamMeta.from_doc, required=True))
    epoch: str = field(default_factory=new_epoch, metadata=stored("epoch", *codec.STR, required=True))
    seq: int = field(default=0, metadata=stored("seq", *codec.INT, required=True))
    # Configuration.
    history_size: int = 50
    update_interval: float = 0.25
    batch_memory: int = 1024
    # Viewers: session id -> ids of the gateways it watches through.
    viewers: dict[str, set[str]] = field(default_factory=dict, metadata=stored("viewers", *codec.SET_MAP))
    peak_viewers: int = field(default=0, metadata=stored("peakViewers", *codec.INT))
    total_joins: int = field(default=0, metadata=stored("totalJoins", *codec.INT))
    # Likes: who likes now (an ordered set), and who started / stopped liking
    # since the last stream_update (net changes).
    liked_by: dict[str, None] = field(default_factory=dict, metadata=stored("likedBy", *codec.ORDERED_SET))
    liked_added: dict[str, None] = field(default_factory=dict, metadata=stored("likedAdded", *codec.ORDERED_SET))
    liked_removed: dict[str, None] = field(default_factory=dict, metadata=stored("likedRemoved", *codec.ORDERED_SET))
    # Chat: the recent messages (from the chat store after a restart) and how many there were.
    recent_chat: deque[ChatRecord] = field(default_factory=deque)
    chat_count: int = field(default=0, metadata=stored("chatCount", *codec.INT))
    # Moderation: mutes (viewer key -> until, ISO), blocked words (casefolded),
    # slow mode, each sender's last accepted message (ms since 1970) while it
    # is on, and the most recent deletions.
    muted: dict[str, str] = field(default_factory=dict, metadata=stored("moderation.muted", *codec.STRING_MAP))
    blocked_words: list[str] = field(default_factory=list, metadata=stored("moderation.blockedWords", *codec.STRINGS))
    slow_mode: int = field(default=0, metadata=stored("moderation.slowModeSeconds", *codec.INT))
    last_chat_ms: OrderedDict[str, int] = field(
        default_factory=OrderedDict, metadata=stored("moderation.lastChatMs", *codec.INT_PAIRS)
    )
    deleted_seqs: deque[int] = field(default_factory=deque, metadata=stored("moderation.deletedSeqs", *codec.INT_DEQUE))
    # Pinned products by id, and running flash sales by id (with those whose
    # change is not shown yet).
    pinned: dict[str, dict[str, Any]] = field(default_factory=dict, metadata=stored("pinned", PINS_DUMP, pins_load))
    flash_sales: dict[str, dict[str, Any]] = field(
        default_factory=dict, metadata=stored("flashSales", *codec.records("saleId", sale_order))
    )
    sales_dirty: set[str] = field(default_factory=set, metadata=stored("salesDirty", *codec.SORTED_SET))
    # Deduplication: "<sender>\x00<client id>" -> [seq, data] of what that
    # client operation produced; batch id -> the results of that batch.
    client_ops: OrderedDict[str, list[Any]] = field(
        default_factory=OrderedDict, metadata=stored("clientOps", *codec.CLIENT_OPS)
    )
    applied_batches: OrderedDict[str, list[Result]] = field(
        default_factory=OrderedDict, metadata=stored("appliedBatches", *codec.BATCH_RESULTS)
    )
    # Coalescing: counters changed since the last stream_update, and when that was (clock).
    counters_dirty: bool = field(default=False, metadata=stored("countersDirty", *codec.BOOL))
    last_update_at: float | None = field(default=None, metadata=stored("lastUpdateAt", *codec.OPTIONAL_FLOAT))
    # Handed out once (`take_*`), never stored.
    events: list[Event] = field(default_factory=list, init=False)
    new_chat: list[ChatRecord] = field(default_factory=list, init=False)
    new_deletions: list[int] = field(default_factory=list, init=False)
    new_viewers: list[str] = field(default_factory=list, init=False)
    # Derived.
    blocked_re: re.Pattern[str] | None = field(default=None, init=False)
    view: StreamView = field(init=False)

    def __post_init__(self) -> None:
        self.recent_chat = deque(self.recent_chat, maxlen=self.history_size)
        self.deleted_seqs = deque(self.deleted_seqs, maxlen=DELETED_SEQS_KEPT)
        self.blocked_re = word_pattern(self.blocked_words)
        self.view = StreamView(self.meta.stream_id, self.history_size)
        # A new or restored stream shows what it holds (a restored one, its
        # pending counters and sales too: their update follows, unchanged).
        self.view.reset(
            {
                "streamData": {
                    **self.meta.to_doc(),
                    "viewerCount": self.viewer_count,
                    "likes": self.likes,
                    "likedBy": list(self.liked_by),
                    "pinnedProducts": self.pinned_list(),
                    "flashSales": [dict(s) for s in self.flash_sale_list()],  # sales change in place
                    "slowModeSeconds": self.slow_mode,
                },
                "chat": [c.to_wire() for c in self.recent_chat],
                "chatCount": self.chat_count,
                "peakViewers": self.peak_viewers,
                "seq": self.seq,
                "epoch": self.epoch,
            }
        )

    # ------------------------------------------------------------ changing

    def emit(self, type_: str, body: dict[str, Any]) -> Event:
        """The next event of the stream, projected onto `view` now and handed
        out by the next `take_events`. `body` must not be changed afterwards."""
        self.seq += 1
        event = Event(seq=self.seq, type=type_, body=body)
        self.events.append(event)
        self.view.project(event.seq, type_, body)
        return event

    # ------------------------------------------------------------ reading

    @property
    def viewer_count(self) -> int:
        return len(self.viewers)

    @property
    def likes(self) -> int:
        return len(self.liked_by)

    def pinned_list(self) -> list[dict[str, Any]]:
        return sorted(self.pinned.values(), key=pin_order)

    def flash_sale_list(self) -> list[dict[str, Any]]:
        return sorted(self.flash_sales.values(), key=sale_order)

    def stream_data(self) -> dict[str, Any]:
        """The `streamData` of a `stream_started` message: the stream as it shows now."""
        data: dict[str, Any] = self.view.snapshot()["streamData"]
        return data

    def moderation(self, now: datetime | None = None) -> dict[str, Any]:
        """The moderation settings, for moderators (never sent to viewers:
        the blocked words stay private). Mutes that ended before `now` are left out."""
        stamp = iso(now) if now is not None else ""
        return {
            "slowModeSeconds": self.slow_mode,
            "blockedWords": list(self.blocked_words),
            "muted": [{"userKey": k, "until": u} for k, u in sorted(self.muted.items()) if u > stamp],
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything a gateway needs to serve new viewers without asking again:
        what the stream shows (`StreamView.snapshot()`: the stream data, the
        recent chat, oldest first, and the stream position), and the moderation
        settings for moderators."""
        return {**self.view.snapshot(), "moderation": self.moderation()}

    def stats(self) -> dict[str, Any]:
        """The stream's numbers as they are (pending coalesced changes included)."""
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

    def gateways(self) -> set[str]:
        """The gateways through which someone watches."""
        return {g for gws in self.viewers.values() for g in gws}

    def update_due_in(self, clock: float) -> float | None:
        """Seconds until a pending `stream_update` is due (0 if now), None if none is pending."""
        if not self.counters_dirty and not self.sales_dirty:
            return None
        if self.last_update_at is None:
            return 0.0
        return max(0.0, self.last_update_at + self.update_interval - clock)

    def next_sale_end(self) -> str | None:
        """The earliest `endsAt` of the running sales (ISO 8601), if any."""
        return min((s["endsAt"] for s in self.flash_sales.values()), default=None)

    # ------------------------------------------------------------ handing out

    def take_new_viewers(self) -> list[str]:
        """Sessions that started watching since the last call, to be recorded (analytics)."""
        viewers, self.new_viewers = self.new_viewers, []
        return viewers

    def take_new_chat(self) -> list[ChatRecord]:
        """Chat records produced since the last call, to be stored."""
        chat, self.new_chat = self.new_chat, []
        return chat

    def take_new_deletions(self) -> list[int]:
        """Seqs of chat messages deleted since the last call, to be marked
        deleted in the chat store (after the new chat is stored)."""
        deleted, self.new_deletions = self.new_deletions, []
        return deleted
