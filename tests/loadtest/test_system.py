"""The load tester against a real gateway (Ray, the embedded database, a
gateway process): its report must agree with what was really sent and received.

An independent observer connection (the tests' own client) watches each
stream and counts this run's chat messages; the report's figures are checked
against it and against the arithmetic of a run where every viewer watches
before the first message: deliveries = messages × viewers per stream.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadtest import messages
from tests.support.clients import Api, WsClient, login
from tests.support.processes import ADMIN_EMAIL, ADMIN_PASSWORD, base_env

pytestmark = pytest.mark.system

VIEWERS = 20


def run_loadtest(gateway_url: str, out: Path, *args: str, timeout: float = 90) -> tuple[int, dict[str, Any], str]:
    json_path = out / "report.json"
    cmd = [
        sys.executable,
        "-m",
        "wrencos",
        "loadtest",
        "run",
        "-g",
        gateway_url,
        "--no-live",
        "--json",
        str(json_path),
        "--html",
        str(out / "report.html"),
        *args,
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        env=base_env(ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    report = json.loads(json_path.read_text()) if json_path.exists() else {}
    return proc.returncode, report, proc.stdout + proc.stderr


async def stop_all_live(gateway_url: str) -> None:
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with Api(gateway_url, token) as admin:
        for s in (await admin.get("/livestreams/active")).json():
            await admin.post(f"/livestreams/{s['id']}/stop")


def run_marks(client: WsClient, run_id: str) -> list[messages.Mark]:
    out = []
    for f in client.frames:
        events = f["events"] if f.get("type") == "batch" else [f]
        for ev in events:
            if ev.get("type") == "chat_message":
                mark = messages.parse_chat(ev.get("message"))
                if mark is not None and mark.run_id == run_id:
                    out.append(mark)
    return out


async def observed_run(
    gateway_url: str, ws_url: str, tmp_path: Path, *args: str
) -> tuple[int, dict[str, Any], str, dict[str, list[messages.Mark]]]:
    """Run the tester with an admin observer that sees every stream's events."""
    await stop_all_live(gateway_url)
    token = await login(gateway_url, ADMIN_EMAIL, ADMIN_PASSWORD)
    async with WsClient(ws_url) as observer:
        await observer.send({"type": "register_admin", "userId": "observer", "token": token})
        await observer.wait_type("admin_registered")
        import asyncio

        code, report, output = await asyncio.to_thread(run_loadtest, gateway_url, tmp_path, *args)
        await observer.settle(0.5)
    run_id = report.get("config", {}).get("runId", "")
    by_stream: dict[str, list[messages.Mark]] = {}
    for f in observer.frames:
        events = f["events"] if f.get("type") == "batch" else [f]
        for ev in events:
            if ev.get("type") == "chat_message":
                mark = messages.parse_chat(ev.get("message"))
                if mark is not None and mark.run_id == run_id:
                    by_stream.setdefault(ev["streamId"], []).append(mark)
    return code, report, output, by_stream


def check_agrees(report: dict[str, Any], seen: dict[str, list[messages.Mark]], output: str) -> None:
    s = report["summary"]
    chat, conns = s["chat"], s["connections"]
    # every viewer got to watching, once, without errors
    assert conns["attempts"] == conns["succeeded"] == 2 * VIEWERS, output
    assert conns["failed"] == 0 and conns["reconnects"] == 0 and s["errorCount"] == 0, s["errors"]
    # what the tester says it sent is what the server broadcast (seen by the observer)
    sent_seen = sum(len(v) for v in seen.values())
    assert chat["sent"] == sent_seen > 0, (chat["sent"], sent_seen)
    assert set(seen) == set(report["streamIds"])
    # every viewer watched before the first message: every message reached every viewer of its stream
    assert chat["expectedReceipts"] == chat["sent"] * VIEWERS
    assert chat["deliveries"] == chat["receivedExpected"] == chat["sent"] * VIEWERS
    assert chat["lost"] == 0 and chat["lossRatio"] == 0
    assert chat["reordered"] == chat["duplicates"] == chat["seqGapEvents"] == 0
    assert chat["latencyMs"]["count"] == chat["deliveries"]
    assert 0 < chat["latencyMs"]["p50"] <= chat["latencyMs"]["p99"] <= chat["latencyMs"]["max"] < 5000
    # per-second series add up to the totals
    series = report["series"]
    assert sum(series["sent"]) == chat["sent"] and sum(series["deliveries"]) == chat["deliveries"]
    assert max(series["connected"]) == 2 * VIEWERS
    assert sum(series["expected"]) == chat["expectedReceipts"] and sum(series["lost"]) == 0


