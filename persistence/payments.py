"""Payments against orders.

Guarantees:

* **One live payment per order.** Every payment holds a `slot`, unique: the
  order id while the payment is pending or confirmed, a released value once it
  failed or was cancelled. A second payment for an order that has one fails
  on the index, whoever sends it and however many gateways there are.
* **One payment per idempotency key** (`idemKey` = `<payer>:<key>`, unique
  partial index): a retried request finds the first payment.
* Status changes are conditional on the status the caller saw.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.clock import now_iso

PENDING, CONFIRMED, FAILED, CANCELLED = "pending", "confirmed", "failed", "cancelled"


class PaymentExists(Exception):
    """The order already has a live payment, or the idempotency key is used."""


class PaymentStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._payments = db.payments

    async def insert(self, doc: dict[str, Any]) -> None:
        try:
            await self._payments.insert_one({**doc, "slot": doc["orderId"]})
        except DuplicateKeyError as e:
            raise PaymentExists(doc["orderId"]) from e

    async def get(self, payment_id: str) -> dict[str, Any] | None:
        return await self._payments.find_one({"_id": payment_id})

    async def by_idempotency_key(self, idem_key: str) -> dict[str, Any] | None:
        return await self._payments.find_one({"idemKey": idem_key})

    async def live_for_order(self, order_id: str) -> dict[str, Any] | None:
        return await self._payments.find_one({"slot": order_id})

    async def list(self, query: dict[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
        return (
            await self._payments.find(query)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )

    async def count(self, query: dict[str, Any]) -> int:
        return await self._payments.count_documents(query)

    async def transition(
        self, payment_id: str, from_status: str, to_status: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """from_status -> to_status; a failed or cancelled payment frees the order's slot."""
        now = now_iso()
        fields: dict[str, Any] = {"status": to_status, "updatedAt": now, f"{to_status}At": now, **(extra or {})}
        if to_status in (FAILED, CANCELLED):
            fields["slot"] = f"released:{payment_id}"
        return await self._payments.find_one_and_update(
            {"_id": payment_id, "status": from_status}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )
