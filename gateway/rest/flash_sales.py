"""`/livestreams/{id}/flash-sales`: time-limited offers on a pinned product.

The database holds the truth (`persistence/flash_sales.py`: the cap, the
per-customer limit and the end time are enforced there, atomically, by
`POST /orders`). The stream's actor announces the sale to viewers
(`flash_sale_started`), shows its remaining quantity as it sells
(`flash_sale_updated`, coalesced) and ends it by itself at `endsAt` or when
sold out (`flash_sale_ended`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.commands import EndFlashSale, StartFlashSale
from core.money import MoneyError, MoneyIn, format_minor, to_minor
from core.results import Result
from gateway.context import GatewayContext
from gateway.errors import ApiError
from gateway.rest.deps import Admin, Ctx, Page
from gateway.rest.documents import DocumentOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.refusals import api_error
from gateway.rest.types import DateTimeIn, one_of
from gateway.services.inputs import Integral
from gateway.services.orders import sale_wire
from gateway.services.stream_commands import answer_within, not_yet_stored
from runtime.clock import iso, now, now_iso

router = APIRouter(prefix="/livestreams", tags=["flash sales"], route_class=ExactJsonRoute)

ID = r"^[0-9a-f]{24}$"
StreamIdPath = Annotated[str, Path(pattern=ID, description="24 hex characters")]
SaleIdPath = Annotated[str, Path(pattern=ID, description="24 hex characters")]
MAX_DURATION_S = 24 * 3600


class FlashSaleIn(BaseModel):
    """Exactly one of `endsAt` (RFC 3339 with an offset, in the future, within
    24 hours) and `durationSeconds` (stated in the schema as `oneOf`)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=one_of("endsAt", "durationSeconds"))
    productId: Annotated[str, Field(pattern=ID)]
    price: MoneyIn
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000), Integral]
    perCustomerLimit: Annotated[int, Field(strict=True, ge=1, le=1_000_000), Integral] = 1
    endsAt: DateTimeIn | None = None
    durationSeconds: Annotated[int, Field(strict=True, ge=5, le=MAX_DURATION_S), Integral] | None = None

    @model_validator(mode="after")
    def _one_end(self) -> FlashSaleIn:
        if (self.endsAt is None) == (self.durationSeconds is None):
            raise ValueError("send either 'endsAt' or 'durationSeconds'")
        return self


class FlashSaleOut(DocumentOut):
    saleId: str
    streamId: str
    productId: str
    productName: str
    price: str
    currency: str
    quantity: int
    remaining: int
    perCustomerLimit: int
    startsAt: str
    endsAt: str
    status: str = Field(description="active, sold_out or ended")
    endedReason: str | None
    version: int


def sale_out(doc: dict[str, Any]) -> FlashSaleOut:
    status, reason = doc["status"], doc.get("endedReason")
    if status == "active":
        if int(doc["remaining"]) <= 0:
            status, reason = "sold_out", "sold_out"
        elif doc["endsAt"] <= now_iso():
            status, reason = "ended", "time"
    return FlashSaleOut(
        id=doc["_id"],
        saleId=doc["_id"],
        streamId=doc["streamId"],
        productId=doc["productId"],
        productName=doc.get("productName", ""),
        price=format_minor(doc["priceMinor"], doc["currency"]),
        currency=doc["currency"],
        quantity=doc["quantity"],
        remaining=doc["remaining"],
        perCustomerLimit=doc["perCustomerLimit"],
        startsAt=doc["startsAt"],
        endsAt=doc["endsAt"],
        status=status,
        endedReason=reason,
        version=doc["version"],
    )


