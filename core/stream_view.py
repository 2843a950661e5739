"""What one live stream shows, kept current by its events: the one projection.

`StreamView.project` is the only code that turns events into what a stream
shows (viewer count, likes and likers, pinned products, flash sales, recent
chat, chat count, peak viewers, slow mode, seq and epoch). Two copies run it:

* the stream's own, inside `StreamState`: every event the rules emit is
  projected as it is emitted, and the actor's snapshot is this view's;
* each gateway's (`StreamRelay.view`): reset from that snapshot, then fed the
  same events, decoded, in sequence order. New viewers get their
  `stream_started` snapshot, pinned products and `chat_history` from here,
  so a burst of joins costs the actor nothing but the (batched) Join commands.

So a gateway that has applied every event up to seq N shows exactly what the
stream's snapshot at seq N shows. Pure: no I/O.

Likes: the view keeps the set of likers (the snapshot's list, then the
`likedByAdded`/`likedByRemoved` of each `stream_update`). An old app reads
`likedBy` only to show whether *it* likes, so it is told exactly that:
`likedBy` is `[its key]` or `[]` (`personal_update`, `join_frames`). The
whole list would be the same for everyone, and with thousands of likers it
would cost more than everything else the stream sends.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from core.events import CHAT_WIRE_KEYS
from core.wire import chat_message_shown, encode, pinned_products, stream_document


def _sale_order(sale: dict[str, Any]) -> tuple[str, str]:
    return (sale["endsAt"], sale["saleId"])


class StreamView:
    def __init__(self, stream_id: str, history_size: int = 50) -> None:
        self.stream_id = stream_id
        self.seq = 0
        self.epoch: str | None = None
        self.stream_data: dict[str, Any] = {}
        self.liked: dict[str, None] = {}  # an ordered set of likers
        self.chat: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.chat_count = 0
        self.peak_viewers = 0
        self._frames: tuple[int, list[str]] | None = None

    @property
    def loaded(self) -> bool:
        return self.epoch is not None

    def reset(self, snapshot: dict[str, Any], seen: tuple[int, str] | None = None) -> list[dict[str, Any]]:
        """Replace everything with a snapshot (`StreamView.snapshot()` of the
        stream). Returns the chat messages of the snapshot that are newer than
        the position its audience has seen (same epoch only), so the caller can
        deliver what they missed. That position is this view's, unless `seen`
        (seq, epoch) says otherwise: an audience told of the stream before this
        view was first loaded."""
        seen_seq, seen_epoch = seen if seen is not None else (self.seq, self.epoch)
        missed = [m for m in snapshot["chat"] if snapshot["epoch"] == seen_epoch and m["seq"] > seen_seq]
        self.seq = int(snapshot["seq"])
        self.epoch = str(snapshot["epoch"])
        self.stream_data = stream_document(snapshot["streamData"])  # `_id`, pinned products as shown
        self.liked = dict.fromkeys(self.stream_data.pop("likedBy", []))
        self.chat.clear()
        self.chat.extend(snapshot["chat"])
        self.chat_count = int(snapshot.get("chatCount", len(self.chat)))
        self.peak_viewers = int(snapshot.get("peakViewers", 0))
        self._frames = None
        return missed

    def snapshot(self) -> dict[str, Any]:
        """Everything this view shows, as `reset` takes it: the stream data
        (with every liker), the recent chat (oldest first), the chat count, the
        peak viewer count and the position (`seq`, `epoch`). Fresh containers:
        changing the answer changes nothing here."""
        return {
            "streamData": {**self.stream_data, "likedBy": list(self.liked)},
            "chat": list(self.chat),
            "chatCount": self.chat_count,
            "peakViewers": self.peak_viewers,
            "seq": self.seq,
            "epoch": self.epoch,
        }

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event as a gateway receives it (decoded, with its envelope).
        Events must come in sequence order; older ones are ignored."""
        self.project(int(event["seq"]), event["type"], event)

    def project(self, seq: int, kind: str, body: dict[str, Any]) -> None:
        """Apply event `seq` of type `kind` with `body` (envelope keys, if any,
        are ignored). Does nothing unless `seq` is newer than the view. Keeps
        what it is given without copying it: event bodies are never changed
        once emitted."""
        if seq <= self.seq:
            return
        self.seq = seq
        data = self.stream_data
        if kind == "chat_message":
            self.chat.append({k: body[k] for k in CHAT_WIRE_KEYS})
            self.chat_count += 1
        elif kind == "chat_message_deleted":
            gone = body.get("messageId")
            kept = [m for m in self.chat if m.get("seq") != gone]
            if len(kept) != len(self.chat):
                self.chat.clear()
                self.chat.extend(kept)
        elif kind == "moderation_updated":
            data["slowModeSeconds"] = body.get("slowModeSeconds", 0)
        elif kind == "stream_update":
            for k in ("viewerCount", "likes", "quality"):
                if k in body:
                    data[k] = body[k]
            liked = self.liked
            for key in body.get("likedByRemoved", ()):
                liked.pop(key, None)
            liked.update(dict.fromkeys(body.get("likedByAdded", ())))  # in C: a storm adds thousands
            self.peak_viewers = max(self.peak_viewers, int(body.get("viewerCount", 0)))
        elif kind == "pinned_products_updated":
            data["pinnedProducts"] = pinned_products(body["pinnedProducts"])
        elif kind in ("flash_sale_started", "flash_sale_updated"):
            sales = {s["saleId"]: s for s in data.get("flashSales", [])}
            sales[body["flashSale"]["saleId"]] = body["flashSale"]
            data["flashSales"] = sorted(sales.values(), key=_sale_order)
        elif kind == "flash_sale_ended":
            ended = body["flashSale"]["saleId"]
            data["flashSales"] = [s for s in data.get("flashSales", []) if s["saleId"] != ended]
        self._frames = None

    def envelope(self) -> dict[str, Any]:
        return {"streamId": self.stream_id, "seq": self.seq, "epoch": self.epoch}

    def join_frames(self, viewer: str | None = None) -> list[str]:
        """What a viewer gets on joining: `stream_started` with the current
        state (with `likedBy` and `liked` saying whether `viewer` likes), the
        pinned products, then `chat_history` (oldest first). The last two are
        encoded once per change of the view, whoever asks."""
        if self._frames is None or self._frames[0] != self.seq:
            env = self.envelope()
            frames = [
                encode(
                    {
                        "type": "pinned_products_updated",
                        "pinnedProducts": self.stream_data.get("pinnedProducts", []),
                        **env,
                    }
                ),
                encode({"type": "chat_history", "messages": [chat_message_shown(m) for m in self.chat], **env}),
            ]
            self._frames = (self.seq, frames)
        likes = viewer is not None and viewer in self.liked
        started = encode(
            {
                "type": "stream_started",
                "streamData": {**self.stream_data, "likedBy": [viewer] if likes else [], "liked": likes},
                **self.envelope(),
            }
        )
        return [started, *self._frames[1]]

    def personal_update(self, event: dict[str, Any], viewer: str | None) -> str:
        """A `stream_update` as an old app reads it: the counts, and `likedBy`
        holding the viewer's own key if (and only if) it likes now."""
        likes = viewer is not None and viewer in self.liked
        return encode(
            {
                "type": "stream_update",
                "viewerCount": event.get("viewerCount", 0),
                "likes": event.get("likes", 0),
                "likedBy": [viewer] if likes else [],
                "streamId": self.stream_id,
                "seq": event["seq"],
                "epoch": event.get("epoch", self.epoch),
            }
        )

    def update_event(self) -> dict[str, Any]:
        """A `stream_update` with the current counters (after a resync)."""
        d = self.stream_data
        return {
            "type": "stream_update",
            "viewerCount": d.get("viewerCount", 0),
            "likes": d.get("likes", 0),
            "likedByAdded": [],
            "likedByRemoved": [],
            **self.envelope(),
        }

    def chat_frame(self, message: dict[str, Any]) -> str:
        return encode(
            {"type": "chat_message", **chat_message_shown(message), "streamId": self.stream_id, "epoch": self.epoch}
        )

    def public(self) -> dict[str, Any]:
        """The live numbers, for REST answers."""
        d = self.stream_data
        return {
            "viewerCount": d.get("viewerCount", 0),
            "likes": d.get("likes", 0),
            "likedBy": list(self.liked),
            "pinnedProducts": d.get("pinnedProducts", []),
            "flashSales": d.get("flashSales", []),
            "chatCount": self.chat_count,
            "peakViewers": self.peak_viewers,
            "slowModeSeconds": d.get("slowModeSeconds", 0),
            "seq": self.seq,
            "epoch": self.epoch,
        }
