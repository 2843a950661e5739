"""Thresholds, the JSON and HTML reports, the command line's parsing."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest import cli
from loadtest.config import Gateway, Thresholds
from loadtest.html import write_html
from loadtest.report import build_report, check_thresholds, read_json, write_json
from loadtest.stats import Aggregate, SecondRecorder

S = 1_000_000_000
T0 = 1_700_000_000 * S


def sample_raw() -> dict:
    agg = Aggregate(T0)
    rec = SecondRecorder(T0)
    for sec in range(3):
        send = T0 + sec * S + 1000
        rec.sent(send, "s1")
        rec.count(send, "chat_sent")
        rec.count(send, "connect_attempts")
        rec.count(send, "connect_ok")
        rec.record(send, "connect", 5000)
        for v in range(10):
            recv = send + (v + 1) * 1_000_000
            rec.count(recv, "deliveries")
            rec.record(recv, "latency", (recv - send) // 1000)
            rec.received_expected(recv, send)
    rec.error(T0, "server: boom")
    for t in rec.flush(None, {"connected": 10}):
        agg.add_tick(0, t)
    agg.add_final({"windows": {"s1": [(T0, T0 + 10 * S)] * 10}, "streams": {}})
    return agg.raw()


def test_thresholds_pass_and_fail() -> None:
    report = build_report(
        config={"name": "t"},
        raw=sample_raw(),
        duration=3,
        stream_ids=["s1"],
        thresholds=Thresholds(max_p99_ms=1000, max_loss=0.0, min_connect_rate=1.0),
        actions=[],
        notes=[],
    )
    assert report["passed"], report["thresholds"]
    summary = report["summary"]
    assert summary["chat"]["expectedReceipts"] == 30 and summary["chat"]["lost"] == 0
    failed = check_thresholds(Thresholds(max_p99_ms=1.0, max_errors=0, min_deliveries_per_s=1e6), summary)
    assert [v["ok"] for v in failed] == [False, False, False]
    assert {v["threshold"] for v in failed} == {"--max-p99-ms", "--max-errors", "--min-deliveries-per-s"}


def test_threshold_on_unmeasured_figure_fails() -> None:
    empty = Aggregate(T0).raw()
    verdicts = check_thresholds(
        Thresholds(max_p99_ms=1e9),
        build_report(config={}, raw=empty, duration=1, stream_ids=[], thresholds=Thresholds(), actions=[], notes=[])[
            "summary"
        ],
    )
    assert verdicts[0]["actual"] is None and not verdicts[0]["ok"]


def test_json_and_html_reports(tmp_path: Path) -> None:
    report = build_report(
        config={"name": "t", "runId": "abc"},
        raw=sample_raw(),
        duration=3,
        stream_ids=["s1"],
        thresholds=Thresholds(max_p99_ms=1.0),
        actions=[],
        notes=["a note"],
    )
    back = read_json(write_json(report, tmp_path / "r.json"))
    assert back["summary"] == report["summary"]
    html = write_html(report, tmp_path / "r.html").read_text()
    assert html.count("data:image/svg+xml;base64,") == 3
    assert "FAIL" in html and "a note" in html


def test_gateway_urls() -> None:
    assert Gateway.parse("http://127.0.0.1:3000") == Gateway("http://127.0.0.1:3000", "ws://127.0.0.1:3000/")
    assert Gateway.parse("ws://h:1/ws") == Gateway("http://h:1", "ws://h:1/ws")
    assert Gateway.parse("https://h") == Gateway("https://h", "wss://h/")
    assert Gateway.parse("127.0.0.1:3000").ws == "ws://127.0.0.1:3000/"


def test_command_line_parses_into_a_config() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    args = parser.parse_args(
        [
            "loadtest",
            "run",
            "-g",
            "http://a:1",
            "-g",
            "ws://b:2/",
            "--streams",
            "3",
            "--viewers",
            "50",
            "--protocol",
            "v2",
            "--max-loss",
            "0.1%",
            "--max-p99-ms",
            "250",
            "--action",
            "pin@5",
            "--stop-at",
            "20",
        ]
    )
    config = cli.config_from_args(args)
    assert [g.ws for g in config.gateways] == ["ws://a:1/", "ws://b:2/"]
    assert config.total_viewers == 150 and config.protocol == 2
    assert abs(config.thresholds.max_loss - 0.001) < 1e-12 and config.thresholds.max_p99_ms == 250
    assert config.actions == [("pin", 5.0)] and config.stop_at == 20


def test_plans_spread_viewers_and_rates() -> None:
    from loadtest.config import LoadConfig
    from loadtest.runner import build_plans

    config = LoadConfig(
        gateways=[Gateway.parse("http://a:1"), Gateway.parse("http://b:2")],
        viewers=10,
        chat_rate=10,
        workers=3,
        stop_at=5,
    )
    plans = build_plans(config, ["s1", "s2"])
    assert sum(len(p.viewers) for p in plans) == 20
    assert len({v.session_id for p in plans for v in p.viewers}) == 20
    for sid in ("s1", "s2"):
        assert abs(sum(p.chat_rate.get(sid, 0) for p in plans) - 10) < 1e-9
    assert {v.ws_url for p in plans for v in p.viewers} == {"ws://a:1/", "ws://b:2/"}
    assert all(p.chat_stop_at == {"s1": 4.5, "s2": 4.5} for p in plans)
