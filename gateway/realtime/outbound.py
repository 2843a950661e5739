"""The WebSocket protocol's outbound frames: every frame the gateway sends, as a schema.

The frames themselves are built where they happen (`core/wire.py` and the
stream's rules for stream events, `core/stream_view.py` for what a viewer
gets on joining, `gateway/realtime/ws_session.py` for answers,
`gateway/streams/hub.py` for batches, `gateway/streams/live_directory.py` for
`stream_started`/`stream_stopped` announcements); these models describe them,
field for field, for the AsyncAPI document (`gateway/realtime/asyncapi.py`)
and the client libraries generated from it. Tests validate frames produced by
that real code against these models (`tests/gateway/realtime/test_outbound.py`,
and every frame the JS client receives in `tests/clients/`), so the two cannot
drift apart unnoticed.

Models forbid fields they do not name, except `error` (a refusal may carry
what its rule adds: `retryAfter`, `liked`...) and the documents a stream shows
(`flashSale`), whose stored shape may grow.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# `_id`, as the old apps read it (Mongoose's name): pydantic keeps names with a leading underscore
# private, so the field is `id_` here and `_id` on the wire and in the schema.
DocumentId = Annotated[str, Field(alias="_id", description="the document's id, as the old apps read it")]


class _Envelope(_Out):
    """Where an event sits in its stream: `seq` is gapless and increasing per
    stream; a new `epoch` means the stream's history was lost."""

    streamId: str
    seq: int
    epoch: str


# ------------------------------------------------------------ shapes inside frames


class ChatEntry(_Out):
    """One chat message as shown: `id` equals `seq`, the event that carried it."""

    id: int
    id_: Annotated[int, Field(alias="_id", description="equals `id`, as the old apps read documents")]
    seq: int
    username: str
    message: str
    isAdmin: bool
    timestamp: Annotated[str, Field(description="ISO 8601, stamped by the server")]


class PinnedProduct(_Out):
    """A pinned product: name, image and price (in its currency) from the catalogue when it was pinned."""

    productId: str
    id_: Annotated[DocumentId, Field(description="equals `productId`")]
    name: str
    price: Annotated[float, Field(description="a JSON number whose text is the exact amount in `currency`, e.g. 49.99")]
    priceMinor: Annotated[int, Field(description="the exact amount in the currency's minor units, e.g. 4999")]
    currency: Annotated[str, Field(description="the ISO 4217 code `price` is in (the product's), e.g. USD")]
    image: str | None
    displayOrder: int


class FlashSale(BaseModel):
    """A flash sale on a pinned product, as the stream shows it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    saleId: str
    productId: str
    productName: str | None = None
    price: Annotated[str, Field(description="exact decimal text in `currency`")]
    currency: str | None = None
    quantity: int
    remaining: int
    perCustomerLimit: int | None = None
    endsAt: Annotated[str, Field(description="ISO 8601")]
    version: int | None = None
    status: str | None = None


class StreamData(_Out):
    """What a stream shows: its description, then (from its state) the live numbers.
    `likedBy` is `[your key]` if you like it, else `[]`; `liked` says the same."""

    streamId: str
    id_: Annotated[DocumentId, Field(description="equals `streamId`")]
    title: str
    description: str
    startTime: str
    streamUrl: str
    quality: str
    viewerCount: int | None = None
    likes: int | None = None
    likedBy: list[str] | None = None
    liked: bool | None = None
    pinnedProducts: list[PinnedProduct] | None = None
    flashSales: list[FlashSale] | None = None
    slowModeSeconds: int | None = None


# ------------------------------------------------------------ stream events (numbered)


class ChatMessageEvent(_Envelope, ChatEntry):
    type: Literal["chat_message"]


class ChatMessageDeleted(_Envelope):
    type: Literal["chat_message_deleted"]
    messageId: Annotated[int, Field(description="the `seq` of the message taken down")]


class StreamUpdate(_Envelope):
    """Coalesced counters. Opted-in apps get `likedByAdded`/`likedByRemoved`
    (the change since the last update); old apps get `likedBy`: `[their key]` or `[]`."""

    type: Literal["stream_update"]
    viewerCount: int
    likes: int
    likedByAdded: list[str] | None = None
    likedByRemoved: list[str] | None = None
    likedBy: list[str] | None = None
    quality: str | None = None


class PinnedProductsUpdated(_Envelope):
    type: Literal["pinned_products_updated"]
    pinnedProducts: Annotated[list[PinnedProduct], Field(description="the whole list, in display order")]


class FlashSaleStarted(_Envelope):
    type: Literal["flash_sale_started"]
    flashSale: FlashSale


class FlashSaleUpdated(_Envelope):
    type: Literal["flash_sale_updated"]
    flashSale: FlashSale


class FlashSaleEnded(_Envelope):
    type: Literal["flash_sale_ended"]
    flashSale: FlashSale
    reason: str


class UserMuted(_Envelope):
    type: Literal["user_muted"]
    userKey: str
    until: Annotated[str, Field(description="ISO 8601")]


class UserUnmuted(_Envelope):
    type: Literal["user_unmuted"]
    userKey: str


class ModerationUpdated(_Envelope):
    type: Literal["moderation_updated"]
    slowModeSeconds: int
    blockedWords: Annotated[int, Field(description="how many words are blocked (never the words)")]


class StreamStopped(_Out):
    """The stream ended. Sent to every connection; `seq`/`epoch` are the
    stream's last position when this gateway knew it."""

    type: Literal["stream_stopped"]
    streamId: str
    seq: int | None = None
    epoch: str | None = None


