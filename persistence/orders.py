"""Orders: who bought what, at what price, in which stream, and where the
order is in its life.

Guarantees:

* **One order per idempotency key.** A key is stored as `idemKey`
  (`<customer>:<key>`) under a unique (partial) index, claimed by inserting
  the order before any stock is taken, so two concurrent requests with one key
  cannot both create an order.
* **Status changes are conditional** (`status` must still be the one the
  caller saw), so a change that returns stock (cancelling) happens once.
* An order is inserted as `creating` and becomes `pending` once all its stock
  is taken; a failed creation deletes it. Lists and analytics never show
  `creating` orders. (A gateway that dies between the two leaves a `creating`
  order holding stock; `taken` says how many lines were complete.)
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.clock import now_iso

CREATING = "creating"


class DuplicateIdempotencyKey(Exception):
    pass


class OrderStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._orders = db.orders

    async def insert(self, doc: dict[str, Any]) -> None:
        """Insert a new order. Raises `DuplicateIdempotencyKey` if its key is taken."""
        try:
            await self._orders.insert_one(doc)
        except DuplicateKeyError as e:
            raise DuplicateIdempotencyKey(doc.get("idemKey")) from e

    async def by_idempotency_key(self, idem_key: str) -> dict[str, Any] | None:
        return await self._orders.find_one({"idemKey": idem_key})

    async def get(self, order_id: str) -> dict[str, Any] | None:
        return await self._orders.find_one({"_id": order_id})

    async def progress(self, order_id: str, taken: int) -> None:
        await self._orders.update_one({"_id": order_id}, {"$set": {"taken": taken}})

    async def delete_creating(self, order_id: str) -> None:
        await self._orders.delete_one({"_id": order_id, "status": CREATING})

    async def list(self, query: dict[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
        q = {**query, "status": query.get("status", {"$ne": CREATING})}
        return (
            await self._orders.find(q)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )

    async def count(self, query: dict[str, Any]) -> int:
        return await self._orders.count_documents({**query, "status": query.get("status", {"$ne": CREATING})})

    async def transition(
        self, order_id: str, from_status: str, to_status: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """from_status -> to_status, only if the order is still in from_status.
        The order after, or None if it was not."""
        now = now_iso()
        return await self._orders.find_one_and_update(
            {"_id": order_id, "status": from_status},
            {"$set": {"status": to_status, "updatedAt": now, f"{to_status}At": now, **(extra or {})}},
            return_document=ReturnDocument.AFTER,
        )

    async def set_payment(
        self, order_id: str, payment_status: str, payment_id: str | None, only_if_payment: str | None = None
    ) -> dict[str, Any] | None:
        """Record the order's payment state. With `only_if_payment`, only while
        that payment is still the order's payment (so an old payment never
        overwrites a newer one)."""
        query: dict[str, Any] = {"_id": order_id}
        if only_if_payment is not None:
            query["paymentId"] = only_if_payment
        return await self._orders.find_one_and_update(
            query,
            {"$set": {"paymentStatus": payment_status, "paymentId": payment_id, "updatedAt": now_iso()}},
            return_document=ReturnDocument.AFTER,
        )
