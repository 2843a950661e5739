"""`/livestreams`: the stream lifecycle over REST.

Live numbers (viewers, likes, pinned products) come from the stream while it
is live, from the stored record after (`gateway/services/live_numbers.py`).
Pins are the pin service's (`gateway/services/pins.py`), as on the WebSocket.

Going live is bounded (the registry gives up after `GO_LIVE_TIMEOUT_SECONDS`,
60 s by default, when no node has free `stream` capacity) and so is this
request: it waits for the go-live at most `START_WAIT_SHARE` of the REST
deadline (20 s of 30). Live by then: 200. Given up: 503 with `Retry-After`
(no stream capacity; the stream is still scheduled). Still going: 202 with
`Retry-After`; the go-live goes on, and `POST /start` again (idempotent) waits
for the same go-live, so an admin's client loops on 202 and ends on 200 or 503.

Creating, moving, cancelling or deleting a scheduled stream tells the registry,
which starts (or ends) the actor it keeps ready for the stream
`PREWARM_SECONDS` ahead of `scheduledAt`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.commands import ToggleLike
from core.live_set import RegistryAnswer
from core.money import money_number
from core.wire import pinned_products
from gateway.context import GatewayContext
from gateway.errors import ApiError
from gateway.rest.deps import Admin, Ctx, OptionalUser, Page
from gateway.rest.documents import DocumentOut, MoneyOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.refusals import api_error
from gateway.rest.types import DateTimeIn
from gateway.security.identity import SessionHeader, viewer_key
from gateway.services import live_numbers
from gateway.services.errors import ServiceError
from gateway.services.inputs import NOT_BLANK_SCHEMA, NotBlank
from gateway.services.pins import DisplayOrder
from gateway.services.stream_commands import STORED_WAIT_S, answer_within, refusal
from persistence.streams import ENDED, LIVE
from runtime.clock import iso

START_WAIT_SHARE = 2 / 3  # of the REST deadline, the longest `POST /start` waits for the go-live
NO_CAPACITY_RETRY_AFTER_S = 30  # about what a new stream node takes to join (an autoscaler's, or an operator's)

router = APIRouter(prefix="/livestreams", tags=["livestreams"], route_class=ExactJsonRoute)

StreamIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{24}$", description="24 hex characters")]
Title = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]


class CreateStreamBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: Title
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    streamUrl: Annotated[str, StringConstraints(max_length=2000)] = ""
    quality: Annotated[str, StringConstraints(max_length=20)] = "auto"
    scheduledAt: DateTimeIn | None = None


class StreamOut(DocumentOut):
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
    pinnedProducts: list[dict[str, Any]] = Field(
        description="as in `pinned_products_updated`: `productId` and `_id`, `name`, `price` (an exact "
        "JSON number) and `priceMinor`, `currency`, `image`, `displayOrder`"
    )
    seq: int | None = None
    epoch: str | None = None


def _time(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def _live_numbers(ctx: GatewayContext, stream_id: str) -> dict[str, Any] | None:
    numbers = live_numbers.followed(ctx.directory, stream_id)
    if numbers is not None:  # current: this gateway follows the stream
        return numbers
    actor = ctx.directory.stream_client(stream_id)
    if actor is None:
        return None
    # One cached answer per stream (shared by concurrent requests), never one actor call per request.
    return await ctx.live_numbers.of_actor(stream_id, actor)


async def present(ctx: GatewayContext, record: dict[str, Any]) -> StreamOut:
    live = record["status"] == LIVE
    n = live_numbers.merged(record, await _live_numbers(ctx, record["_id"]) if live else None)
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
        viewerCount=n.viewer_count,
        peakViewers=n.peak_viewers,
        likes=n.likes,
        likedBy=n.liked_by,
        chatCount=n.chat_count,
        pinnedProducts=pinned_products(n.pinned_products),
        seq=n.seq,
        epoch=n.epoch,
    )


def _raise_for(answer: RegistryAnswer) -> None:
    if not answer.ok:
        status = {"not_found": 404, "conflict": 409}.get(answer.code or "", 503)
        if answer.code == "no_capacity":
            headers = {"Retry-After": str(NO_CAPACITY_RETRY_AFTER_S)}
            raise ApiError(503, answer.message or "no stream capacity", "no_capacity", headers)
        raise ApiError(status, answer.message or "the stream registry could not do this")


async def _list(ctx: GatewayContext, status: str | None, page: Page, response: Response) -> list[StreamOut]:
    records = await ctx.streams.list(status, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.streams.count(status))
    return list(await asyncio.gather(*(present(ctx, r) for r in records)))


@router.post("", status_code=201, response_model=StreamOut)
async def create_stream(body: CreateStreamBody, admin: Admin, ctx: Ctx) -> StreamOut:
    record = await ctx.streams.create(
        title=body.title,
        description=body.description,
        stream_url=body.streamUrl,
        quality=body.quality,
        host_id=admin.user_id,
        scheduled_at=iso(body.scheduledAt) if body.scheduledAt else None,
    )
    if body.scheduledAt:
        await ctx.directory.schedule_changed(record["_id"])
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


@router.api_route("/active", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
@router.api_route("/past", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def _read_only_lists() -> None:
    """`/livestreams/active` and `/past` are lists, not stream ids: any other method is a 405."""
    raise ApiError(405, "Method Not Allowed: this list is read-only", headers={"Allow": "GET"})


@router.get("/{stream_id}", response_model=StreamOut)
async def get_stream(stream_id: StreamIdPath, ctx: Ctx) -> StreamOut:
    record = await ctx.streams.get(stream_id)
    if record is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    return await present(ctx, record)


class GoingLiveOut(BaseModel):
    streamId: str
    status: str = Field(description="`going_live`: not live yet; the go-live goes on")
    message: str
    retryAfter: int = Field(description="seconds; also the `Retry-After` header")


@router.post(
    "/{stream_id}/start",
    response_model=StreamOut,
    responses={
        202: {"model": GoingLiveOut, "description": "still going live (waiting for stream capacity): ask again"},
        503: {"description": "`no_capacity`: no stream capacity within the go-live timeout; still scheduled"},
    },
)
async def start_stream(stream_id: StreamIdPath, admin: Admin, ctx: Ctx) -> StreamOut | JSONResponse:
    """Go live: every connected client gets `stream_started`. Starting a live
    stream is a no-op. Bounded: 200 once live; 202 with `Retry-After` while it
    still waits for stream capacity (start it again to keep waiting: it joins
    the same go-live); 503 `no_capacity` with `Retry-After` once the go-live
    timeout has passed without capacity (the stream stays scheduled)."""
    wait_s = ctx.settings.rest_deadline_seconds * START_WAIT_SHARE
    answer = await ctx.directory.start_stream(stream_id, wait_s)
    if answer.code == "pending":
        retry_after = int((answer.data or {}).get("retryAfter", 5))
        going = GoingLiveOut(
            streamId=stream_id, status="going_live", message=answer.message or "", retryAfter=retry_after
        )
        return JSONResponse(going.model_dump(), status_code=202, headers={"Retry-After": str(retry_after)})
    _raise_for(answer)
    return await _present_or_404(ctx, stream_id)


@router.post("/{stream_id}/stop", response_model=StreamOut)
async def stop_stream(stream_id: StreamIdPath, admin: Admin, ctx: Ctx) -> StreamOut:
    """End the stream: its final state is stored, its actor ends, every client gets `stream_stopped`."""
    _raise_for(await ctx.directory.stop_stream(stream_id))
    return await _present_or_404(ctx, stream_id)


async def _present_or_404(ctx: GatewayContext, stream_id: str) -> StreamOut:
    record = await ctx.streams.get(stream_id)
    if record is None:  # deleted by someone else in the meantime (possible once it ended)
        raise ApiError(404, f"Stream {stream_id} does not exist")
    return await present(ctx, record)


# ---------------------------------------------------------------- editing


class UpdateStreamBody(BaseModel):
    """Every field optional: only those sent change."""

    model_config = ConfigDict(extra="ignore")  # status, hostId, numbers ... are the server's
    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    streamUrl: Annotated[str, StringConstraints(max_length=2000)] | None = None
    quality: Annotated[str, StringConstraints(max_length=20)] | None = None
    scheduledAt: DateTimeIn | None = Field(None, description="RFC 3339 with an offset (a number is refused)")


@router.put("/{stream_id}", response_model=StreamOut)
async def update_stream(stream_id: StreamIdPath, body: UpdateStreamBody, admin: Admin, ctx: Ctx) -> StreamOut:
    """Change a scheduled or ended stream (admin). A live stream answers 409:
    its actor shows the title, description, URL and quality it went live with
    to every viewer, and changing the record under it would make REST and the
    WebSocket disagree. Stop it (or change it before it starts)."""
    fields = body.model_dump(exclude_none=True)
    if "scheduledAt" in fields:
        fields["scheduledAt"] = iso(fields["scheduledAt"])
    record, found = await ctx.streams.update_unless_live(stream_id, fields)
    if not found:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    if record is None:
        raise ApiError(409, "This stream is live: its details are fixed until it stops")
    await ctx.directory.schedule_changed(stream_id)  # moved or edited: its reserved actor is ended or started
    return await present(ctx, record)


@router.delete("/{stream_id}", status_code=204)
async def delete_stream(stream_id: StreamIdPath, admin: Admin, ctx: Ctx) -> Response:
    """Delete a stream record (admin); 409 while it is live. Its chat, views and
    orders stay stored (orders keep their `streamId`)."""
    deleted, found = await ctx.streams.delete_unless_live(stream_id)
    if not found:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    if not deleted:
        raise ApiError(409, "This stream is live: stop it before deleting it")
    await ctx.directory.schedule_changed(stream_id)  # cancelled: an actor reserved for it is ended
    return Response(status_code=204)


# ---------------------------------------------------------------- viewers


class ViewOut(BaseModel):
    streamId: str
    views: int


@router.post("/{stream_id}/view", status_code=201, response_model=ViewOut)
async def record_view(
    stream_id: StreamIdPath, ctx: Ctx, claims: OptionalUser, session_id: SessionHeader = None
) -> ViewOut:
    """Count a view (an app opening the stream); anyone, anonymous included."""
    if await ctx.streams.get(stream_id) is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    await ctx.views.record(stream_id, viewer_key(claims, session_id), claims.user_id if claims else None, session_id)
    return ViewOut(streamId=stream_id, views=await ctx.views.count(stream_id))


class ChatMessageOut(BaseModel):
    id: int
    id_: int = Field(serialization_alias="_id", description="the same as `id`")
    seq: int
    username: str
    message: str
    isAdmin: bool
    timestamp: str


@router.get("/{stream_id}/chat", response_model=list[ChatMessageOut])
async def chat_history(stream_id: StreamIdPath, ctx: Ctx, page: Page, response: Response) -> list[ChatMessageOut]:
    """The stream's stored chat, newest first (page 1 is the latest). Paged:
    `?page=&limit=`; total in `X-Total-Count`."""
    if await ctx.streams.get(stream_id) is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    docs = await ctx.chat_pages.page(stream_id, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.chat_pages.count(stream_id))
    return [
        ChatMessageOut(
            id=int(d["seq"]),
            id_=int(d["seq"]),
            seq=int(d["seq"]),
            username=str(d.get("username", "")),
            message=str(d.get("message", "")),
            isAdmin=bool(d.get("isAdmin", False)),
            timestamp=str(d.get("timestamp", "")),
        )
        for d in docs
    ]


class LikeOut(BaseModel):
    liked: bool
    likes: int
    likedBy: str = Field(description="the key the like is counted under: your user id, else your X-Session-Id")


async def _live_relay(ctx: GatewayContext, stream_id: str) -> Any:
    relay = ctx.directory.relay(stream_id)
    if relay is None:
        if await ctx.streams.get(stream_id) is None:
            raise ApiError(404, f"Stream {stream_id} does not exist")
        raise ApiError(409, "This stream is not live")
    return relay


class LikeQueuedOut(BaseModel):
    queued: bool = Field(description="always true: the toggle waits in the stream's queue and is applied once")
    likedBy: str = Field(description="the key the like is counted under")
    message: str


@router.post(
    "/{stream_id}/like",
    response_model=LikeOut,
    responses={202: {"model": LikeQueuedOut, "description": "queued: the stream is slow to store; applied once"}},
)
async def toggle_like(
    stream_id: StreamIdPath, ctx: Ctx, claims: OptionalUser, session_id: SessionHeader = None
) -> LikeOut | JSONResponse:
    """Like, or unlike if already liked (as `toggle_like` on the WebSocket):
    once per user when logged in, else per `X-Session-Id`. 409 unless live.

    Answered 200 with the new state once the stream stored it. If that takes
    longer than the database's own budget (the stream's storage is slow or
    down), 202: the toggle is queued and will be applied, once. Not a failure,
    so not to be sent again: a second toggle would undo it.

    A like is counted under an identity: a bearer token, or the app's
    `X-Session-Id`. With neither, 401 (the session id is not a credential, so
    it is a header parameter here, not a security scheme)."""
    key = viewer_key(claims, session_id)
    if key is None:
        raise ApiError(401, "Log in, or send the app's session id in an X-Session-Id header, to like")
    relay = await _live_relay(ctx, stream_id)
    result = await answer_within(relay.submit(ToggleLike(key)))
    if result is None:
        queued = LikeQueuedOut(
            queued=True,
            likedBy=key,
            message=f"The stream has not stored the like within {STORED_WAIT_S:g} s; it is queued and will be "
            "applied once. Do not send it again (that would undo it): the stream's likes show it when applied",
        )
        return JSONResponse(queued.model_dump(), status_code=202)
    if not result.ok:  # 409, or 503 + Retry-After when the stream is busy or reloading (`rest/refusals.py`)
        raise api_error(refusal(result, "The stream could not take the like"))
    data = result.data or {}
    return LikeOut(liked=bool(data.get("liked", True)), likes=int(data.get("likes", 0)), likedBy=key)


class PinBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, price, image come from the catalogue
    productId: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$")]
    displayOrder: DisplayOrder | None = None


class PinnedOut(BaseModel):
    """A pinned product, as `pinned_products_updated` shows it (with its currency)."""

    productId: str
    id_: str = Field(serialization_alias="_id", description="the same as `productId`")
    name: str
    price: MoneyOut
    priceMinor: int
    currency: str
    image: str | None
    displayOrder: int | None


@router.post("/{stream_id}/pin", response_model=PinnedOut)
async def pin_product(stream_id: StreamIdPath, body: PinBody, admin: Admin, ctx: Ctx) -> PinnedOut:
    """Pin a catalogue product over the video (admin). Name, price and image
    come from the catalogue; viewers get `pinned_products_updated`. Pinning a
    pinned product again refreshes it (and moves it with `displayOrder`)."""
    queued = await ctx.pins.pin(stream_id, body.productId, body.displayOrder)
    try:
        p = await queued.stored()
    except ServiceError as e:
        raise api_error(e, 409) from e  # whatever the stream refuses conflicts with what it has pinned
    return PinnedOut(
        productId=p.product_id,
        id_=p.product_id,
        name=p.name,
        price=money_number(p.price_minor, p.currency),
        priceMinor=p.price_minor,
        currency=p.currency,
        image=p.image,
        displayOrder=p.display_order,
    )


@router.delete("/{stream_id}/pin/{product_id}", status_code=204)
async def unpin_product(
    stream_id: StreamIdPath,
    product_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")],
    admin: Admin,
    ctx: Ctx,
) -> Response:
    """Take a pinned product down (admin); 404 if it is not pinned."""
    queued = await ctx.pins.unpin(stream_id, product_id)
    try:
        await queued.stored()
    except ServiceError as e:
        raise api_error(e, 404) from e  # what the stream refuses here is a product it has not pinned
    return Response(status_code=204)
