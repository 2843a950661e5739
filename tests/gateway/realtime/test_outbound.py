"""The outbound frame models (`gateway/realtime/outbound.py`) describe what the
real code sends: frames made by the stream core, the gateway's view of a
stream, the hub's batches and the session's answers all validate, and a frame
with a field the model does not name, or without one it requires, does not.
(The system tests in `tests/clients/` check every frame a real gateway sent.)"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from core.commands import (
    Chat,
    DeleteMessage,
    EndFlashSale,
    FlashSaleChanged,
    Join,
    Mute,
    PinProduct,
    SetBlockedWords,
    SetSlowMode,
    StartFlashSale,
    ToggleLike,
    Unmute,
)
from core.commit import stop_stream, take_events
from core.stream_view import StreamView
from core.wire import encode_event
from gateway.realtime import outbound
from gateway.realtime.protocol import error_frame
from gateway.streams.hub import batch_frame
from tests.core.helpers import apply, new_state, sale
from tests.gateway.realtime.test_ws_session import STREAM, sent, session, watching


def stream_events() -> tuple[str, list[str]]:
    """Every kind of stream event, made by the real core and encoded as the actor does."""
    s = new_state(update_interval=0.0)
    apply(s, Join("a"), PinProduct("p1", "Mug", "9.99", "https://img/1.png"))
    apply(s, Chat(username="ann", message="hello", is_admin=False, session_id="a", client_msg_id="c1"))
    apply(s, ToggleLike("a"), StartFlashSale(sale()))
    apply(s, FlashSaleChanged(sale(remaining=4, version=2)))
    events = take_events(s, clock=1.0)
    apply(s, DeleteMessage(3), Mute(until="2030-01-01T00:00:00.000Z", target="u-1"), Unmute("u-1"))
    apply(s, SetBlockedWords(("spam",)), SetSlowMode(5), EndFlashSale("f1", "sold_out"))
    events += take_events(s, clock=2.0)
    events.append(stop_stream(s))
    return s.epoch, [encode_event(s.meta.stream_id, s.epoch, e) for e in events]


def test_every_stream_event_the_core_makes_validates_alone_and_in_a_batch() -> None:
    _, texts = stream_events()
    kinds = set()
    for text in texts:
        frame = orjson.loads(text)
        outbound.validate_outbound(frame)
        kinds.add(frame["type"])
    assert kinds == outbound.STREAM_EVENT_TYPES, "the core makes exactly the stream events the models name"
    batch = orjson.loads(batch_frame("s" * 24, texts))
    assert isinstance(outbound.validate_outbound(batch), outbound.Batch)


def test_what_a_viewer_gets_from_the_gateways_view_validates() -> None:
    epoch, texts = stream_events()
    view = StreamView("s" * 24)
    view.reset(new_state().view.snapshot() | {"epoch": epoch})
    for text in texts[:-1]:
        view.apply(orjson.loads(text))
    frames = [orjson.loads(t) for t in view.join_frames("a")]
    assert [f["type"] for f in frames] == ["stream_started", "pinned_products_updated", "chat_history"]
    assert frames[0]["streamData"]["pinnedProducts"] and frames[2]["messages"], "a snapshot with content"
    update = orjson.loads(texts[0]) if orjson.loads(texts[0])["type"] == "stream_update" else view.update_event()
    frames += [
        orjson.loads(view.personal_update(update, "a")),
        view.update_event(),
        orjson.loads(view.chat_frame(frames[2]["messages"][0])),
    ]
    for frame in frames:
        outbound.validate_outbound(frame)


async def test_the_sessions_answers_validate() -> None:
    s, raw, _ = session()
    await watching(s)
    await s.handle_text(orjson.dumps({"type": "chat_message", "message": "hi", "clientMsgId": "m1"}).decode())
    await s.handle_text(orjson.dumps({"type": "toggle_like", "clientMsgId": "l1"}).decode())
    await s.handle_text('{"type":"chat_message"}')
    await s.handle_text('{"type":"no_such_thing"}')
    await asyncio.sleep(0.01)  # the acks are sent from the stored commands' callbacks
    frames = sent(raw)
    assert sorted(f["type"] for f in frames) == ["ack", "ack", "error", "error", "pong"]
    for frame in frames:
        outbound.validate_outbound(frame)
    outbound.validate_outbound(orjson.loads(error_frame("Too many", code="rate_limited", retryAfter=2)))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "ack", "clientMsgId": "m", "seq": 1, "streamId": STREAM, "surprise": 1},
        {"type": "ack", "clientMsgId": "m", "streamId": STREAM},
        {"type": "chat_message", "id": 1, "seq": 1, "username": "u", "message": "m", "isAdmin": False},
        {"type": "batch", "streamId": STREAM, "events": [{"type": "pong"}]},
        {"type": "registered", "sessionId": "s", "status": "connected", "authenticated": False, "protocol": 3},
        {"type": "never_sent"},
    ],
)
def test_a_frame_the_models_do_not_describe_is_refused(frame: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        outbound.validate_outbound(frame)
