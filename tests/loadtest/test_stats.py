"""Pure parts of the load tester: histograms, per-second aggregation, loss accounting, merging."""

from __future__ import annotations

import numpy as np

from loadtest import messages
from loadtest.stats import (
    Aggregate,
    SecondRecorder,
    Tick,
    decode,
    error_kind,
    expected_receipts,
    merge_raw,
    new_hist,
    record_us,
    summarize,
    timeseries,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S


def test_expected_receipts_counts_windows_containing_each_send() -> None:
    starts = np.array([0, 10, 20])
    ends = np.array([100, 15, 30])
    sends = np.array([5, 10, 12, 15, 16, 25, 101])
    assert expected_receipts(sends, starts, ends).tolist() == [1, 2, 2, 2, 1, 2, 0]
    assert expected_receipts(np.array([], dtype=np.int64), starts, ends).tolist() == []


def test_messages_round_trip() -> None:
    text = messages.chat_text("abc123", 3, 42, 123456789, pad_to=80)
    assert len(text) == 80
    assert messages.parse_chat(text) == messages.Mark("abc123", 3, 42, 123456789)
    assert messages.parse_chat("hello") is None
    assert messages.parse_chat({"not": "text"}) is None
    assert messages.parse_pin("abc123", {"productId": "p", "name": messages.pin_name("abc123", 7, 99)}) == (7, 99)
    assert messages.parse_pin("other", {"productId": "p", "name": messages.pin_name("abc123", 7, 99)}) is None
    assert messages.parse_pin("abc123", {"productId": "p", "name": "Lamp"}) is None


def test_error_kind_groups_messages_with_ids() -> None:
    a = error_kind("Stream 6b06a25a4779a7473c100c9c is not live")
    b = error_kind("Stream 6b06a25a4779a7473c100c9d is not live")
    assert a == b == "server: Stream # is not live"


def _worker_ticks(
    worker: int, sends: list[int], receipts: list[tuple[int, int]], connected: int, start: int = T0
) -> list[Tick]:
    rec = SecondRecorder(start)
    for t in sends:
        rec.sent(t, "s1")
        rec.count(t, "chat_sent")
    for recv, sent in receipts:
        rec.count(recv, "deliveries")
        rec.record(recv, "latency", (recv - sent) // 1000)
        rec.received_expected(recv, sent)
    return rec.flush(None, {"connected": connected})


def test_aggregate_loss_latency_and_series() -> None:
    agg = Aggregate(T0)
    sends = [T0 + S // 2, T0 + S + S // 2]  # one message in second 0, one in second 1
    # worker 0: one viewer watching the whole run; gets both, 10 ms and 30 ms after the send
    ticks0 = _worker_ticks(0, sends, [(sends[0] + 10_000_000, sends[0]), (sends[1] + 30_000_000, sends[1])], 1)
    # worker 1: one viewer watching the whole run; misses the second message
    ticks1 = _worker_ticks(1, [], [(sends[0] + 20_000_000, sends[0])], 1)
    for t in ticks0:
        agg.add_tick(0, t)
    for t in ticks1:
        agg.add_tick(1, t)
    agg.add_final({"windows": {"s1": [(T0, T0 + 5 * S)]}, "streams": {}})
    agg.add_final({"windows": {"s1": [(T0, T0 + 5 * S)]}, "streams": {}})
    loss = agg.compute_loss()
    assert loss["expected"] == 4 and loss["receivedExpected"] == 3
    assert loss["bySecond"] == {"0": [2, 2], "1": [2, 1]}
    raw = agg.raw()
    summary = summarize(raw, 2.0)
    assert summary["chat"]["sent"] == 2
    assert summary["chat"]["lost"] == 1 and abs(summary["chat"]["lossRatio"] - 0.25) < 1e-9
    assert summary["chat"]["deliveries"] == 3
    lat = summary["chat"]["latencyMs"]
    assert lat["count"] == 3 and 9.9 <= lat["p50"] <= 20.2 and 29.7 <= lat["max"] <= 30.3
    series = timeseries(raw)
    assert series["sent"][:2] == [1, 1]
    assert series["deliveries"][:2] == [2, 1]
    assert series["lost"][:2] == [0, 1]


def test_viewer_joining_after_a_send_is_not_expected_to_get_it() -> None:
    agg = Aggregate(T0)
    for t in _worker_ticks(0, [T0 + 100], [], 0):
        agg.add_tick(0, t)
    agg.add_final({"windows": {"s1": [(T0 + 200, T0 + S)]}, "streams": {}})
    assert agg.compute_loss()["expected"] == 0


def test_merge_adds_counters_and_histograms_aligned_on_wall_clock() -> None:
    def one(start: int, latency_ms: int) -> dict:
        agg = Aggregate(start)
        for t in _worker_ticks(0, [start + 1], [(start + 1 + latency_ms * 1_000_000, start + 1)], 1, start):
            agg.add_tick(0, t)
        agg.add_final({"windows": {"s1": [(start, start + S)]}, "streams": {}})
        return agg.raw()

    merged = merge_raw([one(T0, 10), one(T0 + 2 * S, 100)])
    assert merged["counters"]["deliveries"] == 2
    assert merged["loss"]["expected"] == 2
    assert sorted(merged["seconds"]) == ["0", "2"]
    h = decode(merged["hists"]["latency"])
    assert h.get_total_count() == 2 and 99_000 <= h.get_max_value() <= 101_000


def test_histogram_clamps_out_of_range_values() -> None:
    h = new_hist()
    record_us(h, -5)
    record_us(h, 10**12)
    assert h.get_total_count() == 2
