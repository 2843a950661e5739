"""The first hour of a newcomer: the README's quick start works from a fresh clone exactly as
written, every bad configuration is one line, `wrencos run` interrupted at any moment leaves
nothing behind, and `/docs` needs nothing outside the gateway.

Each case is a real `python -m wrencos run` (embedded database, local Ray, a gateway) in a
session of its own. Every process it starts inherits a marker in its environment, so after it
exits the test scans /proc for anything still carrying that marker (Ray's agents included, which
would have been re-parented to PID 1)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from persistence.embedded import free_port
from tests.support.clients import Api, WsClient, login, register_customer
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, Process, base_env, wait_ready
from tests.wrencos.test_config_errors import BAD_VALUES

pytestmark = pytest.mark.system

EXIT_TIMEOUT_S = 90.0
SURVIVOR_GRACE_S = 15.0


def start_run(tmp_path: Path, **extra: str) -> tuple[Process, str, int]:
    marker = f"first-hour-{uuid.uuid4().hex}"
    port = free_port()
    env = base_env(
        WRENCOS_DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        HOST="127.0.0.1",
        FIRST_HOUR_MARKER=marker,
        **extra,
    )
    proc = Process([sys.executable, "-m", "wrencos", "run"], env, tmp_path / "run.log")
    return proc, marker, port


def carrying(marker: str) -> list[str]:
    """`pid cmdline` of every process whose environment holds `marker`."""
    needle = f"FIRST_HOUR_MARKER={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


def survivors(marker: str) -> list[str]:
    deadline = time.monotonic() + SURVIVOR_GRACE_S
    left = carrying(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = carrying(marker)
    return left


def kill_leftovers(marker: str) -> None:
    for line in carrying(marker):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(("after_s", "how"), [(0.5, "ctrl-c"), (2.0, "ctrl-c"), (4.0, "ctrl-c"), (4.0, "sigterm")])
def test_interrupted_start_up_leaves_nothing_behind(tmp_path: Path, after_s: float, how: str) -> None:
    proc, marker, _ = start_run(tmp_path)
    try:
        time.sleep(after_s)
        assert carrying(marker), "the run started no process at all"
        if how == "ctrl-c":
            os.killpg(proc.proc.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
        else:
            proc.proc.send_signal(signal.SIGTERM)  # what a service manager does: the main process
        try:
            proc.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.proc.send_signal(signal.SIGUSR1)  # `wrencos run` writes its threads' stacks to its output
            time.sleep(2)
            where = "\n".join(carrying(marker))
            raise AssertionError(
                f"still running {EXIT_TIMEOUT_S:g} s after {how}; its processes:\n{where}\nits output ends:\n"
                f"{proc.output()[-3000:]}"
            ) from None
        assert survivors(marker) == [], proc.output()[-3000:]
    finally:
        kill_leftovers(marker)
        proc.kill()


def test_docs_offline_console_logs_then_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    proc, marker, port = start_run(tmp_path, LOG_FORMAT="console")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        page = httpx.get(f"{base}/docs", timeout=10)
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) >= 2 and all(a.startswith("/docs/assets/") for a in assets), assets
        assert "://" not in page.text.replace(base, "")  # nothing from another host
        for asset in assets:
            r = httpx.get(base + asset, timeout=10)
            assert r.status_code == 200 and len(r.content) > 500, asset
        schema = httpx.get(f"{base}/openapi.json", timeout=10).json()
        assert schema["info"]["title"] == "WrenCOS Live"
        os.killpg(proc.proc.pid, signal.SIGINT)
        assert proc.proc.wait(EXIT_TIMEOUT_S) == 0, proc.output()[-3000:]
        assert survivors(marker) == [], proc.output()[-3000:]
        # LOG_FORMAT=console into a file: one format (the actors' lines too), and no colour codes.
        log = proc.output()
        assert "\x1b[" not in log
        assert "(StreamRegistry" in log  # an actor's line, forwarded by Ray
        assert not [line for line in log.splitlines() if '"event":' in line]
    finally:
        kill_leftovers(marker)
        proc.kill()


# ------------------------------------------------------------------ the newcomer, from a fresh clone

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = re.compile(r"<!-- quickstart:begin -->(.*?)<!-- quickstart:end -->", re.S)
NEWCOMER_PASSWORD = "newcomer-pass-1"
STEP_TIMEOUT_S = 120.0


def quickstart_steps(readme: str) -> list[list[str]]:
    """The commands of each numbered step of the README's quick start, as written."""
    block = QUICKSTART.search(readme)
    assert block is not None, "README.md has no quick start between its markers"
    steps: list[list[str]] = []
    for item in re.split(r"^\d+\. ", block.group(1), flags=re.M)[1:]:
        code = re.findall(r"```sh\n(.*?)```", item, re.S)
        steps.append([line.strip() for c in code for line in c.splitlines() if line.strip()])
    return steps


