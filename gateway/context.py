"""Everything one gateway process shares between its requests and sockets."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import TokenService
from gateway.hub import Hub
from gateway.live_directory import LiveDirectory
from persistence.chat import ChatStore
from persistence.streams import StreamStore
from persistence.users import UserStore
from wrencos.settings import Settings


@dataclass
class GatewayContext:
    settings: Settings
    gateway_id: str
    tokens: TokenService
    users: UserStore
    streams: StreamStore
    chat: ChatStore
    hub: Hub
    directory: LiveDirectory