StreamEvent = (
    ChatMessageEvent
    | ChatMessageDeleted
    | StreamUpdate
    | PinnedProductsUpdated
    | FlashSaleStarted
    | FlashSaleUpdated
    | FlashSaleEnded
    | UserMuted
    | UserUnmuted
    | ModerationUpdated
    | StreamStopped
)


class Batch(_Out):
    """Opted-in apps (protocol 2): a stream's events of one tick, in `seq` order."""

    type: Literal["batch"]
    streamId: str
    events: list[StreamEvent]


# ------------------------------------------------------------ snapshots


class StreamStarted(_Out):
    """A stream's state: when it goes live (to everyone), and to a viewer on
    joining (then with the live numbers), followed by its pinned products and chat history."""

    type: Literal["stream_started"]
    streamData: StreamData
    streamId: str
    seq: int | None
    epoch: str | None


class ChatHistory(_Out):
    """The recent chat, oldest first. Without `streamId`: nothing is live to watch."""

    type: Literal["chat_history"]
    messages: list[ChatEntry]
    streamId: str | None = None
    seq: int | None = None
    epoch: str | None = None


# ------------------------------------------------------------ answers


class Registered(_Out):
    type: Literal["registered"]
    sessionId: str
    status: Literal["connected"]
    authenticated: Annotated[bool, Field(description="the token was valid; false: a guest")]
    protocol: Literal[1, 2]


class AdminRegistered(_Out):
    type: Literal["admin_registered"]
    userId: str
    status: Literal["connected"]


class Pong(_Out):
    type: Literal["pong"]


class Ack(_Out):
    """A `chat_message` or `toggle_like` with a `clientMsgId` is stored (once,
    however often it was sent). Likes carry `liked` and `likes` and no `seq`."""

    type: Literal["ack"]
    clientMsgId: str
    seq: int | None
    streamId: str
    liked: bool | None = None
    likes: int | None = None


class Resumed(_Out):
    """The events after `fromSeq` up to `toSeq` follow (in a batch), then the live ones."""

    type: Literal["resumed"]
    streamId: str
    fromSeq: int
    toSeq: int
    epoch: str


class ResumeFailed(_Out):
    """The missed events cannot all be had: a fresh snapshot (`stream_started`,
    pinned products, chat history) follows, unless the stream is not live."""

    type: Literal["resume_failed"]
    streamId: str
    reason: str
    seq: int | None = None
    epoch: str | None = None


class Error(BaseModel):
    """A refusal. The connection stays open. `clientMsgId`: the refused chat or
    like; `retryAfter`: seconds to wait (`rate_limited`, `busy`, `slow_mode`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["error"]
    message: str
    code: str | None = None
    clientMsgId: str | None = None
    retryAfter: int | None = None


OutboundFrame = (
    Registered
    | AdminRegistered
    | Pong
    | Ack
    | Resumed
    | ResumeFailed
    | Error
    | Batch
    | StreamStarted
    | ChatHistory
    | StreamEvent  # a union inside a union is flattened: each stream event is a frame of its own too
)
OUTBOUND_TYPES: dict[str, type[BaseModel]] = {
    get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(OutboundFrame)
}
STREAM_EVENT_TYPES = frozenset(get_args(m.model_fields["type"].annotation)[0] for m in get_args(StreamEvent))
_adapter: TypeAdapter[OutboundFrame] = TypeAdapter(Annotated[OutboundFrame, Field(discriminator="type")])


def validate_outbound(frame: dict[str, Any]) -> BaseModel:
    """The frame checked against its model; raises `pydantic.ValidationError`
    (also for an unknown `type`)."""
    return _adapter.validate_python(frame)
