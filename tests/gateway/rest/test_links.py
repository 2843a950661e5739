"""The OpenAPI document's links (`gateway/rest/links.py`): each leads from a documented answer to a
documented operation, by its real operationId, and fills only parameters that operation takes."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import create_app
from gateway.rest.links import LINKS, add_links
from runtime.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(), "mongodb://127.0.0.1:1", "s" * 48)  # nothing connects until it serves
    doc: dict[str, Any] = app.openapi()
    return doc


def operations_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()}


def test_every_link_is_in_the_served_document_and_leads_to_a_real_operation(document: dict[str, Any]) -> None:
    by_id = operations_by_id(document)
    written = 0
    for (method, path, status), links in LINKS.items():
        answer = document["paths"][path][method]["responses"][status]
        assert set(answer["links"]) == set(links), (method, path, status)
        for name, link in answer["links"].items():
            target = by_id[link["operationId"]]
            path_params = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
            assert set(link.get("parameters", {})) == path_params, (name, path_params)
            assert all(
                v.startswith(("$response.body#/", "$request.path.")) for v in link.get("parameters", {}).values()
            )
            if "requestBody" in link:
                assert "requestBody" in target, name
            written += 1
    assert written == sum(len(links) for links in LINKS.values()) >= 25


def test_create_read_update_delete_and_order_pay_are_linked(document: dict[str, Any]) -> None:
    def targets(method: str, path: str, status: str) -> set[str]:
        links = document["paths"][path][method]["responses"][status]["links"]
        return {link["operationId"] for link in links.values()}

    ids = {f"{m} {p}": op["operationId"] for p, ops in document["paths"].items() for m, op in ops.items()}
    assert {
        ids["get /products/{product_id}"],
        ids["put /products/{product_id}"],
        ids["delete /products/{product_id}"],
    } <= (targets("post", "/products", "201"))
    assert {
        ids["get /livestreams/{stream_id}"],
        ids["put /livestreams/{stream_id}"],
        ids["delete /livestreams/{stream_id}"],
    } <= (targets("post", "/livestreams", "201"))
    assert ids["post /orders"] in targets("post", "/products", "201")
    assert ids["post /orders/{order_id}/payments"] in targets("post", "/orders", "201")
    assert ids["post /payments/{payment_id}/confirm"] in targets("post", "/orders/{order_id}/payments", "201")


def test_a_link_to_an_operation_the_document_lacks_is_refused() -> None:
    doc: dict[str, Any] = {"paths": {"/products": {"post": {"responses": {"201": {}}}}}}
    with pytest.raises(KeyError, match="no such"):
        add_links(doc)
