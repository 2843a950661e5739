"""What every stored document in a REST answer carries, for the old apps.

The old backend answered Mongoose documents: each with `_id` (a 24-hex
string), which the apps navigate with (`stream._id`, `product._id`). Every
answer model of a stored document derives from `DocumentOut`: `id` as before,
and `_id`, always the same value, written by the answer and stated in the
OpenAPI document (a read-only, required field of the answer schema).

Money in answers is a `MoneyOut`: a JSON number whose text is the exact amount
(`core.money.money_number`; the JSON writer prints a float's shortest text),
always beside its integer minor units and its currency.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, computed_field


class DocumentOut(BaseModel):
    id: str

    @computed_field(alias="_id", description="the same as `id` (the old apps read `_id`)")  # type: ignore[prop-decorator]  # pydantic's documented form: a computed field over a property
    @property
    def underscore_id(self) -> str:
        return self.id


MoneyOut = Annotated[
    float,
    Field(
        description="the exact amount in `currency`, as a JSON number whose text is exact "
        "(at most the currency's decimals); the same amount in minor units beside it"
    ),
]
