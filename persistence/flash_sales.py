"""Flash sales: a time-limited price on a pinned product, with a quantity cap
and a limit per customer. The database holds the truth; the stream's actor
only tells viewers.

Guarantees:

* **The cap holds under concurrency.** `take` is one conditional update
  (`status` active, `endsAt` in the future, `remaining >= quantity`) with
  `$inc`, so concurrent buyers never take more than `quantity` in total, and
  nobody buys after `endsAt`, whatever the actor has announced yet.
* **The per-customer limit holds under concurrency.** Each (sale, customer)
  has a counter document (`flash_sale_claims`, `_id` = `<sale>:<customer>`)
  raised by a conditional `$inc` (`count <= limit - quantity`); two first
  claims racing on a missing counter meet on its unique `_id` and the loser
  retries against the stored count.
* **Versioned.** Every stored change raises `version` by one, so the stream
  can drop reports that arrive out of order.
* Units of a cancelled order are not given back to the sale (the cap counts
  units sold at the sale price); the product's stock gets them back.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from runtime.clock import now_iso

ACTIVE, ENDED = "active", "ended"


class FlashSaleStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._sales = db.flash_sales
        self._claims = db.flash_sale_claims

    async def create(
        self,
        *,
        stream_id: str,
        product_id: str,
        product_name: str,
        price_minor: int,
        currency: str,
        quantity: int,
        per_customer_limit: int,
        ends_at: str,
        created_by: str,
    ) -> dict[str, Any]:
        doc = {
            "_id": str(ObjectId()),
            "streamId": stream_id,
            "productId": product_id,
            "productName": product_name,
            "priceMinor": int(price_minor),
            "currency": currency,
            "quantity": int(quantity),
            "remaining": int(quantity),
            "perCustomerLimit": int(per_customer_limit),
            "startsAt": now_iso(),
            "endsAt": ends_at,
            "status": ACTIVE,
            "endedReason": None,
            "version": 1,
            "createdBy": created_by,
            "createdAt": now_iso(),
        }
        await self._sales.insert_one(doc)
        return doc

    async def get(self, sale_id: str) -> dict[str, Any] | None:
        return await self._sales.find_one({"_id": sale_id})

    async def list(self, stream_id: str, *, skip: int, limit: int) -> list[dict[str, Any]]:
        return (
            await self._sales.find({"streamId": stream_id})
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )

    async def count(self, stream_id: str) -> int:
        return await self._sales.count_documents({"streamId": stream_id})

    async def running_for(self, stream_id: str, product_id: str) -> dict[str, Any] | None:
        """A sale of this product in this stream that is active, not over and not sold out."""
        return await self._sales.find_one(
            {
                "streamId": stream_id,
                "productId": product_id,
                "status": ACTIVE,
                "endsAt": {"$gt": now_iso()},
                "remaining": {"$gt": 0},
            }
        )

    async def end(self, sale_id: str, reason: str) -> dict[str, Any] | None:
        """active -> ended. The sale after, or None if it was not active."""
        return await self._sales.find_one_and_update(
            {"_id": sale_id, "status": ACTIVE},
            {"$set": {"status": ENDED, "endedReason": reason, "endedAt": now_iso()}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def discard(self, sale_id: str) -> None:
        """Forget a sale that was never announced (the stream refused it): nobody
        knew its id, so nobody can have bought at it."""
        await self._sales.delete_one({"_id": sale_id})

    async def end_all(self, stream_id: str, reason: str) -> None:
        await self._sales.update_many(
            {"streamId": stream_id, "status": ACTIVE},
            {"$set": {"status": ENDED, "endedReason": reason, "endedAt": now_iso()}, "$inc": {"version": 1}},
        )

    async def take(self, sale_id: str, quantity: int) -> dict[str, Any] | None:
        """Take `quantity` units at the sale price, atomically. The sale after
        (its new `remaining` and `version`), or None if it is over, ended or has
        fewer than `quantity` left."""
        return await self._sales.find_one_and_update(
            {"_id": sale_id, "status": ACTIVE, "endsAt": {"$gt": now_iso()}, "remaining": {"$gte": quantity}},
            {"$inc": {"remaining": -quantity, "version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def give_back(self, sale_id: str, quantity: int) -> None:
        """Undo a `take` of an order that could not be completed."""
        await self._sales.update_one({"_id": sale_id}, {"$inc": {"remaining": quantity, "version": 1}})

    async def claim(self, sale_id: str, customer_id: str, quantity: int, limit: int) -> bool:
        """Count `quantity` more units for this customer if that keeps them within
        `limit`. True if counted."""
        if quantity > limit:
            return False
        key = f"{sale_id}:{customer_id}"
        for _ in range(3):
            try:
                result = await self._claims.update_one(
                    {"_id": key, "count": {"$lte": limit - quantity}},
                    {"$inc": {"count": quantity}, "$setOnInsert": {"saleId": sale_id, "customerId": customer_id}},
                    upsert=True,
                )
                return result.modified_count == 1 or result.upserted_id is not None
            except DuplicateKeyError:
                # Either the counter exists and is too high (the filter missed it and the
                # upsert collided), or a concurrent first claim inserted it: look again.
                current = await self._claims.find_one({"_id": key})
                if current is not None and int(current.get("count", 0)) > limit - quantity:
                    return False
        return False

    async def unclaim(self, sale_id: str, customer_id: str, quantity: int) -> None:
        """Undo a `claim` of an order that could not be completed."""
        await self._claims.update_one({"_id": f"{sale_id}:{customer_id}"}, {"$inc": {"count": -quantity}})

    async def claimed(self, sale_id: str, customer_id: str) -> int:
        doc = await self._claims.find_one({"_id": f"{sale_id}:{customer_id}"})
        return int(doc["count"]) if doc else 0
