"""`/payments`, and paying an order (`/orders/{id}/payments`).

Paying and settling are the checkout service's (`gateway/services/checkout.py`,
which states what holds): the amount must equal the order's total, in the
order's currency (a JSON number read by its decimal text, or a decimal
string; answered as an exact JSON number beside `amountMinor`); an order has at most
one live payment; with an `Idempotency-Key`, a retried payment answers the
first one (`Idempotent-Replayed: true`). Payments belong to the customer who placed the
order and to admins; another customer's payment answers 404. Admins settle
pending payments (confirm, reject).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from core.money import CurrencyIn, MoneyIn, money_number
from gateway.rest.deps import Admin, Ctx, Page, User
from gateway.rest.documents import DocumentOut, MoneyOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.orders import OrderIdPath
from gateway.rest.types import ID_PATTERN, IdempotencyKey
from gateway.services.orders import visible
from persistence.payments import CONFIRMED, FAILED

router = APIRouter(prefix="/payments", tags=["payments"], route_class=ExactJsonRoute)
order_payments = APIRouter(prefix="/orders", tags=["orders"], route_class=ExactJsonRoute)

PaymentIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `status`, `userId` ... are ignored
    method: Literal["cash_on_delivery", "bank_transfer"]
    amount: MoneyIn = Field(description="must equal the order's total")
    currency: CurrencyIn | None = None


class PaymentOut(DocumentOut):
    orderId: str
    userId: str
    provider: str
    method: str
    amount: MoneyOut
    amountMinor: int
    currency: str
    status: str = Field(description="pending, confirmed, failed or cancelled")
    reference: str
    instructions: str
    createdAt: str
    updatedAt: str


def payment_out(doc: dict[str, Any]) -> PaymentOut:
    return PaymentOut(
        id=doc["_id"],
        orderId=doc["orderId"],
        userId=doc["userId"],
        provider=doc["provider"],
        method=doc["method"],
        amount=money_number(doc["amountMinor"], doc["currency"]),
        amountMinor=doc["amountMinor"],
        currency=doc["currency"],
        status=doc["status"],
        reference=doc.get("reference", ""),
        instructions=doc.get("instructions", ""),
        createdAt=doc["createdAt"],
        updatedAt=doc["updatedAt"],
    )


@order_payments.post("/{order_id}/payments", status_code=201, response_model=PaymentOut)
async def pay_order(
    order_id: OrderIdPath,
    body: PaymentIn,
    user: User,
    ctx: Ctx,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PaymentOut:
    """Pay an order (its customer, or an admin on their behalf) through the
    payment provider. The amount must equal the order's total (409). An order
    has at most one live payment: paying again answers 409 (or, with the same
    `Idempotency-Key`, the first payment)."""
    paid = await ctx.checkout.pay(user, order_id, body.method, body.amount, body.currency, idempotency_key)
    if paid.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return payment_out(paid.payment)


@order_payments.get("/{order_id}/payments", response_model=list[PaymentOut])
async def list_order_payments(
    order_id: OrderIdPath, user: User, ctx: Ctx, page: Page, response: Response
) -> list[PaymentOut]:
    """Every payment of one order (its customer, admins), newest first, paged."""
    await ctx.order_service.get(user, order_id)
    query = {"orderId": order_id}
    docs = await ctx.payments.list(query, skip=page.skip, limit=page.limit)
    response.headers["X-Total-Count"] = str(await ctx.payments.count(query))
    return [payment_out(d) for d in docs]


@router.get("", response_model=list[PaymentOut])
async def list_payments(
    user: User,
    ctx: Ctx,
    page: Page,
    response: Response,
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


@router.post("/{payment_id}/confirm", response_model=PaymentOut)
async def confirm_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money arrived (admin): the payment is confirmed and its order paid."""
    return payment_out(await ctx.checkout.settle(admin, payment_id, CONFIRMED))


@router.post("/{payment_id}/reject", response_model=PaymentOut)
async def reject_payment(payment_id: PaymentIdPath, admin: Admin, ctx: Ctx) -> PaymentOut:
    """The money did not arrive (admin): the payment fails and the order can be paid again."""
    return payment_out(await ctx.checkout.settle(admin, payment_id, FAILED))
