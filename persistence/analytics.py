"""Analytics: MongoDB aggregations over what the stream actors and the
commerce stores have stored. Read-only.

Inputs: `stream_viewers` (one per stream and session), `viewer_samples` (most
viewers per stream and minute), `stream_views`, `chat_messages`, `orders`,
`streams`. Times are ISO 8601 strings, so a minute is the first 16 bytes and
a day the first 10 (`$substrBytes`; no `$dateTrunc`, see `docs/persistence.md`).

Orders count unless `cancelled` (or still `creating`); revenue is the sum of
their `totalMinor` in one currency.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

NOT_COUNTED = ["cancelled", "creating"]


def next_day(day: str) -> str:
    """`YYYY-MM-DD` -> the day after, as an exclusive upper bound for ISO strings."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def _prefix(field: str, n: int) -> dict[str, Any]:
    return {"$substrBytes": [f"${field}", 0, n]}


class AnalyticsStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def _all(self, collection: str, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cursor = await self._db[collection].aggregate(pipeline)
        return await cursor.to_list()

    async def _count(self, collection: str, match: dict[str, Any]) -> int:
        rows = await self._all(collection, [{"$match": match}, {"$count": "n"}])
        return int(rows[0]["n"]) if rows else 0

    async def stream_totals(self, stream_id: str, currency: str) -> dict[str, Any]:
        """Unique viewers, views, chat messages, orders, units, revenue (minor
        units), buyers and the highest per-minute viewer sample of one stream."""
        orders = await self._all(
            "orders",
            [
                {"$match": {"streamId": stream_id, "currency": currency, "status": {"$nin": NOT_COUNTED}}},
                {
                    "$group": {
                        "_id": None,
                        "orders": {"$sum": 1},
                        "units": {"$sum": "$units"},
                        "revenue": {"$sum": "$totalMinor"},
                        "buyers": {"$addToSet": "$userId"},
                    }
                },
                {"$project": {"orders": 1, "units": 1, "revenue": 1, "buyers": {"$size": "$buyers"}}},
            ],
        )
        peak = await self._all(
            "viewer_samples",
            [{"$match": {"streamId": stream_id}}, {"$group": {"_id": None, "peak": {"$max": "$viewers"}}}],
        )
        o = orders[0] if orders else {}
        return {
            "uniqueViewers": await self._count("stream_viewers", {"streamId": stream_id}),
            "views": await self._count("stream_views", {"streamId": stream_id}),
            "chatMessages": await self._count("chat_messages", {"streamId": stream_id}),
            "orders": int(o.get("orders", 0)),
            "units": int(o.get("units", 0)),
            "revenueMinor": int(o.get("revenue", 0)),
            "buyers": int(o.get("buyers", 0)),
            "sampledPeakViewers": int(peak[0]["peak"] or 0) if peak else 0,
        }

    async def stream_minutes(self, stream_id: str, currency: str) -> list[dict[str, Any]]:
        """Per minute (`YYYY-MM-DDTHH:MM`, UTC): most viewers, chat messages,
        orders, units and revenue; minutes with nothing are left out."""
        viewers = await self._all(
            "viewer_samples",
            [{"$match": {"streamId": stream_id}}, {"$group": {"_id": "$minute", "viewers": {"$max": "$viewers"}}}],
        )
        chat = await self._all(
            "chat_messages",
            [{"$match": {"streamId": stream_id}}, {"$group": {"_id": _prefix("timestamp", 16), "n": {"$sum": 1}}}],
        )
        orders = await self._all(
            "orders",
            [
                {"$match": {"streamId": stream_id, "currency": currency, "status": {"$nin": NOT_COUNTED}}},
                {
                    "$group": {
                        "_id": _prefix("createdAt", 16),
                        "orders": {"$sum": 1},
                        "units": {"$sum": "$units"},
                        "revenue": {"$sum": "$totalMinor"},
                    }
                },
            ],
        )
        rows: dict[str, dict[str, Any]] = {}

        def row(minute: str) -> dict[str, Any]:
            return rows.setdefault(
                minute, {"minute": minute, "viewers": 0, "chatMessages": 0, "orders": 0, "units": 0, "revenueMinor": 0}
            )

        for r in viewers:
            row(r["_id"])["viewers"] = int(r["viewers"] or 0)
        for r in chat:
            row(r["_id"])["chatMessages"] = int(r["n"])
        for r in orders:
            x = row(r["_id"])
            x["orders"], x["units"], x["revenueMinor"] = int(r["orders"]), int(r["units"]), int(r["revenue"])
        return [rows[m] for m in sorted(rows)]

    async def days(self, currency: str, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        """Per day (`YYYY-MM-DD`, UTC), oldest first, within [since, until]
        (days, inclusive): streams started, the highest number of viewers
        watching at once (summed over streams per minute), viewers (sessions
        joining a stream), views, likes of the streams started that day, chat
        messages, orders, units, revenue and buyers."""

        def within(field: str) -> dict[str, Any]:
            cond: dict[str, Any] = {}
            if since:
                cond["$gte"] = since
            if until:
                cond["$lt"] = next_day(until)
            return {field: cond} if cond else {}

        streams = await self._all(
            "streams",
            [
                {"$match": {"status": {"$in": ["live", "ended"]}, **within("startTime")}},
                {"$group": {"_id": _prefix("startTime", 10), "streams": {"$sum": 1}, "likes": {"$sum": "$likes"}}},
            ],
        )
        peak = await self._all(
            "viewer_samples",
            [
                {"$match": within("minute")},
                {"$group": {"_id": "$minute", "viewers": {"$sum": "$viewers"}}},
                {"$group": {"_id": _prefix("_id", 10), "peak": {"$max": "$viewers"}}},
            ],
        )
        viewers = await self._all(
            "stream_viewers",
            [
                {"$match": within("firstSeenAt")},
                {"$group": {"_id": _prefix("firstSeenAt", 10), "sessions": {"$addToSet": "$sessionId"}}},
                {"$project": {"n": {"$size": "$sessions"}}},
            ],
        )
        views = await self._all(
            "stream_views", [{"$match": within("at")}, {"$group": {"_id": _prefix("at", 10), "n": {"$sum": 1}}}]
        )
        chat = await self._all(
            "chat_messages",
            [{"$match": within("timestamp")}, {"$group": {"_id": _prefix("timestamp", 10), "n": {"$sum": 1}}}],
        )
        orders = await self._all(
            "orders",
            [
                {"$match": {"currency": currency, "status": {"$nin": NOT_COUNTED}, **within("createdAt")}},
                {
                    "$group": {
                        "_id": _prefix("createdAt", 10),
                        "orders": {"$sum": 1},
                        "units": {"$sum": "$units"},
                        "revenue": {"$sum": "$totalMinor"},
                        "buyers": {"$addToSet": "$userId"},
                    }
                },
                {"$project": {"orders": 1, "units": 1, "revenue": 1, "buyers": {"$size": "$buyers"}}},
            ],
        )
        rows: dict[str, dict[str, Any]] = {}

        def row(day: Any) -> dict[str, Any]:
            return rows.setdefault(
                str(day),
                {
                    "day": str(day),
                    "streams": 0,
                    "peakViewers": 0,
                    "uniqueViewers": 0,
                    "views": 0,
                    "likes": 0,
                    "chatMessages": 0,
                    "orders": 0,
                    "units": 0,
                    "revenueMinor": 0,
                    "buyers": 0,
                },
            )

        for r in streams:
            x = row(r["_id"])
            x["streams"], x["likes"] = int(r["streams"]), int(r["likes"] or 0)
        for r in peak:
            row(r["_id"])["peakViewers"] = int(r["peak"] or 0)
        for r in viewers:
            row(r["_id"])["uniqueViewers"] = int(r["n"])
        for r in views:
            row(r["_id"])["views"] = int(r["n"])
        for r in chat:
            row(r["_id"])["chatMessages"] = int(r["n"])
        for r in orders:
            x = row(r["_id"])
            x["orders"], x["units"] = int(r["orders"]), int(r["units"])
            x["revenueMinor"], x["buyers"] = int(r["revenue"]), int(r["buyers"])
        return [rows[d] for d in sorted(rows) if len(d) == 10]
