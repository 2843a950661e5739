"""Analytics for admins: per stream, and per day over all streams.

Computed on request with MongoDB aggregations over what is stored
(`persistence/analytics.py`); live numbers (viewers now, likes, peak) come from
the stream's actor while it is live, from the stored record after. Revenue is
in the shop's currency, as an exact decimal string (and in minor units).
Conversion is buyers (distinct accounts with a counted order attributed to the
stream) over unique viewers (distinct sessions that joined over the
WebSocket), 0 with no viewers; a ratio, not money, so a JSON number.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from core.money import format_minor
from gateway.errors import ApiError
from gateway.rest.deps import Admin, Ctx, Page
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.livestreams import present
from gateway.rest.types import DayIn

router = APIRouter(tags=["analytics"], route_class=ExactJsonRoute)


class MinuteOut(BaseModel):
    minute: str
    viewers: int
    chatMessages: int
    orders: int
    units: int
    revenue: str


class StreamAnalyticsOut(BaseModel):
    streamId: str
    title: str
    status: str
    startTime: str | None
    endTime: str | None
    currency: str
    viewerCount: int
    peakViewers: int
    uniqueViewers: int
    views: int
    likes: int
    chatMessages: int
    orders: int
    units: int
    revenue: str
    revenueMinor: int
    buyers: int
    conversion: float
    timeSeries: list[MinuteOut]


class DayOut(BaseModel):
    day: str
    streams: int
    peakViewers: int
    uniqueViewers: int
    views: int
    likes: int
    chatMessages: int
    orders: int
    units: int
    revenue: str
    revenueMinor: int
    buyers: int
    conversion: float


def conversion(buyers: int, viewers: int) -> float:
    return round(buyers / viewers, 4) if viewers > 0 else 0.0


@router.get("/livestreams/{stream_id}/analytics", response_model=StreamAnalyticsOut)
async def stream_analytics(
    stream_id: Annotated[str, Path(pattern=r"^[0-9a-f]{24}$")], admin: Admin, ctx: Ctx
) -> StreamAnalyticsOut:
    """One stream: peak and unique viewers, views, likes, chat messages, orders,
    units, revenue, conversion, and a per-minute series of viewers, chat and orders."""
    record = await ctx.streams.get(stream_id)
    if record is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    shown = await present(ctx, record)
    currency = ctx.settings.shop_currency
    totals = await ctx.analytics.stream_totals(stream_id, currency)
    minutes = await ctx.analytics.stream_minutes(stream_id, currency)
    return StreamAnalyticsOut(
        streamId=stream_id,
        title=shown.title,
        status=shown.status,
        startTime=shown.startTime,
        endTime=shown.endTime,
        currency=currency,
        viewerCount=shown.viewerCount,
        peakViewers=max(shown.peakViewers, totals["sampledPeakViewers"]),
        uniqueViewers=totals["uniqueViewers"],
        views=totals["views"],
        likes=shown.likes,
        chatMessages=totals["chatMessages"],
        orders=totals["orders"],
        units=totals["units"],
        revenue=format_minor(totals["revenueMinor"], currency),
        revenueMinor=totals["revenueMinor"],
        buyers=totals["buyers"],
        conversion=conversion(totals["buyers"], totals["uniqueViewers"]),
        timeSeries=[
            MinuteOut(
                minute=m["minute"],
                viewers=m["viewers"],
                chatMessages=m["chatMessages"],
                orders=m["orders"],
                units=m["units"],
                revenue=format_minor(m["revenueMinor"], currency),
            )
            for m in minutes
        ],
    )


@router.get("/analytics/daily", response_model=list[DayOut])
async def daily_analytics(
    admin: Admin,
    ctx: Ctx,
    page: Page,
    response: Response,
    since: Annotated[DayIn | None, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")] = None,
    until: Annotated[DayIn | None, Query(alias="to", description="last day, YYYY-MM-DD (UTC)")] = None,
) -> list[DayOut]:
    """Every stream together, one row per day with activity (UTC), newest first.
    Paged: `?page=&limit=`; total in `X-Total-Count`. `peakViewers` is the most
    viewers watching at once (all streams); likes are those of streams started that day."""
    currency = ctx.settings.shop_currency
    days: list[dict[str, Any]] = await ctx.analytics.days(currency, since, until)
    days.reverse()
    response.headers["X-Total-Count"] = str(len(days))
    return [
        DayOut(
            **{k: v for k, v in d.items()},
            revenue=format_minor(d["revenueMinor"], currency),
            conversion=conversion(d["buyers"], d["uniqueViewers"]),
        )
        for d in days[page.skip : page.skip + page.limit]
    ]
