"""JSON request bodies with exact numbers: every REST route reads a JSON number
with a fraction or an exponent as a `Decimal` of its text, never as a float.

The old apps send prices as JSON numbers (`"price": 49.99`). Parsed into a
float, `49.99` is already something else, and a number of more than 15
significant digits (`49.990000000000000001`) collapses onto a price it is not.
Parsed as a `Decimal`, the text sent is the amount (`core/money.py` then
refuses more decimals than the currency has), and whole numbers written with a
fraction (`2.0`) stay whole (`Integral`). Integers parse as `int`, as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


class ExactJsonRequest(Request):
    """A request whose `json()` parses numbers with a fraction or exponent as `Decimal`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactJsonRoute(APIRoute):
    """The route class of every REST router: its handler reads the body as an `ExactJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact(request: Request) -> Response:
            return await handler(ExactJsonRequest(request.scope, request.receive))

        return exact
