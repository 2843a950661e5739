"""The WebSocket protocol's inbound frames: schemas, parsing and error texts.

`parse_frame` turns one text frame into a typed frame or a `ProtocolError`
whose message is fit to send back as `{"type":"error","message":...}`. Fields
we use are type-checked, so an object (`{"$gt": ""}`) can never stand where a
string belongs.

Unknown keys: a frame with a key its type does not define is refused, not
applied, and answered `{"type":"error","code":"unknown_fields","fields":[...],
"message":"register has no field authToken (did you mean token?)"}` (the
suggestion when a defined key is close). Refused rather than applied with a
warning, because a misspelt key would otherwise be acted on as if absent: a
`register` with `authToken` would leave the client a guest, a `chat_message`
with `streamID` could go to another stream. Old apps are unaffected: every key
they send is defined, or listed in `TOLERATED` (accepted and ignored: a pin's
`name`/`price`/`image`, a `start_stream`'s snapshot-shaped metadata). Only the
frame's top level is checked; a key starting with `$` is refused as an
operator (`Invalid <type>: ...`) before it could count as unknown.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from gateway.security.guard import operator_message
from gateway.services import moderation
from gateway.services.pins import DisplayOrder

StreamId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{24}$")]
SessionId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=200)]


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Resume(_Frame):
    """Where a client's view of a stream ends: go on from the event after `seq`."""

    seq: Annotated[int, Field(ge=0)]
    epoch: Annotated[str, StringConstraints(min_length=1, max_length=64)]


ProtocolVersion = Literal[1, 2]


class Register(_Frame):
    type: Literal["register"]
    sessionId: SessionId
    token: str | None = None
    streamId: StreamId | None = None
    protocol: ProtocolVersion | None = None  # 2: batch frames, acknowledgements, resumption
    resume: Resume | None = None


class RegisterAdmin(_Frame):
    type: Literal["register_admin"]
    userId: str | None = None
    token: str | None = None


class JoinStream(_Frame):
    type: Literal["join_stream"]
    streamId: StreamId
    protocol: ProtocolVersion | None = None
    resume: Resume | None = None


class LeaveStream(_Frame):
    type: Literal["leave_stream"]
    streamId: StreamId | None = None


class StartStream(_Frame):
    type: Literal["start_stream"]
    streamId: StreamId | None = None
    title: ShortText | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    streamUrl: Annotated[str, StringConstraints(max_length=2000)] | None = None
    quality: ShortText | None = None


class StopStream(_Frame):
    type: Literal["stop_stream"]
    streamId: StreamId | None = None


class ChatMessage(_Frame):
    type: Literal["chat_message"]
    message: str
    username: str | None = None
    isAdmin: Any = None  # accepted and ignored: the server decides
    timestamp: Any = None  # accepted and ignored: the server stamps
    streamId: StreamId | None = None
    clientMsgId: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


MAX_CLIENT_MSG_ID = 64
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CLIENT_MSG_ID)]


class ToggleLike(_Frame):
    type: Literal["toggle_like"]
    userId: str | None = None
    sessionId: str | None = None
    streamId: StreamId | None = None
    clientMsgId: ClientMsgId | None = None


class PinProduct(_Frame):
    """Pin a catalogue product: its name, image and price come from the catalogue
    (`gateway/services/pins.py`). The `name`, `price` and `image` that older
    admin apps still send are accepted and ignored."""

    type: Literal["pin_product"]
    productId: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    displayOrder: DisplayOrder | None = None
    streamId: StreamId | None = None


class UnpinProduct(_Frame):
    type: Literal["unpin_product"]
    productId: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    streamId: StreamId | None = None


class Ping(_Frame):
    type: Literal["ping"]


# Moderation (admins, and connections registered with a moderator's token): the
# fields, limits and messages are the moderation service's requests, as REST's bodies are.


class DeleteMessage(_Frame, moderation.DeleteRequest):
    type: Literal["delete_message"]
    streamId: StreamId | None = None


class MuteUser(_Frame, moderation.MuteRequest):
    """Mute `userId` or `sessionId`, or the sender of `messageId`, for `durationSeconds`."""

    type: Literal["mute_user"]
    streamId: StreamId | None = None


class UnmuteUser(_Frame, moderation.UnmuteRequest):
    type: Literal["unmute_user"]
    streamId: StreamId | None = None


class SetBlockedWords(_Frame, moderation.BlockedWordsRequest):
    type: Literal["set_blocked_words"]
    streamId: StreamId | None = None


class SetSlowMode(_Frame, moderation.SlowModeRequest):
    type: Literal["set_slow_mode"]
    streamId: StreamId | None = None


