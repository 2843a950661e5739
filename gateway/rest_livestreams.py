"""`/livestreams`: the stream lifecycle over REST.

Live numbers (viewers, likes, pinned products) come from the stream's actor,
through this gateway's relay, while it is live; from the stored record after.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from actors import handles
from actors.registry_actor import RegistryAnswer
from wrencos.clock import iso
from gateway.context import GatewayContext
from gateway.deps import Admin, Ctx, Page
from gateway.errors import ApiError
from persistence.streams import ENDED, LIVE

router = APIRouter(prefix="/livestreams", tags=["livestreams"])

StreamIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="24 hex characters")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CreateStreamBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: Title
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    streamUrl: Annotated[str, StringConstraints(max_length=2000)] = ""
    quality: Annotated[str, StringConstraints(max_length=20)] = "auto"
    scheduledAt: datetime | None = None


class StreamOut(BaseModel):
    id: str
    title: str
    description: str
    streamUrl: str
    quality: str
    status: str
    isLive: bool
    hostId: str | None
    createdAt: str | None
    scheduledAt: str | None
    startTime: str | None
    endTime: str | None
    viewerCount: int
    peakViewers: int
    likes: int
    likedBy: list[str]
    chatCount: int
    pinnedProducts: list[dict[str, Any]]
    seq: int | None = None
    epoch: str | None = None


def _time(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def _live_numbers(ctx: GatewayContext, stream_id: str) -> dict[str, Any] | None:
    relay = ctx.directory.relay(stream_id)
    if relay is not None and relay.view.loaded:
        return relay.view.public()
    actor = await asyncio.to_thread(handles.find_stream_actor, stream_id)
    if actor is None:
        return None
    snap = await actor.snapshot.remote()
    d = snap["streamData"]
    return {
        "viewerCount": d["viewerCount"], "likes": d["likes"], "likedBy": d["likedBy"],
        "pinnedProducts": d["pinnedProducts"], "chatCount": snap["chatCount"],
        "peakViewers": snap["peakViewers"], "seq": snap["seq"], "epoch": snap["epoch"],
    }


async def present(ctx: GatewayContext, record: dict[str, Any]) -> StreamOut:
    live = record["status"] == LIVE
    numbers: dict[str, Any] = {}
    if live:
        numbers = await _live_numbers(ctx, record["_id"]) or {}
    def pick(key: str, default: Any) -> Any:
        return numbers.get(key, record.get(key, default))
    return StreamOut(
        id=record["_id"],
        title=record.get("title", ""),
        description=record.get("description", ""),
        streamUrl=record.get("streamUrl", ""),
        quality=record.get("quality", "auto"),
        status=record["status"],
        isLive=live,
        hostId=record.get("hostId"),
        createdAt=_time(record.get("createdAt")),
        scheduledAt=_time(record.get("scheduledAt")),
        startTime=_time(record.get("startTime")),
        endTime=_time(record.get("endTime")),
        viewerCount=pick("viewerCount", 0),
        peakViewers=max(pick("peakViewers", 0), pick("viewerCount", 0)),
        likes=pick("likes", 0),
        likedBy=numbers.get("likedBy", []),
        chatCount=pick("chatCount", 0),
        pinnedProducts=pick("pinnedProducts", []),
        seq=numbers.get("seq"),
        epoch=numbers.get("epoch"),
    )


def _raise_for(answer: RegistryAnswer) -> None:
    if not answer.ok:
        status = {"not_found": 404, "conflict": 409}.get(answer.code or "", 503)
        raise ApiError(status, answer.message or "the stream registry could not do this")


async def _list(ctx: GatewayContext, status: str | None, page: Page, response: Response) -> list[StreamOut]:
    records = await ctx.streams.list(status, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.streams.count(status))
    return list(await asyncio.gather(*(present(ctx, r) for r in records)))


@router.post("", status_code=201, response_model=StreamOut)
async def create_stream(body: CreateStreamBody, admin: Admin, ctx: Ctx) -> StreamOut:
    record = await ctx.streams.create(
        title=body.title, description=body.description, stream_url=body.streamUrl,
        quality=body.quality, host_id=admin.user_id,
        scheduled_at=iso(body.scheduledAt) if body.scheduledAt else None,
    )
    return await present(ctx, record)


@router.get("", response_model=list[StreamOut])
async def list_streams(ctx: Ctx, page: Page, response: Response) -> list[StreamOut]:
    """All streams, newest first. Paged: `?page=&limit=`; total in `X-Total-Count`."""
    return await _list(ctx, None, page, response)


@router.get("/active", response_model=list[StreamOut])
async def list_active(ctx: Ctx, page: Page, response: Response) -> list[StreamOut]:
    """Live streams, with their live numbers."""
    return await _list(ctx, LIVE, page, response)


@router.get("/past", response_model=list[StreamOut])
async def list_past(ctx: Ctx, page: Page, response: Response) -> list[StreamOut]:
    """Ended streams, most recently ended first, with their final numbers."""
    return await _list(ctx, ENDED, page, response)


@router.get("/{stream_id}", response_model=StreamOut)
async def get_stream(stream_id: StreamIdPath, ctx: Ctx) -> StreamOut:
    record = await ctx.streams.get(stream_id)
    if record is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    return await present(ctx, record)


@router.post("/{stream_id}/start", response_model=StreamOut)
async def start_stream(stream_id: StreamIdPath, admin: Admin, ctx: Ctx) -> StreamOut:
    """Go live: every connected client gets `stream_started`. Starting a live stream is a no-op."""
    _raise_for(await ctx.directory.start_stream(stream_id))
    record = await ctx.streams.get(stream_id)
    assert record is not None
    return await present(ctx, record)


@router.post("/{stream_id}/stop", response_model=StreamOut)
async def stop_stream(stream_id: StreamIdPath, admin: Admin, ctx: Ctx) -> StreamOut:
    """End the stream: its final state is stored, its actor ends, every client gets `stream_stopped`."""
    _raise_for(await ctx.directory.stop_stream(stream_id))
    record = await ctx.streams.get(stream_id)
    assert record is not None
    return await present(ctx, record)
