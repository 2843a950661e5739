"""`/products`, `/orders`, `/payments`: the shop behind the live streams.

Money is stored in integer minor units with the shop's currency
(`SHOP_CURRENCY`) and shown as exact decimal strings; request amounts are
decimal strings (or whole numbers), never floats (see `core/money.py`).
What the server decides (prices, totals, stock taken, owners, statuses of a
new order or payment) is never read from a request body: unknown fields are
ignored.

Statuses: 422 when a request is invalid in itself, which is what the OpenAPI
document states (types, bounds, patterns, "one of" rules); 409 when it is
well-formed but conflicts with what is stored (stock, an order's total, a
flash sale of another product or stream, an Idempotency-Key used for another
request).

Who sees what: products are public; orders and payments belong to the
customer who placed them and to admins. Another customer's order or payment
answers 404, as if it did not exist. Ordering and paying need an account.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

import structlog
from bson import ObjectId
from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.commands import FlashSaleChanged
from core import money
from core import order_rules as rules
from gateway.security.credentials import Claims
from gateway.context import GatewayContext
from gateway.rest.deps import Admin, Ctx, Page, User
from gateway.errors import ApiError
from gateway.security.identity import enforce
from core.money import CurrencyIn, MoneyError, MoneyIn, format_minor, to_minor
from gateway.services.payments import CASH_ON_DELIVERY
from gateway.rest.types import HTTP_URL_SCHEMA, NOT_BLANK_SCHEMA, HttpUrl, Integral, NotBlank, not_both
from persistence.orders import CREATING, DuplicateIdempotencyKey
from persistence.payments import CANCELLED, CONFIRMED, FAILED, PENDING, PaymentExists
from runtime.clock import now_iso

log = structlog.get_logger("gateway.commerce")


products = APIRouter(prefix="/products", tags=["products"])
orders = APIRouter(prefix="/orders", tags=["orders"])
payments = APIRouter(prefix="/payments", tags=["payments"])

ID_PATTERN = r"^[0-9a-f]{24}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
ProductIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]
OrderIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]
PaymentIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
           description="A retried request with the same key (from the same account) has its first effect only"),
]
Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]
Category = Annotated[str, Field(min_length=1, max_length=80, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]
ImageUrl = Annotated[str, Field(max_length=2000, json_schema_extra=HTTP_URL_SCHEMA), HttpUrl]
MAX_STOCK = 10_000_000
Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_STOCK), Integral]


# ---------------------------------------------------------------- products


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    price: MoneyIn
    stock: Stock = 0
    images: Annotated[list[ImageUrl], Field(max_length=10)] = []
    category: Category | None = None


class ProductUpdate(BaseModel):
    """Every field optional: only those sent change. `stock` sets the level;
    `stockDelta` adds to it atomically (negative to remove, refused with 409 if
    that would go below zero); send one or the other."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=not_both("stock", "stockDelta"))
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    price: MoneyIn | None = None
    stock: Stock | None = None
    stockDelta: Annotated[int, Field(strict=True, ge=-MAX_STOCK, le=MAX_STOCK), Integral] | None = None
    images: Annotated[list[ImageUrl], Field(max_length=10)] | None = None
    category: Category | None = None

    @model_validator(mode="after")
    def _level_or_change(self) -> "ProductUpdate":
        if self.stock is not None and self.stockDelta is not None:
            raise ValueError("send either 'stock' (a level) or 'stockDelta' (a change), not both")
        return self


class ProductOut(BaseModel):
    id: str
    name: str
    description: str
    price: str = Field(description="exact decimal string in `currency`")
    priceMinor: int
    currency: str
    stock: int
    inStock: bool
    images: list[str]
    image: str | None
    category: str | None
    createdAt: str
    updatedAt: str


def product_out(doc: dict[str, Any]) -> ProductOut:
    images = list(doc.get("images") or [])
    return ProductOut(
        id=doc["_id"], name=doc["name"], description=doc.get("description", ""),
        price=format_minor(int(doc["priceMinor"]), doc["currency"]), priceMinor=int(doc["priceMinor"]),
        currency=doc["currency"], stock=int(doc["stock"]), inStock=int(doc["stock"]) > 0, images=images,
        image=images[0] if images else None, category=doc.get("category"),
        createdAt=doc["createdAt"], updatedAt=doc["updatedAt"])


