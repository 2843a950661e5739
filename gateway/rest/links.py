"""OpenAPI links: which operation takes the id another one answers.

A link says "the `id` of this answer is that operation's `product_id`": a
client (or a tool such as Schemathesis' stateful phase) can follow a created
product to reading, changing, ordering and deleting it, a created order to
paying it, a payment to confirming it. The links name operations by method and
path here; `add_links` writes each as the `operationId` FastAPI gave that
operation, so renaming a handler cannot leave a link dangling (it raises).

Only what the document says changes: no route behaves differently.
"""

from __future__ import annotations

from typing import Any

Operation = tuple[str, str]  # (method, path) as the OpenAPI document spells them

ID = "$response.body#/id"
STREAM_IN_PATH = "$request.path.stream_id"


def _to(method: str, path: str, **parameters: str) -> dict[str, Any]:
    return {"operation": (method, path), "parameters": parameters}


_PRODUCT = {
    "GetProduct": _to("get", "/products/{product_id}", product_id=ID),
    "UpdateProduct": _to("put", "/products/{product_id}", product_id=ID),
    "DeleteProduct": _to("delete", "/products/{product_id}", product_id=ID),
    "OrderProduct": {
        "operation": ("post", "/orders"),
        "parameters": {},
        "requestBody": {"items": [{"productId": ID, "quantity": 1}]},
    },
}
_STREAM = {
    "GetStream": _to("get", "/livestreams/{stream_id}", stream_id=ID),
    "UpdateStream": _to("put", "/livestreams/{stream_id}", stream_id=ID),
    "StartStream": _to("post", "/livestreams/{stream_id}/start", stream_id=ID),
    "StopStream": _to("post", "/livestreams/{stream_id}/stop", stream_id=ID),
    "RecordView": _to("post", "/livestreams/{stream_id}/view", stream_id=ID),
    "ToggleLike": _to("post", "/livestreams/{stream_id}/like", stream_id=ID),
    "ChatHistory": _to("get", "/livestreams/{stream_id}/chat", stream_id=ID),
    "StreamAnalytics": _to("get", "/livestreams/{stream_id}/analytics", stream_id=ID),
    "GetModeration": _to("get", "/livestreams/{stream_id}/moderation", stream_id=ID),
    "ListFlashSales": _to("get", "/livestreams/{stream_id}/flash-sales", stream_id=ID),
    "DeleteStream": _to("delete", "/livestreams/{stream_id}", stream_id=ID),
}
_ORDER = {
    "GetOrder": _to("get", "/orders/{order_id}", order_id=ID),
    "PayOrder": {
        "operation": ("post", "/orders/{order_id}/payments"),
        "parameters": {"order_id": ID},
        "requestBody": {"method": "cash_on_delivery", "amount": "$response.body#/total"},
    },
    "ListOrderPayments": _to("get", "/orders/{order_id}/payments", order_id=ID),
    "UpdateOrderStatus": _to("patch", "/orders/{order_id}", order_id=ID),
    "CancelOrder": _to("post", "/orders/{order_id}/cancel", order_id=ID),
}
_PAYMENT = {
    "GetPayment": _to("get", "/payments/{payment_id}", payment_id=ID),
    "ConfirmPayment": _to("post", "/payments/{payment_id}/confirm", payment_id=ID),
    "RejectPayment": _to("post", "/payments/{payment_id}/reject", payment_id=ID),
}
_FLASH_SALE = {
    "GetFlashSale": _to("get", "/livestreams/{stream_id}/flash-sales/{sale_id}", stream_id=STREAM_IN_PATH, sale_id=ID),
    "EndFlashSale": _to(
        "post", "/livestreams/{stream_id}/flash-sales/{sale_id}/end", stream_id=STREAM_IN_PATH, sale_id=ID
    ),
}

LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("post", "/products", "201"): _PRODUCT,
    ("put", "/products/{product_id}", "200"): {k: _PRODUCT[k] for k in ("GetProduct", "DeleteProduct")},
    ("post", "/livestreams", "201"): _STREAM,
    ("put", "/livestreams/{stream_id}", "200"): _STREAM,
    ("post", "/livestreams/{stream_id}/start", "200"): _STREAM,
    ("post", "/orders", "201"): _ORDER,
    ("post", "/orders/{order_id}/payments", "201"): _PAYMENT,
    ("post", "/livestreams/{stream_id}/flash-sales", "201"): _FLASH_SALE,
}
"""(method, path, status) of an answer -> its links by name."""


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """Write `LINKS` into an OpenAPI document (in place; idempotent) and return it.
    Raises KeyError naming the operation or answer a link refers to that the document lacks."""
    paths = doc["paths"]

    def operation_id(operation: Operation) -> str:
        method, path = operation
        try:
            return str(paths[path][method]["operationId"])
        except KeyError as e:
            raise KeyError(f"OpenAPI link to {method.upper()} {path}: no such operation") from e

    for (method, path, status), links in LINKS.items():
        try:
            answer = paths[path][method]["responses"][status]
        except KeyError as e:
            raise KeyError(f"OpenAPI links from {method.upper()} {path} {status}: no such answer") from e
        written: dict[str, Any] = {}
        for name, link in links.items():
            one: dict[str, Any] = {"operationId": operation_id(link["operation"])}
            if link["parameters"]:
                one["parameters"] = dict(link["parameters"])
            if "requestBody" in link:
                one["requestBody"] = link["requestBody"]
            written[name] = one
        answer["links"] = written
    return doc
