"""`wrencos stream start|stop`: an admin starts and stops a stream from a terminal, over
the running gateway's REST API (log in, create, start; or stop), as the admin app does."""

from __future__ import annotations

from typing import Any

from wrencos.command_errors import CommandError
from wrencos.gateway_api import GatewayApi


def log_in_as_admin(api: GatewayApi, email: str, password: str) -> dict[str, Any]:
    try:
        user = api.login(email, password)
    except CommandError as e:
        if " 401 " in str(e):
            raise CommandError(f"wrong email or password for {email}") from None
        raise
    if user.get("role") != "admin":
        raise CommandError(
            f"{email} is not an admin (role {user.get('role')}): make it one with "
            f"`.venv/bin/wrencos admin create --email {email}`"
        )
    return user


def start_stream(api: GatewayApi, title: str, description: str) -> str:
    """Create a stream and start it; its id."""
    created = api.call("POST", "/livestreams", {"title": title, "description": description})
    stream_id = str(created["id"])
    api.call("POST", f"/livestreams/{stream_id}/start")
    return stream_id


def stop_stream(api: GatewayApi, stream_id: str) -> None:
    api.call("POST", f"/livestreams/{stream_id}/stop")
