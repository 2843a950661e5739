"""A stream's live numbers (viewers now and at the peak, likes and likers,
chat messages, pinned products, where the stream is), one way for every
caller.

While a stream is live its numbers are the projection of its events onto a
`StreamView` (`core/stream_view.py`): the relay's view when this gateway
follows the stream (what its WebSocket viewers were sent), else a view built
from the actor's snapshot, projected the same way. After the stream, and for
anything the stream does not know, the stored record's values count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.stream_view import StreamView
from gateway.streams.live_directory import LiveDirectory


@dataclass(frozen=True)
class LiveNumbers:
    viewer_count: int
    peak_viewers: int
    likes: int
    liked_by: list[str]
    chat_count: int
    pinned_products: list[dict[str, Any]]
    seq: int | None
    epoch: str | None


def of_view(view: StreamView) -> dict[str, Any]:
    """The numbers a view holds (the keys of `StreamView.public`)."""
    return view.public()


def of_snapshot(stream_id: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The numbers of an actor's snapshot, projected as a relay's view projects it."""
    view = StreamView(stream_id)
    view.reset(snapshot)
    return of_view(view)


def followed(directory: LiveDirectory, stream_id: str) -> dict[str, Any] | None:
    """The numbers of the relay's view if this gateway follows the stream and its view is current."""
    relay = directory.relay(stream_id)
    if relay is not None and relay.ready.is_set():
        return of_view(relay.view)
    return None


def merged(record: dict[str, Any], live: dict[str, Any] | None) -> LiveNumbers:
    """The numbers to show: the live ones where there are some, else the stored
    record's. The peak is never below the viewers now."""
    numbers = live or {}

    def pick(key: str, default: Any) -> Any:
        return numbers.get(key, record.get(key, default))

    viewers = int(pick("viewerCount", 0))
    return LiveNumbers(
        viewer_count=viewers,
        peak_viewers=max(int(pick("peakViewers", 0)), viewers),
        likes=int(pick("likes", 0)),
        liked_by=list(numbers.get("likedBy", [])),
        chat_count=int(pick("chatCount", 0)),
        pinned_products=list(pick("pinnedProducts", [])),
        seq=numbers.get("seq"),
        epoch=numbers.get("epoch"),
    )