Frame = (
    Register
    | RegisterAdmin
    | JoinStream
    | LeaveStream
    | StartStream
    | StopStream
    | ChatMessage
    | ToggleLike
    | PinProduct
    | UnpinProduct
    | Ping
    | DeleteMessage
    | MuteUser
    | UnmuteUser
    | SetBlockedWords
    | SetSlowMode
)
FRAME_TYPES = {get_args(m.model_fields["type"].annotation)[0]: m for m in get_args(Frame)}
_adapter: TypeAdapter[Frame] = TypeAdapter(Annotated[Frame, Field(discriminator="type")])

# Keys old apps send that no field holds: accepted and ignored. A pin's product data comes
# from the catalogue now; an old admin app's `start_stream` may carry the stream's snapshot
# (the contract's "stream metadata", shaped like `stream_started`'s `streamData`).
TOLERATED: dict[str, frozenset[str]] = {
    "pin_product": frozenset({"name", "price", "image"}),
    "start_stream": frozenset({"startTime", "viewerCount", "likes", "likedBy"}),
}
MAX_NAMED_FIELDS = 10  # an error names at most this many unknown keys
MAX_NAME_CHARS = 40


def _defined(model: type[BaseModel]) -> frozenset[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
    return frozenset(names)


DEFINED: dict[str, frozenset[str]] = {kind: _defined(model) for kind, model in FRAME_TYPES.items()}


class ProtocolError(Exception):
    """A frame we cannot act on. `str(e)` is the message for the sender;
    `code` a stable name for it (`invalid_frame`, `unknown_type`, `forbidden`...)."""

    def __init__(self, message: str, code: str = "invalid_frame", **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def parse_frame(raw: str | bytes) -> Frame:
    return validate_frame(decode_frame(raw))


def decode_frame(raw: str | bytes) -> dict[str, Any]:
    """The frame as a JSON object with a known `type` (not yet validated)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProtocolError("Invalid JSON: every frame must be one JSON object") from e
    if not isinstance(data, dict):
        raise ProtocolError("Invalid frame: every frame must be a JSON object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("Invalid frame: missing 'type'")
    if kind not in FRAME_TYPES:
        shown = kind if len(kind) <= 40 else kind[:40] + "..."
        raise ProtocolError(f"Unknown message type: {shown}", "unknown_type")
    return data


def validate_frame(data: dict[str, Any]) -> Frame:
    """A decoded frame (`decode_frame`) checked against its schema."""
    kind = data["type"]
    try:
        frame = _adapter.validate_python(data)
    except ValidationError as e:
        # A misspelt required key fails the schema: name the misspelling, the likelier cause.
        _refuse_unknown(kind, data)
        raise ProtocolError(f"Invalid {kind}: {_describe(e)}") from e
    # Typed fields cannot hold an object; this catches operators anywhere else
    # (ignored or free-form fields), so nothing that looks like a query gets in.
    # A flat frame (no `$` key, no nested value: every like and most chat) has
    # nowhere to hide one, and skips the scan.
    if not _flat(data):
        refused = operator_message(data)
        if refused is not None:
            raise ProtocolError(refused.replace("Invalid request", f"Invalid {kind}", 1))
    _refuse_unknown(kind, data)
    return frame


def unknown_fields(kind: str, data: dict[str, Any]) -> list[str]:
    """The top-level keys of a frame of type `kind` that it neither defines nor tolerates,
    in the frame's order; keys starting with `$` are left to the operator check."""
    known = DEFINED[kind] | TOLERATED.get(kind, frozenset())
    return [k for k in data if isinstance(k, str) and k not in known and not k.startswith("$")]


def _refuse_unknown(kind: str, data: dict[str, Any]) -> None:
    unknown = unknown_fields(kind, data)
    if not unknown:
        return
    named = [k if len(k) <= MAX_NAME_CHARS else k[:MAX_NAME_CHARS] + "..." for k in unknown[:MAX_NAMED_FIELDS]]
    lowered = {c.lower(): c for c in DEFINED[kind] - {"type"}}  # `streamID` is as close to `streamId` as can be
    parts = []
    for key, shown in zip(unknown, named, strict=False):
        close = difflib.get_close_matches(key.lower(), sorted(lowered), n=1, cutoff=0.6)
        parts.append(f"{shown} (did you mean {lowered[close[0]]}?)" if close else shown)
    more = f" and {len(unknown) - len(named)} more" if len(unknown) > len(named) else ""
    noun = "field" if len(unknown) == 1 else "fields"
    raise ProtocolError(f"{kind} has no {noun} {', '.join(parts)}{more}", "unknown_fields", fields=named)


def _flat(data: dict[str, Any]) -> bool:
    """No key starts with `$` and no value is an object or a list: the operator
    scan (`guard.find_operator`) of such a frame finds nothing, by construction."""
    for key, value in data.items():
        if isinstance(value, (dict, list)) or not isinstance(key, str) or key[:1] == "$":
            return False
    return True


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"][1:]) or "frame"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def error_frame(message: str, **extra: Any) -> str:
    return orjson.dumps({"type": "error", "message": message, **extra}).decode()
