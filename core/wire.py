"""The one place where stream events become the text clients receive.

Each event is encoded once, in the actor; every gateway and every socket gets
the same text. The envelope (`type`, `streamId`, `seq`, `epoch`) is added here.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.events import Event


def encode_event(stream_id: str, epoch: str, event: Event) -> str:
    return orjson.dumps(
        {"type": event.type, **event.body, "streamId": stream_id, "seq": event.seq, "epoch": epoch}
    ).decode()


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def decode(text: str | bytes) -> Any:
    return orjson.loads(text)
