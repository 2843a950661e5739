"""Orders: placing one (the saga that takes stock and flash-sale units) and
moving one along its life. The rules of what may move where are
`core/order_rules.py`; this is the part that touches the stores.

Guarantees of `place`:

* **Idempotent with an idempotency key.** A key is the customer's
  (`<userId>:<key>`). A retry with the same key and the same request returns
  the first order (`replayed`), whatever happened to the first attempt's
  answer; the same key for a different request is refused (`conflict`); while
  the first attempt is still taking stock, `conflict` with `retry_after`.
  The key is claimed by inserting the order (as `creating`) before any stock
  is taken, so two concurrent requests with one key cannot both take stock.
* **All or nothing.** Stock (and flash-sale units and per-customer claims)
  is taken line by line, each atomically in the database; if any line cannot
  be had, everything taken so far is given back and the `creating` order
  deleted, so stock never goes below zero and nothing is held by a refused
  order. (A gateway that dies mid-saga leaves a `creating` order with its
  `taken` lines; it is never listed, and the order sweeper,
  `gateway/services/order_sweeper.py`, gives its stock back after
  `ORDER_CREATING_TIMEOUT_SECONDS`.)
* **Never swept in the middle, never given back twice.** The saga has a
  deadline (`saga_deadline_seconds`, half the sweeper's timeout in a gateway)
  after which it gives back what it took itself. Recording a line's progress
  and the final `creating` -> `pending` are conditional on the order still
  being `creating`; giving back on failure starts by deleting the `creating`
  order (conditionally). So if a sweeper claimed the order first, the saga
  fails cleanly (`conflict`, retry) and gives back only what it took after its
  last recorded progress; the sweeper gives back the recorded lines.
* **Durable before answered.** The order is `pending` in the database before
  `place` returns. Telling the stream a flash sale's new remaining quantity
  comes after and is best effort (the database has the truth).
* Prices, totals, owners and statuses come from the catalogue, the sale and
  the rules, never from the request.

Who sees an order: its customer and admins; anyone else is told it does not
exist (`not_found`), as is a `creating` order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from bson import ObjectId

from core import order_rules as rules
from core.commands import FlashSaleChanged
from core.money import format_minor, max_minor
from gateway.security.credentials import Claims
from gateway.services.errors import (
    CONFLICT,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    ServiceError,
)
from gateway.services.payments import CASH_ON_DELIVERY
from gateway.streams.live_directory import LiveDirectory
from persistence.flash_sales import FlashSaleStore
from persistence.orders import CREATING, HIDDEN, DuplicateIdempotencyKey, OrderStore
from persistence.payments import CANCELLED, CONFIRMED, PENDING, PaymentStore
from persistence.products import ProductStore, main_image
from persistence.streams import StreamStore
from runtime.clock import now_iso

log = structlog.get_logger("gateway.orders")


@dataclass(frozen=True)
class OrderLine:
    product_id: str
    quantity: int
    sale_id: str | None = None  # buy at this flash sale's price


@dataclass(frozen=True)
class OrderRequest:
    """What a customer asks for; everything else about the order is decided here."""

    items: tuple[OrderLine, ...]
    stream_id: str | None = None  # the stream the customer watches (attribution)
    note: str | None = None
    shipping_address: str | None = None

    def digest(self) -> str:
        """What makes two requests "the same" for an idempotency key. The JSON
        is the request body's own (as orders stored earlier were hashed)."""
        body = {
            "items": [{"productId": i.product_id, "quantity": i.quantity, "saleId": i.sale_id} for i in self.items],
            "streamId": self.stream_id,
            "note": self.note,
            "shippingAddress": self.shipping_address,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Placed:
    order: dict[str, Any]  # as stored
    replayed: bool  # the first order placed with this idempotency key, returned again


def sale_wire(sale: dict[str, Any]) -> dict[str, Any]:
    """A stored sale as the stream shows it (`flash_sale_*` events)."""
    return {
        "saleId": sale["_id"],
        "productId": sale["productId"],
        "productName": sale.get("productName", ""),
        "price": format_minor(sale["priceMinor"], sale["currency"]),
        "currency": sale["currency"],
        "quantity": sale["quantity"],
        "remaining": sale["remaining"],
        "perCustomerLimit": sale["perCustomerLimit"],
        "endsAt": sale["endsAt"],
        "version": sale["version"],
    }


def visible(doc: dict[str, Any] | None, caller: Claims, what: str, ident: str) -> dict[str, Any]:
    """The document if the caller may see it; otherwise `not_found`, whether it exists or not."""
    if doc is None or (not caller.is_admin and doc.get("userId") != caller.user_id) or doc.get("status") in HIDDEN:
        raise ServiceError(NOT_FOUND, f"{what} {ident} does not exist")
    return doc


def order_payment_status(payment_status: str) -> str:
    """An order's `paymentStatus` for the status of its payment."""
    return {CONFIRMED: "paid", PENDING: "pending"}.get(payment_status, "unpaid")


class OrderService:
    def __init__(
        self,
        orders: OrderStore,
        products: ProductStore,
        flash_sales: FlashSaleStore,
        payments: PaymentStore,
        streams: StreamStore,
        directory: LiveDirectory,
        currency: str,
        saga_deadline_seconds: float | None = None,
        test_hold_seconds: float = 0.0,
    ) -> None:
        """`saga_deadline_seconds`: a saga still running after this long gives back
        what it took and fails (None: no deadline). `test_hold_seconds`: for tests
        only (`WRENCOS_TEST_ORDER_HOLD_SECONDS`, 0 = off): the saga waits this long
        after taking every line, before confirming, so a test can kill or race it."""
        self.saga_deadline_seconds = saga_deadline_seconds
        self.test_hold_seconds = test_hold_seconds
        self.orders = orders
        self.products = products
        self.flash_sales = flash_sales
        self.payments = payments
        self.streams = streams
        self.directory = directory
        self.currency = currency

    # ------------------------------------------------------------ placing

    async def place(self, customer: Claims, request: OrderRequest, idempotency_key: str | None = None) -> Placed:
        """Place an order for `customer` (see the module docstring for what holds).
        Refused: a product, sale or stream that does not exist (`not_found`);
        stock, a sale's cap, end or per-customer limit, a sale of another
        product or stream, a reused key, a total of ten billion units or more (`conflict`)."""
        digest = request.digest()
        idem = f"{customer.user_id}:{idempotency_key}" if idempotency_key else None
        if idem is not None:
            existing = await self.orders.by_idempotency_key(idem)
            if existing is not None:
                return _replayed(existing, digest)
        if request.stream_id is not None and await self.streams.get(request.stream_id) is None:
            raise ServiceError(NOT_FOUND, f"Stream {request.stream_id} does not exist")
        lines, sale_stream = await self._price(request)
        total_minor = sum(line["lineTotalMinor"] for line in lines)
        if total_minor > max_minor(self.currency):  # no amount reaches ten billion units (`core/money.py`)
            limit = format_minor(max_minor(self.currency), self.currency)
            raise ServiceError(CONFLICT, f"An order totals at most {limit} {self.currency}: order fewer units")

        now = now_iso()
        order_id = str(ObjectId())
        doc: dict[str, Any] = {
            "_id": order_id,
            "userId": customer.user_id,
            "items": lines,
            "units": sum(line["quantity"] for line in lines),
            "currency": self.currency,
            "totalMinor": total_minor,
            "status": CREATING,
            "taken": 0,
            "paymentStatus": "unpaid",
            "paymentId": None,
            "streamId": request.stream_id or sale_stream,
            "note": request.note,
            "shippingAddress": request.shipping_address,
            "requestHash": digest,
            "createdAt": now,
            "updatedAt": now,
        }
        if idem is not None:
            doc["idemKey"] = idem
        try:
            await self.orders.insert(doc)
        except DuplicateIdempotencyKey as e:
            existing = await self.orders.by_idempotency_key(idem or "")
            if existing is None:
                raise ServiceError(
                    CONFLICT, "A concurrent order with this Idempotency-Key failed: retry", retry_after=1
                ) from e
            return _replayed(existing, digest)

        try:
            async with asyncio.timeout(self.saga_deadline_seconds):
                placed, sales_after = await self._take(customer.user_id, order_id, lines)
        except TimeoutError as e:  # the saga gave back what it took (or the sweeper will)
            log.warning("order_saga_deadline", order_id=order_id, deadline_s=self.saga_deadline_seconds)
            raise ServiceError(CONFLICT, "Placing this order took too long: retry", retry_after=1) from e
        for sale in sales_after.values():
            self._tell_stream(sale)
        return Placed(placed, replayed=False)

    async def _price(self, request: OrderRequest) -> tuple[list[dict[str, Any]], str | None]:
        """Each line with its product's name, image and price now (a sale's price
        for a line with a sale that can sell), and the stream of the last sale."""
        lines: list[dict[str, Any]] = []
        sale_stream: str | None = None
        for item in request.items:
            product = await self.products.get(item.product_id)
            if product is None:
                raise ServiceError(NOT_FOUND, f"Product {item.product_id} does not exist")
            if product["currency"] != self.currency:
                raise ServiceError(
                    CONFLICT,
                    f"Product {item.product_id} is priced in {product['currency']}, the shop sells in {self.currency}",
                )
            unit = int(product["priceMinor"])
            sale: dict[str, Any] | None = None
            if item.sale_id is not None:
                sale = await self.flash_sales.get(item.sale_id)
                if sale is None:
                    raise ServiceError(NOT_FOUND, f"Flash sale {item.sale_id} does not exist")
                if sale["productId"] != item.product_id:
                    raise ServiceError(CONFLICT, f"Flash sale {item.sale_id} is for another product")
                if request.stream_id is not None and sale["streamId"] != request.stream_id:
                    raise ServiceError(CONFLICT, f"Flash sale {item.sale_id} belongs to another stream")
                why = self._sale_refusal(sale)
                if why:
                    raise ServiceError(CONFLICT, why[0].upper() + why[1:])
                unit = int(sale["priceMinor"])
                sale_stream = sale["streamId"]
            lines.append(
                {
                    "productId": item.product_id,
                    "name": product["name"],
                    "image": main_image(product),
                    "quantity": item.quantity,
                    "unitPriceMinor": unit,
                    "lineTotalMinor": unit * item.quantity,
                    "saleId": item.sale_id,
                    "salePerCustomerLimit": sale["perCustomerLimit"] if sale else None,
                }
            )
        return lines, sale_stream

    def _sale_refusal(self, sale: dict[str, Any]) -> str | None:
        """Why this sale cannot sell now, or None if it can (the database has the last word)."""
        if sale["status"] != "active":
            return "this flash sale has ended"
        if sale["endsAt"] <= now_iso():
            return "this flash sale is over"
        if int(sale["remaining"]) <= 0:
            return "this flash sale is sold out"
        if sale["streamId"] not in self.directory.live:
            return "this flash sale has ended with its stream"
        return None

    async def _take(
        self, user_id: str, order_id: str, lines: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The saga: take each line's sale claim, sale units and stock, then make
        the order `pending`. On any failure (a refusal, an error, a cancellation)
        give back what was taken, newest first, delete the `creating` order, and
        re-raise. Returns the `pending` order, and each sale as it is after its units were taken.

        A sweeper may claim the order (`creating` -> `abandoned`) while this runs:
        it then gives back the lines recorded by `progress` up to its claim, so
        this gives back only what it took after its last recorded progress, and
        fails with `conflict`."""
        undo: list[Callable[[], Awaitable[Any]]] = []
        recorded = 0  # undo steps covered by a recorded `progress` (what a sweeper would give back)
        sales_after: dict[str, dict[str, Any]] = {}
        try:
            for n, line in enumerate(lines, start=1):
                pid, qty, sale_id = line["productId"], line["quantity"], line["saleId"]
                if sale_id is not None:
                    limit = int(line["salePerCustomerLimit"])
                    if not await self.flash_sales.claim(sale_id, user_id, qty, limit):
                        had = await self.flash_sales.claimed(sale_id, user_id)
                        raise ServiceError(CONFLICT, f"This flash sale allows {limit} per customer; you have {had}")
                    undo.append(partial(self.flash_sales.unclaim, sale_id, user_id, qty))
                    after = await self.flash_sales.take(sale_id, qty)
                    if after is None:
                        raise ServiceError(
                            CONFLICT, "This flash sale is sold out, has fewer units left than asked, or is over"
                        )
                    undo.append(partial(self.flash_sales.give_back, sale_id, qty))
                    sales_after[sale_id] = after
                if await self.products.take_stock(pid, qty) is None:
                    current = await self.products.get(pid)
                    left = int(current["stock"]) if current else 0
                    raise ServiceError(CONFLICT, f"Only {left} of {line['name']!r} left: order fewer")
                undo.append(partial(self.products.return_stock, pid, qty))
                if not await self.orders.progress(order_id, n):
                    raise _swept(order_id)
                recorded = len(undo)
            if self.test_hold_seconds > 0:
                await asyncio.sleep(self.test_hold_seconds)  # tests only: hold the saga in `creating`
            placed = await self.orders.transition(order_id, CREATING, rules.PENDING)
            if placed is None:
                raise _swept(order_id)
        except BaseException:
            # Deleting the `creating` order claims it: if that fails, a sweeper owns the recorded
            # lines. What was taken after the last recorded progress is this saga's alone.
            try:
                won = await self.orders.delete_creating(order_id)
            except Exception:  # unknown: leave the recorded lines to the sweeper rather than risk twice
                log.exception("order_delete_failed", order_id=order_id)
                won = False
            for step in reversed(undo if won else undo[recorded:]):
                try:
                    await step()
                except Exception:
                    log.exception("order_undo_failed", order_id=order_id)
            raise
        return placed, sales_after

    def _tell_stream(self, sale: dict[str, Any]) -> None:
        """Best effort: the stream shows the sale's new remaining quantity (coalesced)."""
        relay = self.directory.relay(sale["streamId"])
        if relay is not None:
            relay.submit(FlashSaleChanged(sale_wire(sale)))

    # ------------------------------------------------------------ life

    async def get(self, caller: Claims, order_id: str) -> dict[str, Any]:
        return visible(await self.orders.get(order_id), caller, "Order", order_id)

    async def change_status(self, caller: Claims, order_id: str, wanted: str) -> dict[str, Any]:
        """Move an order to `wanted` if the rules allow it for this caller
        (`core/order_rules.py`). The move is conditional on the status the caller
        saw, so it happens once: cancelling returns the stock once, and cancels
        a pending payment; delivering confirms a pending cash-on-delivery payment.
        Refused: `not_found`, `forbidden` (customers only cancel), `invalid`,
        `conflict` (not allowed from here, or changed meanwhile)."""
        order = await self.get(caller, order_id)
        try:
            rules.check_transition(
                order["status"], wanted, is_admin=caller.is_admin, payment_status=order.get("paymentStatus", "unpaid")
            )
        except rules.TransitionRefused as e:
            code = {403: FORBIDDEN, 422: INVALID}.get(e.status, CONFLICT)
            raise ServiceError(code, str(e)) from e
        updated = await self.orders.transition(order_id, order["status"], wanted)
        if updated is None:
            raise ServiceError(CONFLICT, "The order changed meanwhile: reload it and try again")
        payment_id = updated.get("paymentId")
        if wanted == rules.CANCELLED:
            for line in updated["items"]:
                await self.products.return_stock(line["productId"], int(line["quantity"]))
            if payment_id and await self.payments.transition(payment_id, PENDING, CANCELLED):
                updated = await self.orders.set_payment(order_id, "unpaid", None, only_if_payment=payment_id) or updated
        elif wanted == rules.DELIVERED and payment_id:
            payment = await self.payments.get(payment_id)
            cash_due = payment and payment["method"] == CASH_ON_DELIVERY and payment["status"] == PENDING
            if cash_due and await self.payments.transition(payment_id, PENDING, CONFIRMED, {"confirmedBy": "delivery"}):
                updated = (
                    await self.orders.set_payment(order_id, "paid", payment_id, only_if_payment=payment_id) or updated
                )
        return updated


def _swept(order_id: str) -> ServiceError:
    """The sweeper claimed this order while its saga ran (it gives back the recorded lines)."""
    log.warning("order_swept_while_placing", order_id=order_id)
    return ServiceError(CONFLICT, "Placing this order took too long and it was abandoned: retry", retry_after=1)


def _replayed(existing: dict[str, Any], digest: str) -> Placed:
    if existing.get("requestHash") != digest:
        raise ServiceError(CONFLICT, "This Idempotency-Key was used for a different order: use a new key")
    if existing["status"] == CREATING:
        raise ServiceError(
            CONFLICT, "An order with this Idempotency-Key is being created: retry shortly", retry_after=1
        )
    return Placed(existing, replayed=True)
