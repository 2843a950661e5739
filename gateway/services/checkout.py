"""Paying orders: opening a payment through the payment provider
(`gateway/services/payments.py`), storing it once, and settling it.

Guarantees:

* **One live payment per order**, enforced by the store (`PaymentExists`):
  paying an order that has a pending or confirmed payment is refused
  (`conflict`).
* **Idempotent with an idempotency key** (the caller's, `<userId>:<key>`): a
  retry for the same order, method and amount returns the first payment
  (`replayed`) and finishes what a crashed first attempt may have left undone
  (the order's `paymentStatus`); the same key for another payment is refused.
  The provider gets the key too, so it never moves money twice for it.
* **Exact money**: the amount must equal the order's total, in the order's
  currency, to the minor unit.
* The payment is stored before the order is marked; settling is conditional
  on the payment still being `pending`, so it happens once, and an old
  payment never overwrites a newer one on the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bson import ObjectId

from core import order_rules as rules
from core.money import MoneyError, format_minor, to_minor
from gateway.security.credentials import Claims
from gateway.services.errors import CONFLICT, INVALID, NOT_FOUND, ServiceError
from gateway.services.orders import OrderService, order_payment_status
from gateway.services.payments import PaymentProvider
from persistence.orders import OrderStore
from persistence.payments import CONFIRMED, PENDING, PaymentExists, PaymentStore
from runtime.clock import now_iso


@dataclass(frozen=True)
class Paid:
    payment: dict[str, Any]  # as stored
    replayed: bool  # the first payment made with this idempotency key, returned again


class CheckoutService:
    def __init__(
        self, orders: OrderService, order_store: OrderStore, payments: PaymentStore, provider: PaymentProvider
    ) -> None:
        self.orders = orders
        self.order_store = order_store
        self.payments = payments
        self.provider = provider

    async def pay(
        self,
        caller: Claims,
        order_id: str,
        method: str,
        amount: Decimal,
        currency: str | None,
        idempotency_key: str | None = None,
    ) -> Paid:
        """Pay `order_id` (its customer, or an admin on their behalf). Refused:
        an order the caller cannot see (`not_found`); another currency, another
        amount than the total, an order that is not payable, paid, or has a live
        payment, a reused key (`conflict`); a method the provider does not offer
        (`invalid`)."""
        order = await self.orders.get(caller, order_id)
        # The amount is in the shop currency (validated); an order placed in another one (before the shop
        # changed its currency) conflicts with it.
        if currency is not None and currency != order["currency"]:
            raise ServiceError(CONFLICT, f"This order is in {order['currency']}")
        try:
            amount_minor = to_minor(amount, order["currency"])
        except MoneyError as e:
            raise ServiceError(CONFLICT, f"This order is in {order['currency']}: {e}") from e
        idem = f"{caller.user_id}:{idempotency_key}" if idempotency_key else None
        if idem is not None:
            existing = await self.payments.by_idempotency_key(idem)
            if existing is not None:
                return await self._replay(existing, order_id, method, amount_minor)
        if order["status"] not in rules.PAYABLE:
            raise ServiceError(CONFLICT, f"This order is {order['status']} and cannot be paid")
        if order.get("paymentStatus") == "paid":
            raise ServiceError(CONFLICT, "This order is paid already")
        live = await self.payments.live_for_order(order_id)
        if live is not None:
            raise ServiceError(CONFLICT, f"This order has a {live['status']} payment already ({live['_id']})")
        if amount_minor != order["totalMinor"]:
            total = format_minor(order["totalMinor"], order["currency"])
            raise ServiceError(CONFLICT, f"The amount must match the order total: {total} {order['currency']}")
        provider = self.provider
        if method not in provider.methods:
            raise ServiceError(INVALID, f"Payment method {method} is not offered")
        opened = await provider.open(order, method, amount_minor, order["currency"], idem or order_id)
        now = now_iso()
        doc: dict[str, Any] = {
            "_id": str(ObjectId()),
            "orderId": order_id,
            "userId": order["userId"],
            "paidBy": caller.user_id,
            "provider": provider.name,
            "method": method,
            "amountMinor": amount_minor,
            "currency": order["currency"],
            "status": opened.status,
            "reference": opened.reference,
            "instructions": opened.instructions,
            "createdAt": now,
            "updatedAt": now,
        }
        if idem is not None:
            doc["idemKey"] = idem
        try:
            await self.payments.insert(doc)
        except PaymentExists:
            existing = await self.payments.by_idempotency_key(idem) if idem else None
            if existing is not None:
                return await self._replay(existing, order_id, method, amount_minor)
            raise ServiceError(CONFLICT, "This order has a payment already") from None
        await self.order_store.set_payment(order_id, order_payment_status(opened.status), doc["_id"])
        return Paid(doc, replayed=False)

    async def _replay(self, existing: dict[str, Any], order_id: str, method: str, amount_minor: int) -> Paid:
        if existing["orderId"] != order_id or existing["method"] != method or existing["amountMinor"] != amount_minor:
            raise ServiceError(CONFLICT, "This Idempotency-Key was used for a different payment: use a new key")
        if existing["status"] in (PENDING, CONFIRMED):  # finish what a crashed first attempt may have left undone
            await self.order_store.set_payment(order_id, order_payment_status(existing["status"]), existing["_id"])
        return Paid(existing, replayed=True)

    async def settle(self, admin: Claims, payment_id: str, to_status: str) -> dict[str, Any]:
        """Confirm (`confirmed`) or reject (`failed`) a pending payment, and mark
        its order (paid; or unpaid, so it can be paid again) if it is still the
        order's payment. Refused: `not_found`; not pending, or changed meanwhile (`conflict`)."""
        payment = await self.payments.get(payment_id)
        if payment is None:
            raise ServiceError(NOT_FOUND, f"Payment {payment_id} does not exist")
        if payment["status"] != PENDING:
            raise ServiceError(CONFLICT, f"This payment is {payment['status']}: only pending payments can be settled")
        done = await self.payments.transition(payment_id, PENDING, to_status, {"settledBy": admin.user_id})
        if done is None:
            raise ServiceError(CONFLICT, "The payment changed meanwhile: reload it")
        await self.order_store.set_payment(
            payment["orderId"],
            order_payment_status(to_status),
            payment_id if to_status == CONFIRMED else None,
            only_if_payment=payment_id,
        )
        return done
