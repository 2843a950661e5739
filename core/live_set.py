"""What the registry tells gateways: the live set, and its answers to start and stop.

Plain values that cross Ray between the registry actor and every gateway (the wire contract of
the registry): a gateway reads them without importing the actor. They carry the handle of the
actor serving each live stream, so gateways never look a stream's actor up by name. A handle is
opaque here (a Ray actor handle: this layer imports no Ray); `actors.stream_client` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RegistryAnswer:
    """`ok`, or an error with a `code` the gateway maps to an HTTP status."""

    ok: bool
    data: dict[str, Any] | None = None
    code: str | None = None  # "not_found" | "conflict" | "unavailable"
    message: str | None = None
    actor: Any = None  # a started stream: the handle of the actor serving it


@dataclass
class LiveSet:
    incarnation: str
    version: int
    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # stream id -> announcement
    actors: dict[str, Any] = field(default_factory=dict)  # stream id -> the handle of the actor serving it


def stream_meta(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "streamId": record["_id"],
        "title": record.get("title", ""),
        "description": record.get("description", ""),
        "startTime": record.get("startTime") or "",
        "streamUrl": record.get("streamUrl", ""),
        "quality": record.get("quality", "auto"),
    }
