"""The stream actor's own counts that the benchmark reports instead of what the tester sent
(#16 item 6): like taps applied, and poll answers and events handed to each gateway. The real
`StreamActor` in the test's loop, on the real embedded database (the fixtures of
tests/actors/test_stream_actor.py)."""

from __future__ import annotations

from core.commands import Join, ToggleLike
from tests.actors.test_stream_actor import Cluster, chat, cluster, new_stream_id

__all__ = ["cluster"]  # the fixture, used by name


async def test_info_counts_like_taps_applied_and_stored(cluster: Cluster) -> None:
    actor = cluster.actor(new_stream_id())
    await actor.ready()
    assert (await actor.info())["togglesApplied"] == 0
    answers = await actor.submit("gw-a", "b1", [Join("s1"), ToggleLike("s1"), chat("hello", "s1")])
    assert all(r.ok for r in answers)
    # A run of taps travels as one command: each tap is applied, and counted.
    await actor.submit("gw-a", "b2", [ToggleLike("s2", more=("s3", "s1", "s4"))])
    assert (await actor.info())["togglesApplied"] == 5
    # A batch sent again (a gateway's retry) is answered as before and applied once: not counted again.
    await actor.submit("gw-a", "b2", [ToggleLike("s2", more=("s3", "s1", "s4"))])
    # A refused tap (no liker) is not applied.
    refused = await actor.submit("gw-b", "b3", [ToggleLike("")])
    assert refused[0].ok is False
    info = await actor.info()
    assert info["togglesApplied"] == 5
    assert (await actor.snapshot())["stats"]["likes"] == 3  # s1 twice (off), s2, s3, s4


async def test_info_counts_poll_answers_and_events_per_gateway(cluster: Cluster) -> None:
    actor = cluster.actor(new_stream_id())
    snap = await actor.ready()
    seq, epoch = snap["seq"], snap["epoch"]
    await actor.submit("gw-a", "b1", [Join("s1"), chat("one", "s1"), chat("two", "s1")])
    a = await actor.poll("gw-a", seq, epoch, 5.0)
    b = await actor.poll("gw-b", seq, epoch, 5.0)
    assert len(a.events) >= 2 and len(b.events) == len(a.events)
    # gw-a polls again, up to date: answered empty when its (short) wait runs out.
    again = await actor.poll("gw-a", a.events[-1][0], epoch, 0.05)
    assert again.events == []
    info = await actor.info()
    assert info["pollsAnswered"] == {"gw-a": 2, "gw-b": 1}
    assert info["eventsDelivered"] == {"gw-a": len(a.events), "gw-b": len(b.events)}
