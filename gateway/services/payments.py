"""How money arrives: a small provider interface and the built-in offline provider.

A `PaymentProvider` is asked to `open` a payment for an order (the amount was
already checked against the order) and answers with the payment's first
status and a reference the customer can use. Providers never touch the
database: the REST layer stores what they answer, idempotently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

CASH_ON_DELIVERY, BANK_TRANSFER = "cash_on_delivery", "bank_transfer"


@dataclass(frozen=True, slots=True)
class Opened:
    """What a provider answers: `status` is `pending`, `confirmed` or `failed`."""

    status: str
    reference: str
    instructions: str


class PaymentProvider(Protocol):
    """Contract: `open` must be safe to call again for the same order and
    method (the caller may retry after a crash) and must not move money twice
    for one `idempotency_key`."""

    name: str
    methods: frozenset[str]

    async def open(
        self, order: Mapping[str, Any], method: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> Opened: ...


class OfflineProvider:
    """Payments that happen outside the system and are confirmed by people:

    * `cash_on_delivery`: pending until the order is delivered (then confirmed
      automatically) or an admin confirms it;
    * `bank_transfer`: pending until an admin confirms the money arrived; the
      reference goes into the transfer's description.
    """

    name = "offline"
    methods = frozenset({CASH_ON_DELIVERY, BANK_TRANSFER})

    async def open(
        self, order: Mapping[str, Any], method: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> Opened:
        reference = f"WREN-{str(order['_id'])[-10:].upper()}"
        if method == BANK_TRANSFER:
            return Opened(
                "pending",
                reference,
                f"Transfer the amount with the reference {reference}; "
                "the order is paid once the shop confirms it arrived.",
            )
        return Opened("pending", reference, "Pay the courier on delivery.")
