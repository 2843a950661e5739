"""The JS client (`clients/js`) against real gateways: its Node tests
(`node --test`, the built-in runner) run with the URLs of three real gateways on
one Ray and one database, and a small HTTP hook through which they ask this
side for the faults (SIGSTOP/SIGKILL of gateway A, SIGTERM of gateway C so that
it drains, SIGKILL of the stream's actor). Every frame the clients received is then checked against the outbound
models. Also: the served AsyncAPI document, and the browser example in headless
Chromium (driven over the DevTools protocol) seeing chat arrive."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from actors.registry_client import RegistryClient
from gateway.realtime.asyncapi import document
from gateway.realtime.outbound import validate_outbound
from persistence.embedded import free_port
from tests.clients.node import JS_DIR, built, node
from tests.support.clients import HTTP_TIMEOUT_S, WsClient
from tests.support.databases import found
from tests.support.processes import Process

pytestmark = pytest.mark.system

NODE_TIMEOUT_S = 200.0  # under pytest's own 300 s, so that node's report is shown
EXPECTED_NODE_TESTS = 11  # test/unit.test.mjs: 6, test/system.test.mjs: 5


def ws(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


class FaultHook:
    """What the Node tests may ask for, over HTTP on 127.0.0.1: `POST /stop-gateway/0`
    (SIGSTOP gateway A), `POST /kill-gateway/0` (SIGKILL it), `POST /drain-gateway/2`
    (SIGTERM gateway C: it drains), `POST /kill-actor` (SIGKILL the stream's actor;
    answers `{"killed": pid}`), `GET /actor-pid` (`{"pid": pid}`)."""

    def __init__(self, gateway: Process, draining: Process, stream_id: str) -> None:
        self.gateway = gateway
        self.draining = draining
        self.stream_id = stream_id
        self.asked: list[str] = []

    async def actor_pid(self) -> int:
        client = found(await found(RegistryClient.find()).stream_client(self.stream_id))
        return int((await client.info())["pid"])

    async def act(self, method: str, path: str) -> dict[str, Any]:
        self.asked.append(f"{method} {path}")
        if (method, path) == ("POST", "/stop-gateway/0"):
            os.killpg(self.gateway.proc.pid, signal.SIGSTOP)
            return {"stopped": self.gateway.proc.pid}
        if (method, path) == ("POST", "/kill-gateway/0"):
            self.gateway.kill()
            return {"killed": self.gateway.proc.pid}
        if (method, path) == ("POST", "/drain-gateway/2"):
            self.draining.proc.send_signal(signal.SIGTERM)
            return {"draining": self.draining.proc.pid}
        if (method, path) == ("POST", "/kill-actor"):
            pid = await self.actor_pid()
            os.kill(pid, signal.SIGKILL)
            return {"killed": pid}
        if (method, path) == ("GET", "/actor-pid"):
            return {"pid": await self.actor_pid()}
        raise LookupError(path)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path = head.decode().split(" ")[:2]
            try:
                body, status = json.dumps(await asyncio.wait_for(self.act(method, path), 60)), "200 OK"
            except LookupError:
                body, status = "{}", "404 Not Found"
            data = body.encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        finally:
            writer.close()


def tap_counts(output: str) -> dict[str, int]:
    """The summary lines of node's TAP report (`# pass 9`...)."""
    return {k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", output, re.M)}


async def test_the_gateway_serves_its_asyncapi_document(gateways: list[tuple[Process, str]]) -> None:
    url = gateways[1][1]
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
        answer = await http.get(f"{url}/asyncapi.json")
    assert answer.status_code == 200
    served = answer.json()
    assert served["servers"]["gateway"]["host"] == url.removeprefix("http://")
    expected = document()
    assert {k: v for k, v in served.items() if k != "servers"} == {k: v for k, v in expected.items() if k != "servers"}


class DevTools:
    """A page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        await self.socket.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            answer = json.loads(await asyncio.wait_for(self.socket.recv(), 30))
            if answer.get("id") == self.ids:
                return dict(answer.get("result", {}))

    async def text(self, element_id: str) -> str:
        expression = f"(document.getElementById({element_id!r}) || {{}}).innerText || ''"
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return str(result.get("result", {}).get("value", ""))


async def test_the_browser_example_shows_chat_in_headless_chromium(
    gateways: list[tuple[Process, str]], live_stream: tuple[str, str], tmp_path: Path
) -> None:
    """The example page, served by a static file server, watches the stream through the
    library in headless Chromium: it shows the chat history, then chat sent while it watches."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("this test needs Debian's `chromium` (.ci/run installs it)")
    js = built()
    sid, _ = live_stream
    url = gateways[1][1]
    stamp = time.monotonic_ns()
    earlier, text = f"before-the-page-{stamp}", f"while-the-page-watches-{stamp}"
    devtools_port = free_port()
    server = subprocess.Popen(
        [node(), "examples/serve.mjs", "0"], cwd=js, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    browser = Process(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={devtools_port}",
            "about:blank",
        ],
        dict(os.environ),
        tmp_path / "chromium.log",
    )
    try:
        assert server.stdout is not None
        page_base = server.stdout.readline().strip()  # the server prints its URL once listening
        assert page_base.startswith("http://127.0.0.1:"), page_base
        async with WsClient(ws(url)) as sender, httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
            await sender.send({"type": "register", "sessionId": "py-sender", "streamId": sid, "protocol": 2})
            await sender.wait_type("chat_history")
            await sender.send({"type": "chat_message", "message": earlier, "username": "py", "clientMsgId": "b0"})
            await sender.wait_type("ack", clientMsgId="b0")
            targets: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while not targets:
                assert time.monotonic() < deadline and browser.alive(), browser.output()[-3000:]
                try:
                    listed = (await http.get(f"http://127.0.0.1:{devtools_port}/json/list", timeout=2)).json()
                    targets = [t for t in listed if t.get("type") == "page"]
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            async with websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=2**24) as cdp:
                page = DevTools(cdp)
                await page.call("Page.navigate", url=f"{page_base}/examples/watch.html?ws={ws(url)}&stream={sid}")
                deadline = time.monotonic() + 30
                while earlier not in await page.text("chat"):
                    assert time.monotonic() < deadline, f"no chat history shown: {await page.text('problem')}"
                    await asyncio.sleep(0.2)
                assert await page.text("status") == "open"
                await sender.send({"type": "chat_message", "message": text, "username": "py", "clientMsgId": "b1"})
                await sender.wait_type("ack", clientMsgId="b1")
                deadline = time.monotonic() + 30
                while text not in await page.text("chat"):
                    assert time.monotonic() < deadline, "chat sent while the page watched never showed"
                    await asyncio.sleep(0.2)
                assert (await page.text("chat")).count(text) == 1
    finally:
        browser.kill()
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