def fresh_clone(tmp_path: Path, clone_step: list[str]) -> Path:
    """Step 1 as written, from this repository (its committed tree), then a `.venv` that reuses
    this test's interpreter and installed packages instead of installing them again: its
    `wrencos` runs `python -m wrencos` with the clone's own code first on the path, and the
    Makefile's install stamp is newer than pyproject.toml, so `make run` installs nothing."""
    [command] = clone_step
    assert command.startswith("git clone <repository-url> "), command
    subprocess.run(
        ["bash", "-c", command.replace("<repository-url>", str(REPO), 1)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=STEP_TIMEOUT_S,
    )
    clone = tmp_path / command.split()[3]
    assert (clone / "Makefile").exists() and (clone / "wrencos" / "cli.py").exists()
    bin_dir = clone / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    shim = bin_dir / "wrencos"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{clone}" exec "{sys.executable}" -m wrencos "$@"\n')
    shim.chmod(0o755)
    (clone / ".venv" / ".installed").touch()
    return clone


def newcomer_env(tmp_path: Path, port: int, marker: str, **extra: str) -> dict[str, str]:
    env = base_env(
        WRENCOS_DATA_DIR=str(tmp_path / "data"), PORT=str(port), HOST="127.0.0.1", FIRST_HOUR_MARKER=marker, **extra
    )
    for name in ("ADMIN_EMAIL", "ADMIN_PASSWORD"):  # a newcomer has neither: `make run` must say what to do
        env.pop(name, None)
    return env


def shell(clone: Path, script: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        cwd=clone,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        start_new_session=True,  # no terminal: passwords are read from standard input, as scripts do
    )


def test_a_newcomer_follows_the_quick_start_from_a_fresh_clone(tmp_path: Path) -> None:
    steps = quickstart_steps((REPO / "README.md").read_text())
    assert len(steps) == 5, steps
    clone = fresh_clone(tmp_path, steps[0])
    assert steps[1] == ["make run"]
    port = free_port()
    marker = f"first-hour-{uuid.uuid4().hex}"
    env = newcomer_env(tmp_path, port, marker)
    run = Process(["bash", "-c", f'cd "{clone}" && {steps[1][0]}'], env, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, run)
        # Step 2: with no admin yet, it says exactly how to make one (the command of step 3).
        [create] = steps[2]
        hint = run.output()
        assert "No admin account yet" in hint and create.replace("admin@example.com", "you@example.com") in hint
        assert "ADMIN_EMAIL and ADMIN_PASSWORD" in hint

        # A second `make run` on the same folder, meanwhile: one line, exit 2, the first one unharmed.
        second = shell(clone, steps[1][0], newcomer_env(tmp_path, free_port(), marker))
        assert second.returncode == 2, second.stderr
        [refused] = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert re.fullmatch(
            rf"error: WRENCOS_DATA_DIR={re.escape(str(tmp_path / 'data'))} is in use by another wrencos "
            r"\(pid \d+\): stop that one, or set WRENCOS_DATA_DIR \(or --data-dir\) to another directory",
            refused,
        ), second.stderr
        assert "Traceback" not in second.stderr and run.alive()

        # Step 3: the first admin; the password once from standard input (no terminal).
        made = shell(clone, create, env, stdin=NEWCOMER_PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "admin admin@example.com created: log in with this email and password"

        # Steps 4 and 5 in one shell, as a person types them (STREAM carries over); only the port differs.
        script = "\n".join(steps[3] + [line.replace(":3000", f":{port}") for line in steps[4]])
        assert script.count(":3000") == 0 and "$STREAM" in script
        done = shell(clone, script + '\necho "STREAM=$STREAM"', env, stdin=NEWCOMER_PASSWORD + "\n")
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        stream = re.findall(r"^STREAM=([0-9a-f]{24})$", done.stdout, re.M)
        assert len(stream) == 1, done.stdout[-2000:]
        assert f"stream {stream[0]} is live: {base}/livestreams/{stream[0]}" in done.stderr
        viewer_lines = done.stdout.splitlines()
        assert f"stream_started {stream[0]} 'My first live sale'" in viewer_lines
        assert "chat_message Guest: hello" in viewer_lines
        reports = list((clone / "loadtest-results").glob("*.html"))
        assert len(reports) == 1, done.stdout[-2000:]
        live = httpx.get(f"{base}/livestreams/{stream[0]}", timeout=10).json()
        assert live["status"] == "live" and live["title"] == "My first live sale"

        # Logged in, the viewer chats under the account's name; then the stream is stopped as the README says.
        watch = f".venv/bin/wrencos viewer {stream[0]} --email admin@example.com --say 'from the shop' --seconds 2"
        logged = shell(clone, watch, env, stdin=NEWCOMER_PASSWORD + "\n")
        assert logged.returncode == 0, logged.stderr
        assert "chat_message Admin: from the shop" in logged.stdout.splitlines(), logged.stdout
        stop = f".venv/bin/wrencos stream stop {stream[0]} --email admin@example.com"
        logged = shell(clone, stop, env, stdin=NEWCOMER_PASSWORD + "\n")
        assert logged.stderr.strip().endswith(f"stream {stream[0]} stopped")

        os.killpg(run.proc.pid, signal.SIGINT)  # Ctrl-C in the first terminal (make reports it as interrupted)
        run.proc.wait(EXIT_TIMEOUT_S)
        assert '"event": "streams_stored"' in run.output() and "Traceback" not in run.output(), run.output()[-3000:]
        assert survivors(marker) == [], run.output()[-3000:]
    finally:
        kill_leftovers(marker)
        run.kill()


def test_each_bad_configuration_stops_make_run_in_a_fresh_clone_with_one_line(tmp_path: Path) -> None:
    """#19 item 3's cases, as a newcomer meets them: `make run` in the clone (make adds its own
    `Error 2` line, which repeats the exit code of the command it ran)."""
    steps = quickstart_steps((REPO / "README.md").read_text())
    clone = fresh_clone(tmp_path, steps[0])
    marker = f"first-hour-{uuid.uuid4().hex}"
    with socket.socket() as taken, socket.socket() as closed:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        closed.bind(("127.0.0.1", 0))
        nothing = closed.getsockname()[1]
        cases: list[tuple[dict[str, str], str]] = [
            (env, expected) for env, expected in BAD_VALUES if set(env) <= {"PORT", "JWT_TTL_SECONDS", "LOG_FORMAT"}
        ]
        cases += [
            (
                {"PORT": str(busy)},
                f"error: PORT={busy} is already in use on 127.0.0.1: stop what listens there, or set PORT (or --port)",
            ),
            (
                {
                    "MONGODB_URI": f"mongodb://127.0.0.1:{nothing}/shop",
                    "JWT_SECRET": "first-hour-secret-" + "x" * 40,
                    "MONGODB_WAIT_SECONDS": "2",
                },
                f"error: MONGODB_URI: no MongoDB answered at 127.0.0.1:{nothing} within 2 s; "
                "is it running and reachable?",
            ),
        ]
        assert len(cases) == 7  # PORT 99999, 0 and abc, JWT_TTL_SECONDS, LOG_FORMAT, a port in use, no MongoDB
        for extra, expected in cases:
            env = newcomer_env(tmp_path, 0, marker)
            env.pop("PORT")
            result = shell(clone, steps[1][0], {"PORT": str(free_port()), **env, **extra})
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert result.returncode == 2 and errors == [expected], (extra, result.stderr)
            assert "Traceback" not in result.stderr and "Error 2" in result.stderr.splitlines()[-1], result.stderr
    assert carrying(marker) == []


# ------------------------------------------------------------------ chat identity and routing, live


async def answers_to(client: WsClient, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """The frames `client` gets in answer to `frame`: up to the pong of a ping sent after it
    (frames of one connection are answered in order). The stream's events that arrive meanwhile
    (they carry a `seq`: the echo of an earlier chat, on a loaded machine) are not answers."""
    start = len(client.frames)
    await client.send(frame)
    await client.send({"type": "ping"})
    await client.wait_for(lambda f: f.get("type") == "pong", start=start, timeout=15)
    got = client.frames[start:]
    return [f for f in got[: next(i for i, f in enumerate(got) if f.get("type") == "pong")] if "seq" not in f]


def chats(client: WsClient, message: str) -> list[dict[str, Any]]:
    return [f for f in client.frames if f.get("type") == "chat_message" and f.get("message") == message]


async def test_chat_identity_and_routing_on_a_live_gateway(gateway_url: str, ws_url: str) -> None:
    token, ann = await register_customer(gateway_url, f"ann-{uuid.uuid4().hex[:8]}@example.com", name="Ann Lee")
    admin_token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, admin_token) as admin:
        for s in (await admin.get("/livestreams/active")).json():
            await admin.post(f"/livestreams/{s['id']}/stop")
        ids = []
        for title in ("Identity A", "Identity B"):
            r = await admin.post("/livestreams", json={"title": title})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            assert (await admin.post(f"/livestreams/{ids[-1]}/start")).status_code == 200
        a, b = ids
        async with WsClient(ws_url) as logged, WsClient(ws_url) as guest, WsClient(ws_url) as watcher:
            for client, frame in (
                (logged, {"type": "register", "sessionId": "id-ann", "token": token, "streamId": b}),
                (guest, {"type": "register", "sessionId": "id-guest", "streamId": a}),
                (watcher, {"type": "register", "sessionId": "id-watcher", "streamId": b}),
            ):
                await client.send(frame)
                await client.wait_for(lambda f: f.get("type") == "chat_history", timeout=15)
            assert logged.of_type("registered")[0]["authenticated"] is True

            # An account chats under its own name, whatever the frame says.
            assert await answers_to(logged, {"type": "chat_message", "message": "from ann", "username": "Admin"}) == []
            said = await watcher.wait_type("chat_message", message="from ann")
            assert said["username"] == "Ann Lee" and said["isAdmin"] is False

            # A re-register with a bad token changes nothing: no `registered`, one error with a code.
            answer = await answers_to(logged, {"type": "register", "sessionId": "id-ann-2", "token": "not.a.jwt"})
            assert [(f["type"], f.get("code")) for f in answer] == [("error", "invalid_token")], answer
            assert "nothing changed: still registered as Ann Lee" in answer[0]["message"]
            await answers_to(logged, {"type": "chat_message", "message": "still ann"})
            assert (await watcher.wait_type("chat_message", message="still ann"))["username"] == "Ann Lee"
            # A misspelt key is named, and the frame is not applied.
            answer = await answers_to(logged, {"type": "register", "sessionId": "id-ann-3", "authToken": token})
            assert answer == [
                {
                    "type": "error",
                    "message": "register has no field authToken (did you mean token?)",
                    "code": "unknown_fields",
                    "fields": ["authToken"],
                }
            ]

            # A guest cannot pass for staff.
            answer = await answers_to(
                guest, {"type": "chat_message", "message": "official", "username": "S u p p 0 r t", "clientMsgId": "g1"}
            )
            assert [(f["type"], f.get("code"), f.get("clientMsgId")) for f in answer] == [
                ("error", "name_reserved", "g1")
            ]

            # The guest's stream ends while B stays live: its frames without streamId are refused, never sent to B.
            assert (await admin.post(f"/livestreams/{a}/stop")).status_code == 200
            await guest.wait_type("stream_stopped", streamId=a, timeout=15)
            for frame in ({"type": "chat_message", "message": "lost?"}, {"type": "toggle_like"}):
                answer = await answers_to(guest, frame)
                assert [(f["type"], f.get("code"), f.get("streamId")) for f in answer] == [
                    ("error", "stream_ended", a)
                ], answer
            await answers_to(logged, {"type": "chat_message", "message": "after the end"})
            await watcher.wait_type("chat_message", message="after the end")
            assert chats(watcher, "lost?") == [] and chats(logged, "lost?") == []
        await admin.post(f"/livestreams/{b}/stop")
    assert ann["name"] == "Ann Lee"