def minor(ctx: GatewayContext, amount: Any) -> int:
    try:
        return to_minor(amount, ctx.settings.shop_currency)
    except MoneyError as e:
        raise ApiError(422, f"Invalid amount: {e}") from e


@products.post("", status_code=201, response_model=ProductOut)
async def create_product(body: ProductIn, admin: Admin, ctx: Ctx) -> ProductOut:
    """Add a product to the catalogue (admin). The currency is the shop's."""
    doc = await ctx.products.create(
        name=body.name, description=body.description, price_minor=minor(ctx, body.price),
        currency=ctx.settings.shop_currency, stock=body.stock, images=body.images, category=body.category)
    return product_out(doc)


@products.get("", response_model=list[ProductOut])
async def list_products(ctx: Ctx, page: Page, response: Response,
                        category: Annotated[str | None, Query(max_length=80)] = None) -> list[ProductOut]:
    """The catalogue, newest first. Paged: `?page=&limit=`; total in `X-Total-Count`."""
    docs = await ctx.products.list(skip=page.skip, limit=page.limit, category=category)
    response.headers["X-Total-Count"] = str(await ctx.products.count(category))
    return [product_out(d) for d in docs]


@products.get("/{product_id}", response_model=ProductOut)
async def get_product(product_id: ProductIdPath, ctx: Ctx) -> ProductOut:
    doc = await ctx.products.get(product_id)
    if doc is None:
        raise ApiError(404, f"Product {product_id} does not exist")
    return product_out(doc)


@products.put("/{product_id}", response_model=ProductOut)
async def update_product(product_id: ProductIdPath, body: ProductUpdate, admin: Admin, ctx: Ctx) -> ProductOut:
    """Change a product (admin). Pinned copies in live streams keep the values
    they were pinned with until pinned again."""
    fields: dict[str, Any] = {}
    for key in ("name", "description", "images", "category", "stock"):
        value = getattr(body, key)
        if value is not None:
            fields[key] = value
    if body.price is not None:
        fields["priceMinor"] = minor(ctx, body.price)
    if await ctx.products.get(product_id) is None:
        raise ApiError(404, f"Product {product_id} does not exist")
    doc = await ctx.products.update(product_id, fields, body.stockDelta or 0)
    if doc is None:
        if await ctx.products.get(product_id) is None:
            raise ApiError(404, f"Product {product_id} does not exist")
        raise ApiError(409, "Not enough stock to remove that many units")
    return product_out(doc)


@products.delete("/{product_id}", status_code=204)
async def delete_product(product_id: ProductIdPath, admin: Admin, ctx: Ctx) -> Response:
    """Remove a product from the catalogue (admin). Orders keep their copy of it."""
    if not await ctx.products.delete(product_id):
        raise ApiError(404, f"Product {product_id} does not exist")
    return Response(status_code=204)


# ---------------------------------------------------------------- orders


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
    unitPrice: str
    lineTotal: str
    saleId: str | None


class OrderOut(BaseModel):
    id: str
    userId: str
    items: list[OrderItemOut]
    units: int
    currency: str
    total: str
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
        id=doc["_id"], userId=doc["userId"],
        items=[OrderItemOut(productId=i["productId"], name=i["name"], image=i.get("image"), quantity=i["quantity"],
                            unitPrice=format_minor(i["unitPriceMinor"], cur), lineTotal=format_minor(i["lineTotalMinor"], cur),
                            saleId=i.get("saleId")) for i in doc["items"]],
        units=int(doc["units"]), currency=cur, total=format_minor(doc["totalMinor"], cur), totalMinor=doc["totalMinor"],
        status=doc["status"], paymentStatus=doc.get("paymentStatus", "unpaid"), paymentId=doc.get("paymentId"),
        streamId=doc.get("streamId"), note=doc.get("note"), shippingAddress=doc.get("shippingAddress"),
        createdAt=doc["createdAt"], updatedAt=doc["updatedAt"])