async def test_the_js_client_against_real_gateways(
    gateways: list[tuple[Process, str]], live_stream: tuple[str, str], tmp_path: Path
) -> None:
    js = built()
    sid, token = live_stream
    (a, url_a), (_, url_b), (c, url_c) = gateways
    hook = FaultHook(a, c, sid)
    server = await asyncio.start_server(hook.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    frames_out = tmp_path / "frames.jsonl"
    env = {
        **os.environ,
        "WRENCOS_WS": f"{ws(url_a)},{ws(url_b)},{ws(url_c)}",
        "WRENCOS_HTTP": f"{url_a},{url_b},{url_c}",
        "WRENCOS_STREAM": sid,
        "WRENCOS_ADMIN_TOKEN": token,
        "WRENCOS_HOOK": f"http://127.0.0.1:{port}",
        "WRENCOS_FRAMES_OUT": str(frames_out),
    }
    started = time.monotonic()
    async with server:
        proc = await asyncio.create_subprocess_exec(
            node(),
            "--test",
            "--test-concurrency=1",
            "--test-reporter=tap",
            "test/unit.test.mjs",
            "test/system.test.mjs",
            cwd=js,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), NODE_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            raise
    report = out.decode(errors="replace")
    counts = tap_counts(report)
    print(f"node --test: {counts} in {time.monotonic() - started:.1f} s; hook asked: {hook.asked}")
    assert proc.returncode == 0, report[-6000:]
    assert counts == {
        "tests": EXPECTED_NODE_TESTS,
        "pass": EXPECTED_NODE_TESTS,
        "fail": 0,
        "cancelled": 0,
        "skipped": 0,
        "todo": 0,
    }, report[-6000:]
    assert hook.asked[:2] == ["POST /stop-gateway/0", "POST /kill-gateway/0"]
    assert "POST /kill-actor" in hook.asked and "POST /drain-gateway/2" in hook.asked
    assert not a.alive(), "gateway A was SIGKILLed"
    assert c.proc.wait(30) == 0, "gateway C drained and stopped"

    frames = [json.loads(line) for line in frames_out.read_text().splitlines() if line]
    for frame in frames:
        validate_outbound(frame)
    kinds = Counter(f["type"] for f in frames)
    for kind in ("registered", "stream_started", "chat_history", "batch", "ack", "resumed", "error", "pong"):
        assert kinds[kind] > 0, f"no {kind} among the {len(frames)} frames: {kinds}"


def test_the_package_lock_is_committed_and_builds_are_not() -> None:
    root = JS_DIR.parents[1]
    tracked = subprocess.run(["git", "ls-files", "clients/js"], cwd=root, capture_output=True, text=True, check=True)
    files = tracked.stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    assert "clients/js/package-lock.json" in files
    assert not [f for f in files if f.startswith(("clients/js/node_modules/", "clients/js/dist/"))]
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    package = json.loads((JS_DIR / "package.json").read_text())
    assert lock["version"] == package["version"]