async def test_report_agrees_with_what_was_sent_and_received_v1(gateway_url: str, ws_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    code, report, output, seen = await observed_run(
        gateway_url,
        ws_url,
        tmp_path,
        "--streams",
        "2",
        "--viewers",
        str(VIEWERS),
        "--workers",
        "2",
        "--ramp",
        "400",
        "--chat-start",
        "2",
        "--duration",
        "8",
        "--drain",
        "2",
        "--chat-rate",
        "5",
        "--like-rate",
        "4",
        "--pin-every",
        "3",
        "--flash-sale-at",
        "5",
        "--protocol",
        "v1",
        "--max-p99-ms",
        "5000",
        "--max-loss",
        "0",
        "--min-connect-rate",
        "1",
    )
    assert code == 0, output
    check_agrees(report, seen, output)
    # each observed sender's messages arrived in its own order
    for marks in seen.values():
        for w in {m.worker for m in marks}:
            ns = [m.n for m in marks if m.worker == w]
            assert ns == sorted(ns)
    s = report["summary"]
    # likes: the final count is what the toggles add up to
    for sid, likes in s["likes"]["streams"].items():
        assert likes["observedLikes"] == likes["expectedLikes"], (sid, likes)
    assert s["likes"]["sent"] > 0 and s["likes"]["streamUpdates"] > 0
    # pins: every pin reached every viewer of its stream
    assert s["pins"]["sent"] == 4 and s["pins"]["received"] == 4 * VIEWERS
    # the flash sale went through on both streams (product created, pinned, put on sale)
    sales = [a for a in report["adminActions"] if a["name"] == "flash-sale"]
    assert len(sales) == 2 and all(a["ok"] for a in sales), sales
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == 3
    assert report["passed"] is True
    assert time.monotonic() - started < 60


async def test_missed_threshold_exits_1(gateway_url: str, tmp_path: Path) -> None:
    await stop_all_live(gateway_url)
    code, report, output = run_loadtest(
        gateway_url,
        tmp_path,
        "--streams",
        "1",
        "--viewers",
        "5",
        "--workers",
        "1",
        "--duration",
        "3",
        "--drain",
        "1",
        "--chat-rate",
        "5",
        "--max-p99-ms",
        "0.001",
        "--min-deliveries-per-s",
        "1e9",
    )
    assert code == 1, output
    assert report["passed"] is False
    assert [v["ok"] for v in report["thresholds"]] == [False, False]
    assert "FAIL" in output
    assert (tmp_path / "report.html").exists()


async def test_report_agrees_v2(gateway_url: str, ws_url: str, tmp_path: Path) -> None:
    """The opted-in protocol: batch frames, acks for every message, nothing lost.
    Fails while the server does not speak v2 yet."""
    code, report, output, seen = await observed_run(
        gateway_url,
        ws_url,
        tmp_path,
        "--streams",
        "2",
        "--viewers",
        str(VIEWERS),
        "--workers",
        "2",
        "--ramp",
        "400",
        "--chat-start",
        "2",
        "--duration",
        "6",
        "--drain",
        "2",
        "--chat-rate",
        "5",
        "--protocol",
        "v2",
    )
    assert code == 0, output
    assert not any("does not speak v2" in n for n in report["notes"]), report["notes"]
    check_agrees(report, seen, output)
    assert report["summary"]["acks"]["acked"] == report["summary"]["chat"]["sent"]
    assert report["summary"]["acks"]["rejected"] == 0


def test_locustfile_runs_the_same_scenario(gateway_url: str, tmp_path: Path) -> None:
    """Locust, headless, with the shipped locustfile: viewers connect, chat fans out, pins arrive."""
    csv = tmp_path / "locust"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(Path(__file__).parents[2] / "loadtest" / "locustfile.py"),
        "-H",
        gateway_url,
        "--headless",
        "-u",
        "7",
        "-r",
        "7",
        "-t",
        "10s",  # pins every 2 s: one fans out before the end even on a loaded machine
        "--wrencos-streams",
        "1",
        "--wrencos-chat-every",
        "1",
        "--wrencos-pin-every",
        "2",
        "--csv",
        str(csv),
        "--only-summary",
    ]
    proc = subprocess.run(
        cmd,
        check=False,
        env=base_env(ADMIN_EMAIL=ADMIN_EMAIL, ADMIN_PASSWORD=ADMIN_PASSWORD),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import csv as csv_mod

    rows = {r["Name"]: r for r in csv_mod.DictReader((tmp_path / "locust_stats.csv").open())}
    assert int(rows["connect"]["Request Count"]) == 6 and int(rows["connect"]["Failure Count"]) == 0
    assert int(rows["chat fan-out"]["Request Count"]) > 0 and int(rows["chat fan-out"]["Failure Count"]) == 0
    assert int(rows["pin fan-out"]["Request Count"]) > 0
