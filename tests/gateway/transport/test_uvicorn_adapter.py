"""The adapter's inline path, driven by hand (no server, no socket): a message
is handled inline only while the app waits with nothing queued, and the
version check names what is missing. The same guarantees on a real uvicorn
server: `test_uvicorn_contract.py`."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn

from gateway.transport import uvicorn_adapter
from gateway.transport.uvicorn_adapter import FanoutWebSocketProtocol, RawSocket, UvicornContractError
from tests.gateway.transport.test_fanout_protocol import FakeTransport


class PausableTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        pass


def protocol(handled: list[str], take: bool = True) -> tuple[FanoutWebSocketProtocol, PausableTransport]:
    """The protocol as uvicorn leaves it after the handshake (only what messages touch)."""
    p = FanoutWebSocketProtocol.__new__(FanoutWebSocketProtocol)
    transport = PausableTransport()
    p.queue = asyncio.Queue()
    p.transport = transport  # type: ignore[assignment]  # a fake with only what messages touch
    p.frames, p.close_sent, p.read_paused = [], False, False
    p._raw = RawSocket(p)

    def inbound(text: str) -> bool:
        handled.append(text)
        return take

    p._raw.inbound = inbound
    return p, transport


def deliver(p: FanoutWebSocketProtocol, *fragments: bytes) -> None:
    """What uvicorn does for a text message: its frames in `frames`, then the hook."""
    p.curr_msg_data_type = "text"
    p.frames = list(fragments)
    p.send_receive_event_to_app()


async def test_a_message_is_handled_at_once_only_while_the_app_waits_with_nothing_queued() -> None:
    handled: list[str] = []
    p, transport = protocol(handled)
    deliver(p, b"early")  # the app is not reading yet: queued, in order
    assert handled == [] and p.queue.qsize() == 1
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    assert (await reader)["text"] == "early"  # type: ignore[typeddict-item]  # a receive event, not a disconnect
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)  # the app waits, nothing queued
    deliver(p, b"tap")
    assert handled == ["tap"] and p.queue.empty() and transport.paused == 1
    deliver(p, b"tap 2")
    assert handled == ["tap", "tap 2"]
    reader.cancel()


async def test_a_message_declined_goes_to_the_app_as_usual() -> None:
    handled: list[str] = []
    p, _ = protocol(handled, take=False)
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    deliver(p, b"register")
    assert handled == ["register"]
    assert (await reader)["text"] == "register"  # type: ignore[typeddict-item]  # a receive event


async def test_nothing_is_handled_at_once_behind_a_queued_message_or_after_close() -> None:
    handled: list[str] = []
    p, _ = protocol(handled)
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    p.queue.put_nowait({"type": "websocket.receive", "text": "first"})  # woken, not yet run
    deliver(p, b"second")
    assert handled == [] and p.queue.qsize() == 2
    assert (await reader)["text"] == "first"  # type: ignore[typeddict-item]  # a receive event
    p.close_sent = True
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    deliver(p, b"late")
    assert handled == []
    reader.cancel()


async def test_fragmented_and_invalid_messages_are_never_handled_inline() -> None:
    handled: list[str] = []
    p, _ = protocol(handled)
    reader = asyncio.create_task(p.receive())
    await asyncio.sleep(0)
    deliver(p, b"frag", b"ment")
    assert handled == [] and (await reader)["text"] == "fragment"  # type: ignore[typeddict-item]  # a receive event


def test_the_version_check_names_the_missing_hook_and_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(uvicorn_adapter._HOOKS, "send_receive_event_to_app", ("message",))
    with pytest.raises(UvicornContractError, match=rf"uvicorn {uvicorn.__version__} .*send_receive_event_to_app"):
        uvicorn_adapter._check_hooks()
    monkeypatch.setitem(uvicorn_adapter._HOOKS, "send_receive_event_to_app", ())
    monkeypatch.setitem(uvicorn_adapter._HOOKS, "deliver_message", ())
    with pytest.raises(UvicornContractError, match="no method deliver_message"):
        uvicorn_adapter._check_hooks()


def test_the_first_connection_checks_the_private_state() -> None:
    p, _ = protocol([])
    p.curr_msg_data_type = "text"
    uvicorn_adapter._check_state(p)
    p.frames = None  # type: ignore[assignment]  # what a uvicorn that renamed `frames` would leave
    with pytest.raises(UvicornContractError, match=rf"uvicorn {uvicorn.__version__} .*frames is NoneType"):
        uvicorn_adapter._check_state(p)
