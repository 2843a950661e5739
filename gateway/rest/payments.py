"""`/payments`, and paying an order (`/orders/{id}/payments`).

A payment is opened with the payment provider (`gateway/services/payments.py`)
and stored; the amount must equal the order's total, in the order's currency
(exact decimal strings, never floats). An order has at most one live payment.
With an `Idempotency-Key`, a retried payment answers the first one
(`Idempotent-Replayed: true`). Payments belong to the customer who placed the
order and to admins; another customer's payment answers 404. Admins settle
pending payments (confirm, reject).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from bson import ObjectId
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from core import order_rules as rules
from core.money import CurrencyIn, MoneyError, MoneyIn, format_minor, to_minor
from gateway.context import GatewayContext
from gateway.errors import ApiError
from gateway.rest.deps import Admin, Ctx, Page, User
from gateway.rest.orders import OrderIdPath
from gateway.rest.types import ID_PATTERN, IdempotencyKey
from gateway.security.credentials import Claims
from gateway.services.orders import order_payment_status, visible
from persistence.payments import CONFIRMED, FAILED, PENDING, PaymentExists
from runtime.clock import now_iso

router = APIRouter(prefix="/payments", tags=["payments"])
order_payments = APIRouter(prefix="/orders", tags=["orders"])

PaymentIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]


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


async def replay_payment(ctx: GatewayContext, existing: dict[str, Any], order_id: str, method: str,
                         amount_minor: int, response: Response) -> PaymentOut:
    if existing["orderId"] != order_id or existing["method"] != method or existing["amountMinor"] != amount_minor:
        raise ApiError(409, "This Idempotency-Key was used for a different payment: use a new key")
    if existing["status"] in (PENDING, CONFIRMED):  # finish what a crashed first attempt may have left undone
        await ctx.orders.set_payment(order_id, order_payment_status(existing["status"]), existing["_id"])
    response.headers["Idempotent-Replayed"] = "true"
    return payment_out(existing)


@order_payments.post("/{order_id}/payments", status_code=201, response_model=PaymentOut)
async def pay_order(order_id: OrderIdPath, body: PaymentIn, user: User, ctx: Ctx, response: Response,
                    idempotency_key: IdempotencyKey = None) -> PaymentOut:
    """Pay an order (its customer, or an admin on their behalf) through the
    payment provider. The amount must equal the order's total (409). An order
    has at most one live payment: paying again answers 409 (or, with the same
    `Idempotency-Key`, the first payment)."""
    order = await ctx.order_service.get(user, order_id)
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


@order_payments.get("/{order_id}/payments", response_model=list[PaymentOut])
async def list_order_payments(order_id: OrderIdPath, user: User, ctx: Ctx, page: Page,
                              response: Response) -> list[PaymentOut]:
    """Every payment of one order (its customer, admins), newest first, paged."""
    await ctx.order_service.get(user, order_id)
    query = {"orderId": order_id}
    docs = await ctx.payments.list(query, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.payments.count(query))
    return [payment_out(d) for d in docs]


@router.get("", response_model=list[PaymentOut])
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


@router.get("/{payment_id}", response_model=PaymentOut)
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


@router.post("/{payment_id}/confirm", response_model=PaymentOut)
async def confirm_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money arrived (admin): the payment is confirmed and its order paid."""
    return payment_out(await settle(ctx, payment_id, CONFIRMED, admin))


@router.post("/{payment_id}/reject", response_model=PaymentOut)
async def reject_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money did not arrive (admin): the payment fails and the order can be paid again."""
    return payment_out(await settle(ctx, payment_id, FAILED, admin))
