"""WrenCOS Live load tester: `wrencos loadtest run|merge|setup`.

Simulates viewers (and one admin) against one or more gateways over the apps'
WebSocket protocol (v1, or the opted-in v2), and measures what they receive:
connection success and time, fan-out latency from send to each receipt,
deliveries per second, loss, reordering, errors, reconnects, per second.

Layout:
    config.py     options, gateway URLs, thresholds
    stats.py      histograms, per-second aggregation, loss accounting, summary (pure)
    plan.py       what the parent asks of one worker process
    worker.py     one process: the viewers, the chat/like senders, settling at the end
    viewer.py     one simulated app connection: connect, reconnect, what it measures
    frames.py     what a frame is, by its JSON content, decoded once per worker (pure)
    shipping.py   what a worker ships to the parent: its seconds, its end, its crash
    wsclient.py   the viewers' minimal WebSocket client
    messages.py   what the tester writes in its chat messages and pins, to match receipts
    admin.py      REST setup, the admin connection and the admin actions
    runner.py     the parent: workers, admin actions, live progress, reports
    report.py     JSON report and threshold checks
    html.py       the self-contained HTML report with plots
    console.py    live progress and the summary table (rich)
    merge.py      merging reports from several machines
    locustfile.py the same scenarios for Locust
"""
