"""`/orders`: customers order products (from a stream, at a flash sale's
price); admins move orders along. The order saga and its guarantees
(idempotency with `Idempotency-Key`, all or nothing, durable before answered)
are the order service's (`gateway/services/orders.py`): these routes parse,
call it, and shape its answer.

Statuses: 422 when a request is invalid in itself; 409 when it is well-formed
but conflicts with what is stored (stock, a flash sale of another product or
stream, an Idempotency-Key used for another request, a total of ten billion
units or more). Money is answered as exact JSON numbers beside its minor
units (`gateway/rest/documents.py`). Orders belong to the
customer who placed them and to admins: another customer's order answers 404,
as if it did not exist. Ordering needs an account.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core import order_rules as rules
from core.money import money_number
from gateway.rest.deps import Ctx, Page, User
from gateway.rest.documents import DocumentOut, MoneyOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.types import ID_PATTERN, Id, IdempotencyKey
from gateway.security.identity import enforce
from gateway.services.inputs import Integral
from gateway.services.orders import OrderLine, OrderRequest

router = APIRouter(prefix="/orders", tags=["orders"], route_class=ExactJsonRoute)

OrderIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]


class OrderItemIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a `price` here is ignored: the server prices
    productId: Id
    quantity: Annotated[int, Field(strict=True, ge=1, le=1000), Integral]
    saleId: Id | None = Field(None, description="buy at this flash sale's price (from `flash_sale_started`)")


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `total`, `userId`, `status` ... are ignored
    items: Annotated[list[OrderItemIn], Field(min_length=1, max_length=50)]
    streamId: Id | None = Field(None, description="the stream the customer is watching (attribution)")
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None
    shippingAddress: Annotated[str, StringConstraints(max_length=1000)] | None = None


class OrderItemOut(BaseModel):
    productId: str
    name: str
    image: str | None
    quantity: int
    unitPrice: MoneyOut
    unitPriceMinor: int
    lineTotal: MoneyOut
    lineTotalMinor: int
    saleId: str | None


class OrderOut(DocumentOut):
    userId: str
    items: list[OrderItemOut]
    units: int
    currency: str
    total: MoneyOut
    totalMinor: int
    status: str
    paymentStatus: str = Field(description="unpaid, pending (a payment awaits confirmation) or paid")
    paymentId: str | None
    streamId: str | None
    note: str | None
    shippingAddress: str | None
    createdAt: str
    updatedAt: str


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["pending", "confirmed", "shipped", "delivered", "cancelled"]


def order_out(doc: dict[str, Any]) -> OrderOut:
    cur = doc["currency"]
    return OrderOut(
        id=doc["_id"],
        userId=doc["userId"],
        items=[
            OrderItemOut(
                productId=i["productId"],
                name=i["name"],
                image=i.get("image"),
                quantity=i["quantity"],
                unitPrice=money_number(i["unitPriceMinor"], cur),
                unitPriceMinor=i["unitPriceMinor"],
                lineTotal=money_number(i["lineTotalMinor"], cur),
                lineTotalMinor=i["lineTotalMinor"],
                saleId=i.get("saleId"),
            )
            for i in doc["items"]
        ],
        units=int(doc["units"]),
        currency=cur,
        total=money_number(doc["totalMinor"], cur),
        totalMinor=doc["totalMinor"],
        status=doc["status"],
        paymentStatus=doc.get("paymentStatus", "unpaid"),
        paymentId=doc.get("paymentId"),
        streamId=doc.get("streamId"),
        note=doc.get("note"),
        shippingAddress=doc.get("shippingAddress"),
        createdAt=doc["createdAt"],
        updatedAt=doc["updatedAt"],
    )


def order_request(body: OrderIn) -> OrderRequest:
    return OrderRequest(
        items=tuple(OrderLine(i.productId, i.quantity, i.saleId) for i in body.items),
        stream_id=body.streamId,
        note=body.note,
        shipping_address=body.shippingAddress,
    )


@router.post("", status_code=201, response_model=OrderOut)
async def create_order(
    body: OrderIn, user: User, ctx: Ctx, response: Response, idempotency_key: IdempotencyKey = None
) -> OrderOut:
    """Order products (logged-in customers). Stock is taken atomically: when
    more customers than items race, the extra ones get 409 and stock never goes
    below zero. A line with `saleId` buys at that flash sale's price, within its
    cap, its per-customer limit and its end time (409 otherwise). With an
    `Idempotency-Key`, a retry returns the first order (`Idempotent-Replayed: true`).
    At most `ORDER_RATE_PER_MINUTE` orders a minute per account (429)."""
    enforce(ctx.order_limit, user.user_id, "orders")
    placed = await ctx.order_service.place(user, order_request(body), idempotency_key)
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return order_out(placed.order)


@router.get("", response_model=list[OrderOut])
async def list_orders(
    user: User,
    ctx: Ctx,
    page: Page,
    response: Response,
    status: Annotated[Literal["pending", "confirmed", "shipped", "delivered", "cancelled"] | None, Query()] = None,
    streamId: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    userId: Annotated[str | None, Query(pattern=ID_PATTERN, description="admins only")] = None,
) -> list[OrderOut]:
    """Admins: every order (filter by `status`, `streamId`, `userId`). Customers:
    their own. Newest first, paged, total in `X-Total-Count`."""
    query: dict[str, Any] = {}
    if user.is_admin:
        if userId:
            query["userId"] = userId
    else:
        query["userId"] = user.user_id
    if status:
        query["status"] = status
    if streamId:
        query["streamId"] = streamId
    docs = await ctx.orders.list(query, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.orders.count(query))
    return [order_out(d) for d in docs]


@router.get("/{order_id}", response_model=OrderOut)
async def get_order(order_id: OrderIdPath, user: User, ctx: Ctx) -> OrderOut:
    return order_out(await ctx.order_service.get(user, order_id))


@router.patch("/{order_id}", response_model=OrderOut)
async def update_order_status(order_id: OrderIdPath, body: StatusIn, user: User, ctx: Ctx) -> OrderOut:
    """Move an order along its allowed transitions (admins), or cancel it
    (its customer, while `pending`). Cancelling returns its stock to the products;
    409 for a move that is not allowed, with the allowed ones in the message."""
    return order_out(await ctx.order_service.change_status(user, order_id, body.status))


@router.post("/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(order_id: OrderIdPath, user: User, ctx: Ctx) -> OrderOut:
    """Cancel (its customer while `pending`, admins while `pending` or `confirmed`)."""
    return order_out(await ctx.order_service.change_status(user, order_id, rules.CANCELLED))