@router.post("/{stream_id}/flash-sales", status_code=201, response_model=FlashSaleOut)
async def start_flash_sale(stream_id: StreamIdPath, body: FlashSaleIn, admin: Admin, ctx: Ctx) -> FlashSaleOut:
    """Start a flash sale on a product pinned in this live stream (admin).
    409 if the stream is not live, the product is not pinned, it already has a
    running sale here, the stock is below the sale quantity, or `endsAt` is not
    within the next 24 hours when the request arrives (the document states the
    shape of a date-time; whether it is in the future depends on the clock)."""
    if await ctx.streams.get(stream_id) is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    relay = ctx.directory.relay(stream_id)
    if relay is None:
        raise ApiError(409, "The stream is not live: start it first")
    product = await ctx.products.get(body.productId)
    if product is None:
        raise ApiError(404, f"Product {body.productId} does not exist")
    if int(product["stock"]) < body.quantity:
        raise ApiError(409, f"Only {product['stock']} in stock: a sale of {body.quantity} could not be honoured")
    if await ctx.flash_sales.running_for(stream_id, body.productId) is not None:
        raise ApiError(409, "This product has a running flash sale in this stream: end it first")
    try:
        price_minor = to_minor(body.price, product["currency"])
    except MoneyError as e:  # valid in the shop currency, not in the one this product was priced in
        raise ApiError(409, f"This product is priced in {product['currency']}: {e}") from e
    ends = body.endsAt.astimezone(UTC) if body.endsAt else now() + timedelta(seconds=body.durationSeconds or 0)
    if ends <= now():
        raise ApiError(409, "'endsAt' has passed: a sale ends in the future")
    if ends > now() + timedelta(seconds=MAX_DURATION_S):
        raise ApiError(409, "A flash sale lasts at most 24 hours: 'endsAt' is too far ahead")
    sale = await ctx.flash_sales.create(
        stream_id=stream_id,
        product_id=body.productId,
        product_name=product["name"],
        price_minor=price_minor,
        currency=product["currency"],
        quantity=body.quantity,
        per_customer_limit=body.perCustomerLimit,
        ends_at=iso(ends),
        created_by=admin.user_id,
    )
    # The stream checks that the product is pinned (its own state, in command order).
    answer = relay.submit(StartFlashSale(sale_wire(sale)))
    result = await answer_within(answer)
    if result is None:  # still queued: the stream decides later; a sale it then refuses is discarded then
        answer.add_done_callback(lambda f: _discard_if_refused(ctx, sale["_id"], f))
        raise api_error(not_yet_stored())
    if not result.ok:
        await ctx.flash_sales.discard(sale["_id"])
        raise ApiError(409, f"The stream refused the sale: {result.error}")
    return sale_out(sale)


def _discard_if_refused(ctx: GatewayContext, sale_id: str, answer: asyncio.Future[Result]) -> None:
    """A sale the stream refused after its caller stopped waiting is discarded, as if refused at once."""
    if not answer.cancelled() and not answer.result().ok:
        task = asyncio.ensure_future(ctx.flash_sales.discard(sale_id))
        _DISCARDING.add(task)
        task.add_done_callback(_DISCARDING.discard)


_DISCARDING: set[asyncio.Task[Any]] = set()  # held until done (the loop keeps only weak references to tasks)


@router.get("/{stream_id}/flash-sales", response_model=list[FlashSaleOut])
async def list_flash_sales(stream_id: StreamIdPath, ctx: Ctx, page: Page, response: Response) -> list[FlashSaleOut]:
    """The stream's flash sales, newest first, with their stored remaining quantity. Paged."""
    if await ctx.streams.get(stream_id) is None:
        raise ApiError(404, f"Stream {stream_id} does not exist")
    docs = await ctx.flash_sales.list(stream_id, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.flash_sales.count(stream_id))
    return [sale_out(d) for d in docs]


@router.get("/{stream_id}/flash-sales/{sale_id}", response_model=FlashSaleOut)
async def get_flash_sale(stream_id: StreamIdPath, sale_id: SaleIdPath, ctx: Ctx) -> FlashSaleOut:
    sale = await ctx.flash_sales.get(sale_id)
    if sale is None or sale["streamId"] != stream_id:
        raise ApiError(404, f"Flash sale {sale_id} does not exist in stream {stream_id}")
    return sale_out(sale)


@router.post("/{stream_id}/flash-sales/{sale_id}/end", response_model=FlashSaleOut)
async def end_flash_sale(stream_id: StreamIdPath, sale_id: SaleIdPath, admin: Admin, ctx: Ctx) -> FlashSaleOut:
    """End a sale now (admin); viewers get `flash_sale_ended`. Ending an ended sale is a no-op."""
    sale = await ctx.flash_sales.get(sale_id)
    if sale is None or sale["streamId"] != stream_id:
        raise ApiError(404, f"Flash sale {sale_id} does not exist in stream {stream_id}")
    ended = await ctx.flash_sales.end(sale_id, "admin") or await ctx.flash_sales.get(sale_id)
    relay = ctx.directory.relay(stream_id)
    if relay is not None:  # the sale is ended in the database already; the stream is told, and applies it once
        await answer_within(relay.submit(EndFlashSale(sale_id, "admin")))
    assert ended is not None
    return sale_out(ended)
