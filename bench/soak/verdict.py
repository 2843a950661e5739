"""What the database holds after a soak against what was acknowledged, and the pass/fail rules.

* Opted-in apps (`apps`): the chat texts acknowledged must be exactly the stored ones of the audit
  stream (same set, each once), and the stream's stored like count must be the number of sessions
  whose last acknowledged toggle said liked.
* The load tester's opted-in run: every `ack` frame its viewers got is a stored message, so
  acknowledged ≤ stored; it does not resend, so a message stored whose ack was lost with its
  connection (a gateway SIGKILLed) is one it counts as unacknowledged: stored ≤ acknowledged +
  unacknowledged. Both bounds must hold.
* Nothing hung (REST probes and the apps' commands), every scheduled fault happened, and no
  long-lived process grew faster than the stated bound.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.soak.apps import PREFIX
from loadtest.messages import own_prefix
from persistence.chat import ChatStore
from persistence.database import DatabaseConfig, connect
from persistence.streams import StreamStore

MAX_GROWTH_MIB_PER_HOUR = 100.0


async def stored_figures(
    uri: str, db_name: str, audit_stream: str, load_streams: list[str], run_ids: dict[str, str]
) -> dict[str, Any]:
    """Read back the audit stream's chat and likes, and per load-tester run its stored messages."""
    db = connect(DatabaseConfig(uri=uri, name=db_name))
    try:
        chats = ChatStore(db)
        audit_chat = [m["message"] for m in await chats.all_in_order(audit_stream) if m["message"].startswith(PREFIX)]
        doc = await StreamStore(db).get(audit_stream)
        by_run: dict[str, int] = dict.fromkeys(run_ids, 0)
        for sid in load_streams:
            for m in await chats.all_in_order(sid):
                for kind, run_id in run_ids.items():
                    if str(m["message"]).startswith(own_prefix(run_id)):
                        by_run[kind] += 1
        return {
            "auditChat": audit_chat,
            "auditLikes": None if doc is None else doc.get("likes"),
            "auditStatus": None if doc is None else doc.get("status"),
            "loadtestStored": by_run,
        }
    finally:
        await db.client.close()


def judge(
    acked_chat: list[str],
    expected_likes: int,
    stored: dict[str, Any],
    loadtest: dict[str, dict[str, Any]],
    hung: int,
    unanswered: int,
    faults: list[dict[str, Any]],
    memory: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The verdict: each check with its figures, and `passed` if all hold."""
    stored_chat = stored["auditChat"]
    dupes = sorted(m for m, n in Counter(stored_chat).items() if n > 1)
    lost = sorted(set(acked_chat) - set(stored_chat))
    unacked_stored = sorted(set(stored_chat) - set(acked_chat))
    checks: dict[str, dict[str, Any]] = {
        "acked_equals_stored": {
            "ok": len(acked_chat) > 0 and not dupes and not lost and not unacked_stored,
            "acked": len(acked_chat),
            "stored": len(stored_chat),
            "ackedNotStored": lost[:20],
            "storedNotAcked": unacked_stored[:20],
            "storedTwice": dupes[:20],
        },
        "likes_acked_equals_stored": {
            "ok": stored["auditLikes"] == expected_likes,
            "acked": expected_likes,
            "stored": stored["auditLikes"],
        },
        "nothing_hung": {"ok": hung == 0 and unanswered == 0, "hung": hung, "unansweredAtEnd": unanswered},
        "every_fault_happened": {
            "ok": bool(faults) and all(f["error"] is None and f["startedAtS"] is not None for f in faults),
            "failed": [f for f in faults if f["error"] is not None or f["startedAtS"] is None],
        },
        "memory_growth_bounded": {
            "ok": all(m["growthMiBPerHour"] <= MAX_GROWTH_MIB_PER_HOUR for m in memory.values() if m["judged"]),
            "boundMiBPerHour": MAX_GROWTH_MIB_PER_HOUR,
            "over": {
                r: m["growthMiBPerHour"]
                for r, m in memory.items()
                if m["judged"] and m["growthMiBPerHour"] > MAX_GROWTH_MIB_PER_HOUR
            },
        },
    }
    for kind, lt in loadtest.items():
        if lt.get("acks") is None:
            continue
        acks, unacked, got = lt["acks"], lt["unacked"], stored["loadtestStored"].get(kind, 0)
        checks[f"loadtest_{kind}_acked_within_stored"] = {
            "ok": acks > 0 and acks <= got <= acks + unacked,
            "acked": acks,
            "stored": got,
            "unacked": unacked,
        }
    return {"passed": all(c["ok"] for c in checks.values()), "checks": checks}
