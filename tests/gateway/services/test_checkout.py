"""The checkout service against the real embedded database: exact amounts,
one live payment per order, idempotent retries, settling once."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from core import order_rules as rules
from gateway.services.checkout import CheckoutService
from gateway.services.errors import CONFLICT, INVALID, NOT_FOUND, ServiceError
from gateway.services.orders import OrderLine, OrderRequest, OrderService
from gateway.services.payments import BANK_TRANSFER, CASH_ON_DELIVERY, OfflineProvider
from persistence.flash_sales import FlashSaleStore
from persistence.orders import OrderStore
from persistence.payments import CONFIRMED, FAILED, PENDING, PaymentStore
from persistence.products import ProductStore
from tests.gateway.services.conftest import Live, new_product
from tests.gateway.services.test_orders import ADMIN, ANN, BOB


@pytest.fixture
def orders(db: AsyncDatabase, live: Live, products: ProductStore) -> OrderService:
    return OrderService(
        OrderStore(db), products, FlashSaleStore(db), PaymentStore(db), live.streams, live.directory, "EUR"
    )


@pytest.fixture
def checkout(orders: OrderService) -> CheckoutService:
    return CheckoutService(orders, orders.orders, orders.payments, OfflineProvider())


async def an_order(orders: OrderService, products: ProductStore, price_minor: int = 1230) -> str:
    lamp = await new_product(products, price_minor=price_minor)
    return str((await orders.place(ANN, OrderRequest(items=(OrderLine(lamp["_id"], 2),)))).order["_id"])


async def test_paying_the_exact_total_opens_one_payment_and_marks_the_order(
    checkout: CheckoutService, orders: OrderService, products: ProductStore
) -> None:
    order_id = await an_order(orders, products)
    with pytest.raises(ServiceError) as wrong:
        await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.59"), None)
    assert (wrong.value.code, wrong.value.message) == (CONFLICT, "The amount must match the order total: 24.60 EUR")
    paid = await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.6"), "EUR")
    assert not paid.replayed and (paid.payment["amountMinor"], paid.payment["status"]) == (2460, PENDING)
    assert (await orders.get(ANN, order_id))["paymentStatus"] == "pending"
    with pytest.raises(ServiceError) as again:
        await checkout.pay(ANN, order_id, CASH_ON_DELIVERY, Decimal("24.60"), None)
    assert again.value.code == CONFLICT and "pending payment already" in again.value.message


async def test_a_key_replays_the_first_payment_and_refuses_another(
    checkout: CheckoutService, orders: OrderService, products: ProductStore
) -> None:
    order_id = await an_order(orders, products)
    first = await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), None, "pay-1")
    retry = await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), None, "pay-1")
    assert retry.replayed and retry.payment["_id"] == first.payment["_id"]
    with pytest.raises(ServiceError) as other:
        await checkout.pay(ANN, order_id, CASH_ON_DELIVERY, Decimal("24.60"), None, "pay-1")
    assert other.value.code == CONFLICT and "different payment" in other.value.message


async def test_who_may_pay_and_with_what(
    checkout: CheckoutService, orders: OrderService, products: ProductStore
) -> None:
    order_id = await an_order(orders, products)
    with pytest.raises(ServiceError) as hidden:
        await checkout.pay(BOB, order_id, BANK_TRANSFER, Decimal("24.60"), None)
    with pytest.raises(ServiceError) as method:
        await checkout.pay(ANN, order_id, "crypto", Decimal("24.60"), None)
    with pytest.raises(ServiceError) as currency:
        await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), "USD")
    assert (hidden.value.code, method.value.code, currency.value.code) == (NOT_FOUND, INVALID, CONFLICT)
    assert (await checkout.pay(ADMIN, order_id, CASH_ON_DELIVERY, Decimal("24.60"), None)).payment[
        "paidBy"
    ] == ADMIN.user_id


async def test_settling_happens_once_and_a_rejected_order_can_be_paid_again(
    checkout: CheckoutService, orders: OrderService, products: ProductStore
) -> None:
    order_id = await an_order(orders, products)
    payment = (await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), None)).payment
    assert (await checkout.settle(ADMIN, payment["_id"], FAILED))["status"] == FAILED
    assert (await orders.get(ANN, order_id))["paymentStatus"] == "unpaid"
    with pytest.raises(ServiceError) as twice:
        await checkout.settle(ADMIN, payment["_id"], CONFIRMED)
    assert twice.value.code == CONFLICT
    second = (await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), None)).payment
    await checkout.settle(ADMIN, second["_id"], CONFIRMED)
    order = await orders.get(ANN, order_id)
    assert (order["paymentStatus"], order["paymentId"], order["status"]) == ("paid", second["_id"], rules.PENDING)
    with pytest.raises(ServiceError) as paid:
        await checkout.pay(ANN, order_id, BANK_TRANSFER, Decimal("24.60"), None)
    assert paid.value.message == "This order is paid already"
