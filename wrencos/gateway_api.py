"""The REST calls the terminal commands make to a running gateway (`wrencos stream`,
`wrencos viewer --email`): log in, then call as that account. Every failure is a
`CommandError` of one line: nothing answering at the address (exit 2, with what to start),
or the gateway's own refusal (its status and message, exit 1)."""

from __future__ import annotations

from typing import Any

import httpx

from runtime.settings import Settings
from wrencos.command_errors import CANNOT_RUN, CommandError

TIMEOUT_S = 15.0


def default_gateway(settings: Settings) -> str:
    """`http://HOST:PORT` of the gateway `wrencos run` starts with these settings, as seen from this machine."""
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host if ':' not in host else f'[{host}]'}:{settings.port}"


def websocket_url(base: str) -> str:
    return base.replace("https://", "wss://", 1).replace("http://", "ws://", 1).rstrip("/") + "/ws"


class GatewayApi:
    def __init__(self, base: str) -> None:
        if not base.startswith(("http://", "https://")):
            raise CommandError(f"--gateway {base!r}: give the gateway's URL, http://HOST:PORT", CANNOT_RUN)
        self.base = base.rstrip("/")
        self.token: str | None = None

    def check(self) -> None:
        """That a gateway answers at the address (before a password is asked for nothing)."""
        self.call("GET", "/health")

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Log in as `email`; the account (its `id`, `name`, `role`)."""
        body = self.call("POST", "/auth/login", {"email": email, "password": password})
        self.token = str(body["token"])
        return dict(body["user"])

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            r = httpx.request(method, self.base + path, json=body, headers=headers, timeout=TIMEOUT_S)
        except httpx.HTTPError as e:
            raise CommandError(
                f"no gateway answers at {self.base} ({unreachable_reason(e)}): start one with `make run`, "
                "or give its URL with --gateway",
                CANNOT_RUN,
            ) from None
        if r.status_code >= 400:
            raise CommandError(f"{method} {path}: {r.status_code} {refusal(r)}")
        return r.json() if r.content else None


def unreachable_reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
    return text or type(e).__name__


def refusal(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("message") or body.get("detail") or body)[:300] if isinstance(body, dict) else str(body)[:300]
