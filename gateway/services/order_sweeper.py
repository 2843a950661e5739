"""The order sweeper: gives back the stock held by `creating` orders that a
gateway left behind when it died in the middle of placing them.

Guarantees:

* **Exactly once, with any number of sweepers.** Each gateway runs one. An
  order is first claimed with one conditional update (`creating` ->
  `abandoned`, `OrderStore.claim_stranded`); only the sweeper that wins the
  claim gives back its stock (and flash-sale units and per-customer claims)
  for the lines the saga recorded as taken, then deletes it.
* **A live saga is never swept.** Only orders created more than
  `timeout_seconds` ago (`ORDER_CREATING_TIMEOUT_SECONDS`) are claimed, well
  beyond the saga's own deadline; and a saga that is still running when its
  order is claimed fails cleanly (its progress and confirm are conditional on
  `creating`, see `gateway/services/orders.py`).
* **Bounded work.** A round claims at most `batch` orders; rounds run every
  `interval_seconds`. Every order it gives back is logged.

Not covered: a gateway that dies between taking a line and recording it
(`progress`) leaves that one line's stock held (never given back twice, but
not given back); so does a sweeper that dies between its claim and giving back.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog

from persistence.flash_sales import FlashSaleStore
from persistence.orders import OrderStore
from persistence.products import ProductStore
from runtime.clock import iso, now

log = structlog.get_logger("gateway.order_sweeper")

BATCH = 100  # orders claimed per round at most


class OrderSweeper:
    def __init__(
        self,
        orders: OrderStore,
        products: ProductStore,
        flash_sales: FlashSaleStore,
        *,
        timeout_seconds: float,
        interval_seconds: float,
        name: str,
        batch: int = BATCH,
    ) -> None:
        self.orders = orders
        self.products = products
        self.flash_sales = flash_sales
        self.timeout_seconds = timeout_seconds
        self.interval_seconds = interval_seconds
        self.name = name  # who claimed an order (`abandonedBy`): the gateway id
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._sweeping = False  # a round is running
        self._stopping = False

    async def sweep_once(self) -> list[dict[str, Any]]:
        """One round: claim up to `batch` stranded orders and give back what each
        held. The orders this sweeper won (as claimed), oldest first."""
        cutoff = iso(now() - timedelta(seconds=self.timeout_seconds))
        won: list[dict[str, Any]] = []
        for order_id in await self.orders.stranded_ids(cutoff, self.batch):
            order = await self.orders.claim_stranded(order_id, cutoff, self.name)
            if order is None:
                continue  # another sweeper won it, or its saga finished or gave up meanwhile
            await self._give_back(order)
            won.append(order)
        return won

    async def _give_back(self, order: dict[str, Any]) -> None:
        taken = int(order.get("taken", 0))
        lines = order["items"][:taken]
        for line in lines:
            pid, qty, sale_id = line["productId"], int(line["quantity"]), line.get("saleId")
            if sale_id is not None:
                await self.flash_sales.unclaim(sale_id, order["userId"], qty)
                await self.flash_sales.give_back(sale_id, qty)
            await self.products.return_stock(pid, qty)
        await self.orders.delete_abandoned(order["_id"])
        log.info(
            "order_stranded_returned",
            order_id=order["_id"],
            user_id=order["userId"],
            created_at=order.get("createdAt"),
            lines=taken,
            returned=[[line["productId"], int(line["quantity"])] for line in lines],
            by=self.name,
        )

    async def run_forever(self) -> None:
        """Sweep every `interval_seconds` until stopped; a failed round is logged and the next one runs."""
        while not self._stopping:
            await asyncio.sleep(self.interval_seconds)
            self._sweeping = True
            try:
                await self.sweep_once()
            except Exception:
                log.exception("order_sweep_failed", by=self.name)
            finally:
                self._sweeping = False

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run_forever(), name="order-sweeper")

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop sweeping. A round in progress may finish (within `grace_seconds`), so an
        order it claimed is not left `abandoned` with its stock still held."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if not self._sweeping:
            task.cancel()  # asleep between rounds
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, grace_seconds)
