"""Parsing inbound WebSocket frames: valid frames, and every way a frame is refused."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.realtime.protocol import (
    FRAME_TYPES,
    JoinStream,
    PinProduct,
    ProtocolError,
    Register,
    StartStream,
    error_frame,
    parse_frame,
)

STREAM = "0123456789abcdef01234567"

# One valid frame per type, with every required field.
VALID: dict[str, dict[str, Any]] = {
    "register": {"sessionId": "sess-1", "token": "t", "streamId": STREAM},
    "register_admin": {"userId": "u1", "token": "t"},
    "join_stream": {"streamId": STREAM},
    "leave_stream": {"streamId": STREAM},
    "start_stream": {"streamId": STREAM, "title": "Sale", "description": "d", "streamUrl": "u", "quality": "hd"},
    "stop_stream": {"streamId": STREAM},
    "chat_message": {"message": "hello", "username": "ann", "isAdmin": True, "timestamp": 123},
    "toggle_like": {"userId": "u1", "sessionId": "s1", "streamId": STREAM},
    "pin_product": {"productId": "p1", "displayOrder": 2},
    "unpin_product": {"productId": "p1"},
    "ping": {},
    "delete_message": {"messageId": 7, "streamId": STREAM},
    "mute_user": {"userId": "u1", "durationSeconds": 60},
    "unmute_user": {"sessionId": "s1"},
    "set_blocked_words": {"words": ["spam", "scam link"]},
    "set_slow_mode": {"seconds": 10},
}


def raw(data: Any) -> str:
    return orjson.dumps(data).decode()


def refused(data: Any) -> str:
    """The ProtocolError message for a frame that must be refused."""
    with pytest.raises(ProtocolError) as info:
        parse_frame(data if isinstance(data, (str, bytes)) else raw(data))
    return str(info.value)


def test_valid_table_covers_every_frame_type() -> None:
    assert set(VALID) == set(FRAME_TYPES)


@pytest.mark.parametrize("kind", sorted(FRAME_TYPES))
def test_every_frame_type_parses(kind: str) -> None:
    frame = parse_frame(raw({"type": kind, **VALID[kind]}))
    assert isinstance(frame, FRAME_TYPES[kind])
    assert frame.type == kind
    for name, value in VALID[kind].items():
        assert getattr(frame, name) == value


def test_bytes_input_parses() -> None:
    frame = parse_frame(raw({"type": "join_stream", "streamId": STREAM}).encode())
    assert isinstance(frame, JoinStream) and frame.streamId == STREAM


def test_optional_fields_default_to_none() -> None:
    frame = parse_frame(raw({"type": "register", "sessionId": "s"}))
    assert isinstance(frame, Register)
    assert frame.token is None and frame.streamId is None


def unknown(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    with pytest.raises(ProtocolError) as e:
        parse_frame(raw(data))
    assert e.value.code == "unknown_fields"
    return str(e.value), e.value.extra


def test_a_misspelt_key_is_refused_and_named_with_a_suggestion() -> None:
    """A `register` with `authToken` must not leave the client a guest without a word."""
    message, extra = unknown({"type": "register", "sessionId": "s", "authToken": "t"})
    assert message == "register has no field authToken (did you mean token?)"
    assert extra == {"fields": ["authToken"]}
    assert error_frame(message, code="unknown_fields", **extra) == (
        '{"type":"error","message":"register has no field authToken (did you mean token?)",'
        '"code":"unknown_fields","fields":["authToken"]}'
    )


def test_a_misspelt_required_key_is_named_rather_than_reported_missing() -> None:
    message, extra = unknown({"type": "register", "session_id": "s"})
    assert message == "register has no field session_id (did you mean sessionId?)"
    assert extra == {"fields": ["session_id"]}


def test_a_key_differing_only_in_case_is_suggested() -> None:
    message, _ = unknown({"type": "chat_message", "message": "hi", "streamID": STREAM})
    assert message == "chat_message has no field streamID (did you mean streamId?)"


def test_several_unknown_keys_are_all_named_in_order() -> None:
    message, extra = unknown({"type": "chat_message", "message": "hi", "color": "red", "nested": {"a": 1}})
    assert message == "chat_message has no fields color, nested"
    assert extra == {"fields": ["color", "nested"]}


def test_a_flood_of_unknown_keys_is_named_within_bounds() -> None:
    message, extra = unknown({"type": "ping", **{f"k{i}" + "x" * 60: i for i in range(30)}})
    assert len(extra["fields"]) == 10 and all(len(f) == 43 for f in extra["fields"])
    assert message.endswith(" and 20 more") and len(message) < 600


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_defined_key_of_every_type_is_known(kind: str) -> None:
    assert type(parse_frame(raw({"type": kind, **VALID[kind]}))) is FRAME_TYPES[kind]


@pytest.mark.parametrize(
    "frame",
    [
        # Exactly what the contract's old apps send (and the snapshot-shaped metadata of a start).
        {"type": "register", "sessionId": "s", "token": "t"},
        {"type": "register_admin", "userId": "u", "token": "t"},
        {"type": "chat_message", "message": "m", "username": "ann", "isAdmin": False, "timestamp": "2026-01-01"},
        {"type": "toggle_like", "userId": "u", "sessionId": "s"},
        {"type": "stop_stream", "streamId": STREAM},
        {"type": "start_stream", "title": "t", "description": "d", "streamUrl": "u", "quality": "hd", "likes": 0},
        {"type": "start_stream", "title": "t", "startTime": "2026-01-01", "viewerCount": 0, "likedBy": []},
        {"type": "ping"},
    ],
)
def test_what_old_apps_send_is_never_unknown(frame: dict[str, Any]) -> None:
    assert parse_frame(raw(frame)).type == frame["type"]


@pytest.mark.parametrize(
    "old",
    [
        {"name": "Mug", "price": 9.5, "image": "i.png"},
        {"name": "Mug", "price": "3.50"},
        {"price": 3},
        {"name": 5, "price": [1], "image": {}},
        {},
    ],
)
def test_a_pins_name_price_and_image_are_accepted_and_ignored(old: dict[str, Any]) -> None:
    """They come from the catalogue now; old admin apps still send them."""
    frame = parse_frame(raw({"type": "pin_product", "productId": "p", "displayOrder": 1, **old}))
    assert isinstance(frame, PinProduct) and (frame.productId, frame.displayOrder) == ("p", 1)
    assert set(frame.model_dump()) == {"type", "productId", "displayOrder", "streamId"}


@pytest.mark.parametrize("order", [-1, 10_001, "2", 1.5, True])
def test_a_pins_display_order_has_the_rest_limits(order: Any) -> None:
    assert refused({"type": "pin_product", "productId": "p", "displayOrder": order}).startswith(
        "Invalid pin_product: displayOrder: "
    )


@pytest.mark.parametrize("text", ["", "{", "not json", "{'type': 'ping'}", b"\xff\xfe"])
def test_invalid_json(text: str | bytes) -> None:
    assert refused(text) == "Invalid JSON: every frame must be one JSON object"


@pytest.mark.parametrize("data", [[], [{"type": "ping"}], "ping", 42, None, True])
def test_non_object_json(data: Any) -> None:
    assert refused(raw(data)) == "Invalid frame: every frame must be a JSON object with a 'type'"


@pytest.mark.parametrize("data", [{}, {"streamId": STREAM}, {"type": None}, {"type": 1}, {"type": {"$ne": None}}])
def test_missing_or_non_string_type(data: dict[str, Any]) -> None:
    assert refused(data) == "Invalid frame: missing 'type'"


def test_unknown_type() -> None:
    assert refused({"type": "dance"}) == "Unknown message type: dance"


def test_type_is_case_sensitive() -> None:
    assert refused({"type": "PING"}) == "Unknown message type: PING"


def test_unknown_type_of_exactly_40_chars_is_shown_whole() -> None:
    kind = "x" * 40
    assert refused({"type": kind}) == f"Unknown message type: {kind}"


def test_very_long_unknown_type_is_truncated() -> None:
    kind = "a" * 40 + "b" * 10_000
    message = refused({"type": kind})
    assert message == "Unknown message type: " + "a" * 40 + "..."
    assert "b" not in message


@pytest.mark.parametrize("session_id", [{"$gt": ""}, ["a"], 7, None, "", "s" * 129])
def test_register_rejects_bad_session_id(session_id: Any) -> None:
    message = refused({"type": "register", "sessionId": session_id})
    assert message.startswith("Invalid register: sessionId: ")


def test_register_requires_session_id() -> None:
    message = refused({"type": "register"})
    assert message.startswith("Invalid register: sessionId: ")
    assert "required" in message.lower()


@pytest.mark.parametrize(
    "stream_id",
    [
        {"$ne": None},
        {"$gt": ""},
        "0123456789abcdef0123456",  # 23 chars
        "0123456789abcdef012345678",  # 25 chars
        "0123456789ABCDEF01234567",  # upper case
        "0123456789abcdef0123456g",  # not hex
        " 0123456789abcdef0123456",
        "0123456789abcdef01234567\n",
        123,
    ],
)
def test_join_stream_rejects_bad_stream_id(stream_id: Any) -> None:
    message = refused({"type": "join_stream", "streamId": stream_id})
    assert message.startswith("Invalid join_stream: streamId: ")


def test_join_stream_requires_stream_id() -> None:
    assert refused({"type": "join_stream"}).startswith("Invalid join_stream: streamId: ")


def test_optional_stream_id_is_still_checked() -> None:
    assert refused({"type": "chat_message", "message": "hi", "streamId": {"$ne": None}}).startswith(
        "Invalid chat_message: streamId: "
    )


def test_chat_message_must_be_a_string() -> None:
    assert refused({"type": "chat_message", "message": {"$gt": ""}}).startswith("Invalid chat_message: message: ")
    assert refused({"type": "chat_message"}).startswith("Invalid chat_message: message: ")


def test_string_fields_are_not_coerced_from_numbers() -> None:
    # Pydantic's lax mode would not turn 5 into "5" for str; make sure that holds here.
    assert refused({"type": "pin_product", "productId": 5, "name": "n", "price": 1}).startswith(
        "Invalid pin_product: productId: "
    )


def test_length_limits() -> None:
    assert refused({"type": "start_stream", "title": "t" * 201}).startswith("Invalid start_stream: title: ")
    frame = parse_frame(raw({"type": "start_stream", "title": "t" * 200}))
    assert isinstance(frame, StartStream) and frame.title == "t" * 200
    assert refused({"type": "unpin_product", "productId": ""}).startswith("Invalid unpin_product: productId: ")
    assert refused({"type": "unpin_product", "productId": "p" * 65}).startswith("Invalid unpin_product: productId: ")


def test_several_errors_are_listed_at_most_three() -> None:
    message = refused(
        {"type": "start_stream", "streamId": {}, "title": {}, "description": {}, "streamUrl": {}, "quality": {}}
    )
    assert message.startswith("Invalid start_stream: ")
    assert "streamId: " in message and "title: " in message
    assert message.count("; ") == 2


def test_protocol_error_is_an_exception_with_the_message_as_str() -> None:
    err = ProtocolError("nope")
    assert isinstance(err, Exception) and str(err) == "nope"


def test_error_frame_shape() -> None:
    assert orjson.loads(error_frame("bad thing")) == {"type": "error", "message": "bad thing"}


def test_error_frame_with_extra_fields() -> None:
    text = error_frame("denied", code=403, streamId=STREAM)
    assert isinstance(text, str)
    assert orjson.loads(text) == {"type": "error", "message": "denied", "code": 403, "streamId": STREAM}


def test_error_frame_of_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_frame("[]")
    decoded = orjson.loads(error_frame(str(info.value)))
    assert decoded["type"] == "error"
    assert decoded["message"] == "Invalid frame: every frame must be a JSON object with a 'type'"


# ---------------------------------------------------------------- the operator scan's shortcut

from hypothesis import given, settings, strategies as st  # noqa: E402

from gateway.realtime import protocol as protocol_module  # noqa: E402
from gateway.security.guard import operator_message  # noqa: E402

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from([STREAM, "s1", "", "$gt", "x" * 65]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "$gt", "$ne", "b"]), inner, max_size=3)
    ),
    max_leaves=6,
)
_keys = st.sampled_from(
    [
        "userId",
        "sessionId",
        "streamId",
        "clientMsgId",
        "message",
        "username",
        "extra",
        "$where",
        "$gt",
        "productId",
        "name",
        "price",
        "seconds",
    ]
)


def _reference(data: dict[str, Any]) -> Any:
    """What `validate_frame` does without the shortcut: validate, then always scan
    (unknown keys are refused after a failed validation and after the scan, as there)."""
    kind = data["type"]
    try:
        frame = protocol_module._adapter.validate_python(data)
    except protocol_module.ValidationError as e:
        protocol_module._refuse_unknown(kind, data)
        raise ProtocolError(f"Invalid {kind}: {protocol_module._describe(e)}") from e
    refused = operator_message(data)
    if refused is not None:
        raise ProtocolError(refused.replace("Invalid request", f"Invalid {kind}", 1))
    protocol_module._refuse_unknown(kind, data)
    return frame


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["toggle_like", "chat_message", "ping", "pin_product", "set_slow_mode"]),
    fields=st.dictionaries(_keys, _values, max_size=5),
)
def test_skipping_the_scan_for_flat_frames_answers_exactly_as_scanning(kind: str, fields: dict[str, Any]) -> None:
    data = {**fields, "type": kind}
    try:
        expected: Any = _reference(data)
    except ProtocolError as e:
        expected = ("error", str(e), e.code)
    try:
        got: Any = protocol_module.validate_frame(data)
    except ProtocolError as e:
        got = ("error", str(e), e.code)
    assert got == expected


def test_an_operator_key_at_the_top_of_a_like_is_still_refused() -> None:
    with pytest.raises(ProtocolError, match=r"\$where"):
        parse_frame(orjson.dumps({"type": "toggle_like", "$where": "1", "streamId": STREAM}))
    with pytest.raises(ProtocolError, match=r"extra\.\$gt"):
        parse_frame(orjson.dumps({"type": "toggle_like", "extra": {"$gt": ""}}))
