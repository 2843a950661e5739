"""Commands: what a gateway asks the stream to do, on behalf of one connection.

The one declaration of the command types: `Command` is their union and
`COMMAND_TYPES` lists them, derived from it. Everything else that needs the
list (the journal codec, its tests) reads it from here.

Commands cross Ray in every batch: they are plain frozen dataclasses without
__slots__, because unpickling a slotted dataclass calls dataclasses.fields()
per object (measured: most of a busy gateway's time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias, get_args

from core.money import DEFAULT_CURRENCY


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
    """Pin a product over the video (admin). `display_order` None appends it.
    `price` is in `currency` (the product's). A journal entry written before
    pins carried a currency decodes with the default: the shop's default
    currency (`core.money.DEFAULT_CURRENCY`), the only one prices had then."""

    product_id: str
    name: str
    price: Any
    image: str | None = None
    display_order: int | None = None
    currency: str = DEFAULT_CURRENCY


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


Command: TypeAlias = (
    Join
    | Leave
    | SyncViewers
    | GatewayGone
    | Chat
    | ToggleLike
    | PinProduct
    | UnpinProduct
    | StartFlashSale
    | FlashSaleChanged
    | EndFlashSale
    | DeleteMessage
    | Mute
    | Unmute
    | SetBlockedWords
    | SetSlowMode
)

# Every command type, in the order of `Command`: the journal codec's kinds come from here.
COMMAND_TYPES: tuple[type[Command], ...] = get_args(Command)