def request_hash(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def sale_wire(sale: dict[str, Any]) -> dict[str, Any]:
    """A stored sale as the stream shows it (`flash_sale_*` events)."""
    return {"saleId": sale["_id"], "productId": sale["productId"], "productName": sale.get("productName", ""),
            "price": format_minor(sale["priceMinor"], sale["currency"]), "currency": sale["currency"],
            "quantity": sale["quantity"], "remaining": sale["remaining"],
            "perCustomerLimit": sale["perCustomerLimit"], "endsAt": sale["endsAt"], "version": sale["version"]}


def tell_stream(ctx: GatewayContext, stream_id: str, sale: dict[str, Any]) -> None:
    """Best effort: the stream shows the new remaining quantity (coalesced)."""
    relay = ctx.directory.relay(stream_id)
    if relay is not None:
        relay.submit(FlashSaleChanged(sale_wire(sale)))


def sale_refusal(sale: dict[str, Any], ctx: GatewayContext) -> str | None:
    """Why this sale cannot sell now, or None if it can (the database has the last word)."""
    if sale["status"] != "active":
        return "this flash sale has ended"
    if sale["endsAt"] <= now_iso():
        return "this flash sale is over"
    if int(sale["remaining"]) <= 0:
        return "this flash sale is sold out"
    if sale["streamId"] not in ctx.directory.live:
        return "this flash sale has ended with its stream"
    return None


def replayed(existing: dict[str, Any], digest: str, response: Response) -> OrderOut:
    if existing.get("requestHash") != digest:
        raise ApiError(409, "This Idempotency-Key was used for a different order: use a new key")
    if existing["status"] == CREATING:
        raise ApiError(409, "An order with this Idempotency-Key is being created: retry shortly",
                       headers={"Retry-After": "1"})
    response.headers["Idempotent-Replayed"] = "true"
    return order_out(existing)


def visible(doc: dict[str, Any] | None, claims: Claims, what: str, ident: str) -> dict[str, Any]:
    """The document if the caller may see it; otherwise 404, whether it exists or not."""
    if doc is None or (not claims.is_admin and doc.get("userId") != claims.user_id) or doc.get("status") == CREATING:
        raise ApiError(404, f"{what} {ident} does not exist")
    return doc


@orders.post("", status_code=201, response_model=OrderOut)
async def create_order(body: OrderIn, user: User, ctx: Ctx, response: Response,
                       idempotency_key: IdempotencyKey = None) -> OrderOut:
    """Order products (logged-in customers). Stock is taken atomically: when
    more customers than items race, the extra ones get 409 and stock never goes
    below zero. A line with `saleId` buys at that flash sale's price, within its
    cap, its per-customer limit and its end time (409 otherwise). With an
    `Idempotency-Key`, a retry returns the first order (`Idempotent-Replayed: true`).
    At most `ORDER_RATE_PER_MINUTE` orders a minute per account (429)."""
    enforce(ctx.order_limit, user.user_id, "orders")
    currency = ctx.settings.shop_currency
    digest = request_hash(body)
    idem = f"{user.user_id}:{idempotency_key}" if idempotency_key else None
    if idem is not None:
        existing = await ctx.orders.by_idempotency_key(idem)
        if existing is not None:
            return replayed(existing, digest, response)
    if body.streamId is not None and await ctx.streams.get(body.streamId) is None:
        raise ApiError(404, f"Stream {body.streamId} does not exist")

    lines: list[dict[str, Any]] = []
    sale_stream: str | None = None
    for item in body.items:
        product = await ctx.products.get(item.productId)
        if product is None:
            raise ApiError(404, f"Product {item.productId} does not exist")
        if product["currency"] != currency:
            raise ApiError(409, f"Product {item.productId} is priced in {product['currency']}, the shop sells in {currency}")
        unit = int(product["priceMinor"])
        sale: dict[str, Any] | None = None
        if item.saleId is not None:
            sale = await ctx.flash_sales.get(item.saleId)
            if sale is None:
                raise ApiError(404, f"Flash sale {item.saleId} does not exist")
            if sale["productId"] != item.productId:
                raise ApiError(409, f"Flash sale {item.saleId} is for another product")
            if body.streamId is not None and sale["streamId"] != body.streamId:
                raise ApiError(409, f"Flash sale {item.saleId} belongs to another stream")
            why = sale_refusal(sale, ctx)
            if why:
                raise ApiError(409, why[0].upper() + why[1:])
            unit = int(sale["priceMinor"])
            sale_stream = sale["streamId"]
        images = product.get("images") or []
        lines.append({"productId": item.productId, "name": product["name"], "image": images[0] if images else None,
                      "quantity": item.quantity, "unitPriceMinor": unit, "lineTotalMinor": unit * item.quantity,
                      "saleId": item.saleId, "salePerCustomerLimit": sale["perCustomerLimit"] if sale else None})

    now = now_iso()
    order_id = str(ObjectId())
    doc: dict[str, Any] = {
        "_id": order_id, "userId": user.user_id, "items": lines, "units": sum(l["quantity"] for l in lines),
        "currency": currency, "totalMinor": sum(l["lineTotalMinor"] for l in lines), "status": CREATING,
        "taken": 0, "paymentStatus": "unpaid", "paymentId": None, "streamId": body.streamId or sale_stream,
        "note": body.note, "shippingAddress": body.shippingAddress, "requestHash": digest,
        "createdAt": now, "updatedAt": now,
    }
    if idem is not None:
        doc["idemKey"] = idem
    try:
        await ctx.orders.insert(doc)
    except DuplicateIdempotencyKey:
        existing = await ctx.orders.by_idempotency_key(idem or "")
        if existing is None:
            raise ApiError(409, "A concurrent order with this Idempotency-Key failed: retry", headers={"Retry-After": "1"})
        return replayed(existing, digest, response)

    undo: list[Any] = []
    sales_after: dict[str, dict[str, Any]] = {}
    try:
        for n, line in enumerate(lines, start=1):
            pid, qty, sale_id = line["productId"], line["quantity"], line["saleId"]
            if sale_id is not None:
                limit = int(line["salePerCustomerLimit"])
                if not await ctx.flash_sales.claim(sale_id, user.user_id, qty, limit):
                    had = await ctx.flash_sales.claimed(sale_id, user.user_id)
                    raise ApiError(409, f"This flash sale allows {limit} per customer; you have {had}")
                undo.append(lambda s=sale_id, q=qty: ctx.flash_sales.unclaim(s, user.user_id, q))
                after = await ctx.flash_sales.take(sale_id, qty)
                if after is None:
                    raise ApiError(409, "This flash sale is sold out, has fewer units left than asked, or is over")
                undo.append(lambda s=sale_id, q=qty: ctx.flash_sales.give_back(s, q))
                sales_after[sale_id] = after
            if await ctx.products.take_stock(pid, qty) is None:
                current = await ctx.products.get(pid)
                left = int(current["stock"]) if current else 0
                raise ApiError(409, f"Only {left} of {line['name']!r} left: order fewer")
            undo.append(lambda p=pid, q=qty: ctx.products.return_stock(p, q))
            await ctx.orders.progress(order_id, n)
        placed = await ctx.orders.transition(order_id, CREATING, rules.PENDING)
        assert placed is not None
    except BaseException:
        for step in reversed(undo):
            try:
                await step()
            except Exception:
                log.exception("order_undo_failed", order_id=order_id)
        await ctx.orders.delete_creating(order_id)
        raise
    for sale in sales_after.values():
        tell_stream(ctx, sale["streamId"], sale)
    return order_out(placed)


@orders.get("", response_model=list[OrderOut])
async def list_orders(
    user: User, ctx: Ctx, page: Page, response: Response,
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


@orders.get("/{order_id}", response_model=OrderOut)
async def get_order(order_id: OrderIdPath, user: User, ctx: Ctx) -> OrderOut:
    return order_out(visible(await ctx.orders.get(order_id), user, "Order", order_id))


async def change_status(ctx: GatewayContext, user: Claims, order_id: str, wanted: str) -> dict[str, Any]:
    order = visible(await ctx.orders.get(order_id), user, "Order", order_id)
    try:
        rules.check_transition(order["status"], wanted, is_admin=user.is_admin,
                               payment_status=order.get("paymentStatus", "unpaid"))
    except rules.TransitionRefused as e:
        raise ApiError(e.status, str(e)) from e
    updated = await ctx.orders.transition(order_id, order["status"], wanted)
    if updated is None:
        raise ApiError(409, "The order changed meanwhile: reload it and try again")
    payment_id = updated.get("paymentId")
    if wanted == rules.CANCELLED:
        for line in updated["items"]:
            await ctx.products.return_stock(line["productId"], int(line["quantity"]))
        if payment_id and await ctx.payments.transition(payment_id, PENDING, CANCELLED):
            updated = await ctx.orders.set_payment(order_id, "unpaid", None, only_if_payment=payment_id) or updated
    elif wanted == rules.DELIVERED and payment_id:
        payment = await ctx.payments.get(payment_id)
        if payment and payment["method"] == CASH_ON_DELIVERY and payment["status"] == PENDING:
            if await ctx.payments.transition(payment_id, PENDING, CONFIRMED, {"confirmedBy": "delivery"}):
                updated = await ctx.orders.set_payment(order_id, "paid", payment_id, only_if_payment=payment_id) or updated
    return updated


@orders.patch("/{order_id}", response_model=OrderOut)
async def update_order_status(order_id: OrderIdPath, body: StatusIn, user: User, ctx: Ctx) -> OrderOut:
    """Move an order along its allowed transitions (admins), or cancel it
    (its customer, while `pending`). Cancelling returns its stock to the products;
    409 for a move that is not allowed, with the allowed ones in the message."""
    return order_out(await change_status(ctx, user, order_id, body.status))


@orders.post("/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(order_id: OrderIdPath, user: User, ctx: Ctx) -> OrderOut:
    """Cancel (its customer while `pending`, admins while `pending` or `confirmed`)."""
    return order_out(await change_status(ctx, user, order_id, rules.CANCELLED))


# ---------------------------------------------------------------- payments


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `status`, `userId` ... are ignored
    method: Literal["cash_on_delivery", "bank_transfer"]
    amount: MoneyIn = Field(description="must equal the order's total")
    currency: CurrencyIn | None = None


class PaymentOut(BaseModel):
    id: str
    orderId: str
    userId: str
    provider: str
    method: str
    amount: str
    amountMinor: int
    currency: str
    status: str = Field(description="pending, confirmed, failed or cancelled")
    reference: str
    instructions: str
    createdAt: str
    updatedAt: str


def payment_out(doc: dict[str, Any]) -> PaymentOut:
    return PaymentOut(
        id=doc["_id"], orderId=doc["orderId"], userId=doc["userId"], provider=doc["provider"], method=doc["method"],
        amount=format_minor(doc["amountMinor"], doc["currency"]), amountMinor=doc["amountMinor"],
        currency=doc["currency"], status=doc["status"], reference=doc.get("reference", ""),
        instructions=doc.get("instructions", ""), createdAt=doc["createdAt"], updatedAt=doc["updatedAt"])


def order_payment_status(payment_status: str) -> str:
    return {CONFIRMED: "paid", PENDING: "pending"}.get(payment_status, "unpaid")


async def replay_payment(ctx: GatewayContext, existing: dict[str, Any], order_id: str, method: str,
                         amount_minor: int, response: Response) -> PaymentOut:
    if existing["orderId"] != order_id or existing["method"] != method or existing["amountMinor"] != amount_minor:
        raise ApiError(409, "This Idempotency-Key was used for a different payment: use a new key")
    if existing["status"] in (PENDING, CONFIRMED):  # finish what a crashed first attempt may have left undone
        await ctx.orders.set_payment(order_id, order_payment_status(existing["status"]), existing["_id"])
    response.headers["Idempotent-Replayed"] = "true"
    return payment_out(existing)


@orders.post("/{order_id}/payments", status_code=201, response_model=PaymentOut)
async def pay_order(order_id: OrderIdPath, body: PaymentIn, user: User, ctx: Ctx, response: Response,
                    idempotency_key: IdempotencyKey = None) -> PaymentOut:
    """Pay an order (its customer, or an admin on their behalf) through the
    payment provider. The amount must equal the order's total (409). An order
    has at most one live payment: paying again answers 409 (or, with the same
    `Idempotency-Key`, the first payment)."""
    order = visible(await ctx.orders.get(order_id), user, "Order", order_id)
    # The body is in the shop currency (validated); an order placed in another one (before the shop changed
    # its currency) conflicts with it.
    if body.currency is not None and body.currency != order["currency"]:
        raise ApiError(409, f"This order is in {order['currency']}")
    try:
        amount_minor = to_minor(body.amount, order["currency"])
    except MoneyError as e:
        raise ApiError(409, f"This order is in {order['currency']}: {e}") from e
    idem = f"{user.user_id}:{idempotency_key}" if idempotency_key else None
    if idem is not None:
        existing = await ctx.payments.by_idempotency_key(idem)
        if existing is not None:
            return await replay_payment(ctx, existing, order_id, body.method, amount_minor, response)
    if order["status"] not in rules.PAYABLE:
        raise ApiError(409, f"This order is {order['status']} and cannot be paid")
    if order.get("paymentStatus") == "paid":
        raise ApiError(409, "This order is paid already")
    live = await ctx.payments.live_for_order(order_id)
    if live is not None:
        raise ApiError(409, f"This order has a {live['status']} payment already ({live['_id']})")
    if amount_minor != order["totalMinor"]:
        total = format_minor(order["totalMinor"], order["currency"])
        raise ApiError(409, f"The amount must match the order total: {total} {order['currency']}")
    provider = ctx.payment_provider
    if body.method not in provider.methods:
        raise ApiError(422, f"Payment method {body.method} is not offered")
    opened = await provider.open(order, body.method, amount_minor, order["currency"], idem or order_id)
    now = now_iso()
    doc: dict[str, Any] = {
        "_id": str(ObjectId()), "orderId": order_id, "userId": order["userId"], "paidBy": user.user_id,
        "provider": provider.name, "method": body.method, "amountMinor": amount_minor, "currency": order["currency"],
        "status": opened.status, "reference": opened.reference, "instructions": opened.instructions,
        "createdAt": now, "updatedAt": now,
    }
    if idem is not None:
        doc["idemKey"] = idem
    try:
        await ctx.payments.insert(doc)
    except PaymentExists:
        existing = await ctx.payments.by_idempotency_key(idem) if idem else None
        if existing is not None:
            return await replay_payment(ctx, existing, order_id, body.method, amount_minor, response)
        raise ApiError(409, "This order has a payment already")
    await ctx.orders.set_payment(order_id, order_payment_status(opened.status), doc["_id"])
    return payment_out(doc)


@orders.get("/{order_id}/payments", response_model=list[PaymentOut])
async def list_order_payments(order_id: OrderIdPath, user: User, ctx: Ctx, page: Page,
                              response: Response) -> list[PaymentOut]:
    """Every payment of one order (its customer, admins), newest first, paged."""
    visible(await ctx.orders.get(order_id), user, "Order", order_id)
    query = {"orderId": order_id}
    docs = await ctx.payments.list(query, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.payments.count(query))
    return [payment_out(d) for d in docs]


@payments.get("", response_model=list[PaymentOut])
async def list_payments(
    user: User, ctx: Ctx, page: Page, response: Response,
    status: Annotated[Literal["pending", "confirmed", "failed", "cancelled"] | None, Query()] = None,
) -> list[PaymentOut]:
    """Admins: every payment; customers: their own. Newest first, paged."""
    query: dict[str, Any] = {} if user.is_admin else {"userId": user.user_id}
    if status:
        query["status"] = status
    docs = await ctx.payments.list(query, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.payments.count(query))
    return [payment_out(d) for d in docs]


@payments.get("/{payment_id}", response_model=PaymentOut)
async def get_payment(payment_id: PaymentIdPath, user: User, ctx: Ctx) -> PaymentOut:
    return payment_out(visible(await ctx.payments.get(payment_id), user, "Payment", payment_id))


async def settle(ctx: GatewayContext, payment_id: str, to_status: str, admin: Claims) -> dict[str, Any]:
    payment = await ctx.payments.get(payment_id)
    if payment is None:
        raise ApiError(404, f"Payment {payment_id} does not exist")
    if payment["status"] != PENDING:
        raise ApiError(409, f"This payment is {payment['status']}: only pending payments can be settled")
    done = await ctx.payments.transition(payment_id, PENDING, to_status, {"settledBy": admin.user_id})
    if done is None:
        raise ApiError(409, "The payment changed meanwhile: reload it")
    await ctx.orders.set_payment(payment["orderId"], order_payment_status(to_status),
                                 payment_id if to_status == CONFIRMED else None, only_if_payment=payment_id)
    return done


@payments.post("/{payment_id}/confirm", response_model=PaymentOut)
async def confirm_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money arrived (admin): the payment is confirmed and its order paid."""
    return payment_out(await settle(ctx, payment_id, CONFIRMED, admin))


@payments.post("/{payment_id}/reject", response_model=PaymentOut)
async def reject_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money did not arrive (admin): the payment fails and the order can be paid again."""
    return payment_out(await settle(ctx, payment_id, FAILED, admin))


__all__ = ["products", "orders", "payments", "sale_wire", "tell_stream", "product_out"]
