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
* **A stranded `creating` order is claimed once.** `claim_stranded` moves an
  old `creating` order to `abandoned` with one conditional update, so of any
  number of sweepers (and the saga itself, whose `progress` and confirm are
  conditional on `creating`) exactly one wins it; the winner alone returns its
  stock (the `taken` lines as of the claim), then `delete_abandoned` removes it.
  An `abandoned` order is never listed, counted or shown.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.clock import now_iso

CREATING = "creating"
ABANDONED = "abandoned"  # a stranded `creating` order claimed by the sweeper (its stock is being returned)
HIDDEN = [CREATING, ABANDONED]  # never listed, counted or shown


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

    async def progress(self, order_id: str, taken: int) -> bool:
        """Record that `taken` lines are complete, only while the order is still
        `creating`. False if it is not (a sweeper claimed it): the caller then
        owns only what it took since its last recorded progress."""
        result = await self._orders.update_one({"_id": order_id, "status": CREATING}, {"$set": {"taken": taken}})
        return result.matched_count == 1

    async def delete_creating(self, order_id: str) -> bool:
        """Delete the order if it is still `creating`. True if deleted: the caller
        won it and must give back what it took; False: a sweeper claimed it first."""
        result = await self._orders.delete_one({"_id": order_id, "status": CREATING})
        return result.deleted_count == 1

    async def stranded_ids(self, created_before: str, limit: int) -> list[str]:
        """Up to `limit` ids of `creating` orders created before `created_before` (oldest first)."""
        docs = (
            await self._orders.find({"status": CREATING, "createdAt": {"$lt": created_before}}, {"_id": 1})
            .sort([("createdAt", 1), ("_id", 1)])
            .limit(limit)
            .to_list()
        )
        return [str(d["_id"]) for d in docs]

    async def claim_stranded(self, order_id: str, created_before: str, by: str) -> dict[str, Any] | None:
        """`creating` -> `abandoned` if the order is still `creating` and was created
        before `created_before`, in one conditional update; its idempotency key is
        freed (a retry with it places a new order). The order as claimed (its
        `items` and `taken` say what to return), or None if someone else won it."""
        now = now_iso()
        return await self._orders.find_one_and_update(
            {"_id": order_id, "status": CREATING, "createdAt": {"$lt": created_before}},
            {
                "$set": {"status": ABANDONED, "updatedAt": now, "abandonedAt": now, "abandonedBy": by},
                "$unset": {"idemKey": ""},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def delete_abandoned(self, order_id: str) -> None:
        """Forget an `abandoned` order once its stock is back."""
        await self._orders.delete_one({"_id": order_id, "status": ABANDONED})

    async def list(self, query: dict[str, Any], *, skip: int, limit: int) -> list[dict[str, Any]]:
        q = {**query, "status": query.get("status", {"$nin": HIDDEN})}
        return (
            await self._orders.find(q)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )

    async def count(self, query: dict[str, Any]) -> int:
        return await self._orders.count_documents({**query, "status": query.get("status", {"$nin": HIDDEN})})

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
