"""The catalogue: products with a price in minor units and a stock level.

Guarantees:

* **Stock never goes below zero.** `take_stock` is one conditional update
  (`stock >= quantity` and `$inc: -quantity`), so N concurrent buyers of the
  last K items get exactly K successes, whatever the number of gateways.
* **Returned stock is counted once** when the caller returns it once (the
  order store makes the status change that returns stock conditional).
* **Deleted products stay on record** (`deleted: true`) so orders keep their
  history; they are invisible to reads and can no longer be bought.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from runtime.clock import now_iso


def new_id() -> str:
    return str(ObjectId())


def main_image(doc: dict[str, Any]) -> str | None:
    """A product's one image (what the old apps show, pins and order lines
    carry): its `image` if set, else the first of its `images`."""
    images = doc.get("images") or []
    image: str | None = doc.get("image") or (images[0] if images else None)
    return image


class ProductStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._products = db.products

    async def create(
        self,
        *,
        name: str,
        description: str,
        price_minor: int,
        currency: str,
        stock: int,
        images: list[str],
        category: str | None = None,
        image: str | None = None,
    ) -> dict[str, Any]:
        now = now_iso()
        doc = {
            "_id": new_id(),
            "name": name,
            "description": description,
            "priceMinor": int(price_minor),
            "currency": currency,
            "stock": int(stock),
            "images": list(images),
            "image": image,
            "category": category,
            "deleted": False,
            "createdAt": now,
            "updatedAt": now,
        }
        await self._products.insert_one(doc)
        return doc

    async def get(self, product_id: str) -> dict[str, Any] | None:
        return await self._products.find_one({"_id": product_id, "deleted": False})

    async def list(self, *, skip: int, limit: int, category: str | None = None) -> list[dict[str, Any]]:
        query = self._query(category)
        return (
            await self._products.find(query)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
            .to_list()
        )

    async def count(self, category: str | None = None) -> int:
        return await self._products.count_documents(self._query(category))

    @staticmethod
    def _query(category: str | None) -> dict[str, Any]:
        query: dict[str, Any] = {"deleted": False}
        if category is not None:
            query["category"] = category
        return query

    async def update(self, product_id: str, fields: dict[str, Any], stock_delta: int = 0) -> dict[str, Any] | None:
        """Set `fields` and add `stock_delta` to the stock, in one update.
        None if the product does not exist or the stock would go below zero."""
        query: dict[str, Any] = {"_id": product_id, "deleted": False}
        update: dict[str, Any] = {"$set": {**fields, "updatedAt": now_iso()}}
        if stock_delta:
            query["stock"] = {"$gte": -stock_delta}
            update["$inc"] = {"stock": stock_delta}
        return await self._products.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)

    async def delete(self, product_id: str) -> bool:
        result = await self._products.update_one(
            {"_id": product_id, "deleted": False}, {"$set": {"deleted": True, "updatedAt": now_iso()}}
        )
        return result.modified_count == 1

    async def take_stock(self, product_id: str, quantity: int) -> dict[str, Any] | None:
        """Take `quantity` units, atomically. The product after, or None if it
        does not exist, is deleted, or has fewer than `quantity` left."""
        return await self._products.find_one_and_update(
            {"_id": product_id, "deleted": False, "stock": {"$gte": quantity}},
            {"$inc": {"stock": -quantity}},
            return_document=ReturnDocument.AFTER,
        )

    async def return_stock(self, product_id: str, quantity: int) -> None:
        """Give `quantity` units back (a cancelled or failed order), deleted or not."""
        await self._products.update_one({"_id": product_id}, {"$inc": {"stock": quantity}})
