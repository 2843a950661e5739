"""The rules of an order's life, pure: which status may follow which, and who may move it.

    pending ──▶ confirmed ──▶ shipped ──▶ delivered
       │            │
       └────────────┴──▶ cancelled   (stock goes back to the products)

Admins move orders along these arrows. A customer may only cancel their own
order, and only while it is `pending`. An order whose payment is confirmed
cannot be cancelled here (the offline provider has no refunds).
"""

from __future__ import annotations

PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED = "pending", "confirmed", "shipped", "delivered", "cancelled"
STATUSES = (PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED)

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({CONFIRMED, CANCELLED}),
    CONFIRMED: frozenset({SHIPPED, CANCELLED}),
    SHIPPED: frozenset({DELIVERED}),
    DELIVERED: frozenset(),
    CANCELLED: frozenset(),
}

PAYABLE = frozenset({PENDING, CONFIRMED, SHIPPED, DELIVERED})


class TransitionRefused(Exception):
    """The move is not allowed; the message says what is (safe to show)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def check_transition(current: str, wanted: str, *, is_admin: bool, payment_status: str) -> None:
    """Raise `TransitionRefused` unless `current -> wanted` is allowed for this caller."""
    if wanted not in STATUSES:
        raise TransitionRefused(f"unknown status {wanted!r}: one of {', '.join(STATUSES)}", 422)
    if not is_admin and wanted != CANCELLED:
        raise TransitionRefused("customers can only cancel their orders", 403)
    if not is_admin and current != PENDING:
        raise TransitionRefused(f"this order is {current}: only pending orders can be cancelled by the customer")
    allowed = TRANSITIONS.get(current, frozenset())
    if wanted not in allowed:
        nexts = ", ".join(sorted(allowed)) or "none (final)"
        raise TransitionRefused(f"an order that is {current} cannot become {wanted}; allowed: {nexts}")
    if wanted == CANCELLED and payment_status == "paid":
        raise TransitionRefused("this order is paid and cannot be cancelled here (no refunds in the offline provider)")
