"""`/products`: the shop's catalogue.

Money is stored in integer minor units with the shop's currency
(`SHOP_CURRENCY`) and shown as a JSON number whose text is exact (`49.99`),
with `priceMinor` and `currency` beside it; request amounts are JSON numbers,
read by their decimal text, or decimal strings (see `core/money.py`). A
product has one `image` (what the old apps send and show) beside its
`images`: `image` is the one sent, else the first of `images`.
Unknown fields of a request are ignored. Products are public; changing the
catalogue is for admins. 422 when a request is invalid in itself; 409 when it
conflicts with what is stored (stock).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.money import MoneyError, MoneyIn, money_number, to_minor
from gateway.context import GatewayContext
from gateway.errors import ApiError
from gateway.rest.deps import Admin, Ctx, Page
from gateway.rest.documents import DocumentOut, MoneyOut
from gateway.rest.exact_json import ExactJsonRoute
from gateway.rest.types import HTTP_URL_SCHEMA, ID_PATTERN, HttpUrl, not_both
from gateway.services.inputs import NOT_BLANK_SCHEMA, Integral, NotBlank
from persistence.products import main_image

router = APIRouter(prefix="/products", tags=["products"], route_class=ExactJsonRoute)

ProductIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="24 hex characters")]
Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]
Category = Annotated[str, Field(min_length=1, max_length=80, json_schema_extra=NOT_BLANK_SCHEMA), NotBlank]
ImageUrl = Annotated[str, Field(max_length=2000, json_schema_extra=HTTP_URL_SCHEMA), HttpUrl]
MAX_STOCK = 10_000_000
Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_STOCK), Integral]


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    price: MoneyIn
    stock: Stock = 0
    images: Annotated[list[ImageUrl], Field(max_length=10)] = []
    image: ImageUrl | None = Field(None, description="the product's one image (else the first of `images`)")
    category: Category | None = None


class ProductUpdate(BaseModel):
    """Every field optional: only those sent change. `stock` sets the level;
    `stockDelta` adds to it atomically (negative to remove, refused with 409 if
    that would go below zero); send one or the other."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=not_both("stock", "stockDelta"))
    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    price: MoneyIn | None = None
    stock: Stock | None = None
    stockDelta: Annotated[int, Field(strict=True, ge=-MAX_STOCK, le=MAX_STOCK), Integral] | None = None
    images: Annotated[list[ImageUrl], Field(max_length=10)] | None = None
    image: ImageUrl | None = None
    category: Category | None = None

    @model_validator(mode="after")
    def _level_or_change(self) -> ProductUpdate:
        if self.stock is not None and self.stockDelta is not None:
            raise ValueError("send either 'stock' (a level) or 'stockDelta' (a change), not both")
        return self


class ProductOut(DocumentOut):
    name: str
    description: str
    price: MoneyOut
    priceMinor: int
    currency: str
    stock: int
    inStock: bool
    images: list[str]
    image: str | None
    category: str | None
    createdAt: str
    updatedAt: str


def product_out(doc: dict[str, Any]) -> ProductOut:
    images = list(doc.get("images") or [])
    return ProductOut(
        id=doc["_id"],
        name=doc["name"],
        description=doc.get("description", ""),
        price=money_number(int(doc["priceMinor"]), doc["currency"]),
        priceMinor=int(doc["priceMinor"]),
        currency=doc["currency"],
        stock=int(doc["stock"]),
        inStock=int(doc["stock"]) > 0,
        images=images,
        image=main_image(doc),
        category=doc.get("category"),
        createdAt=doc["createdAt"],
        updatedAt=doc["updatedAt"],
    )


def minor(ctx: GatewayContext, amount: Any) -> int:
    try:
        return to_minor(amount, ctx.settings.shop_currency)
    except MoneyError as e:
        raise ApiError(422, f"Invalid amount: {e}") from e


@router.post("", status_code=201, response_model=ProductOut)
async def create_product(body: ProductIn, admin: Admin, ctx: Ctx) -> ProductOut:
    """Add a product to the catalogue (admin). The currency is the shop's."""
    doc = await ctx.products.create(
        name=body.name,
        description=body.description,
        price_minor=minor(ctx, body.price),
        currency=ctx.settings.shop_currency,
        stock=body.stock,
        images=body.images,
        category=body.category,
        image=body.image,
    )
    return product_out(doc)


@router.get("", response_model=list[ProductOut])
async def list_products(
    ctx: Ctx, page: Page, response: Response, category: Annotated[str | None, Query(max_length=80)] = None
) -> list[ProductOut]:
    """The catalogue, newest first. Paged: `?page=&limit=`; total in `X-Total-Count`."""
    docs = await ctx.products.list(skip=page.skip, limit=page.limit, category=category)
    response.headers["X-Total-Count"] = str(await ctx.products.count(category))
    return [product_out(d) for d in docs]


@router.get("/{product_id}", response_model=ProductOut)
async def get_product(product_id: ProductIdPath, ctx: Ctx) -> ProductOut:
    doc = await ctx.products.get(product_id)
    if doc is None:
        raise ApiError(404, f"Product {product_id} does not exist")
    return product_out(doc)


@router.put("/{product_id}", response_model=ProductOut)
async def update_product(product_id: ProductIdPath, body: ProductUpdate, admin: Admin, ctx: Ctx) -> ProductOut:
    """Change a product (admin). Pinned copies in live streams keep the values
    they were pinned with until pinned again."""
    fields: dict[str, Any] = {}
    for key in ("name", "description", "images", "image", "category", "stock"):
        value = getattr(body, key)
        if value is not None:
            fields[key] = value
    if body.price is not None:
        fields["priceMinor"] = minor(ctx, body.price)
    if await ctx.products.get(product_id) is None:
        raise ApiError(404, f"Product {product_id} does not exist")
    doc = await ctx.products.update(product_id, fields, body.stockDelta or 0)
    if doc is None:
        if await ctx.products.get(product_id) is None:
            raise ApiError(404, f"Product {product_id} does not exist")
        raise ApiError(409, "Not enough stock to remove that many units")
    return product_out(doc)


@router.delete("/{product_id}", status_code=204)
async def delete_product(product_id: ProductIdPath, admin: Admin, ctx: Ctx) -> Response:
    """Remove a product from the catalogue (admin). Orders keep their copy of it."""
    if not await ctx.products.delete(product_id):
        raise ApiError(404, f"Product {product_id} does not exist")
    return Response(status_code=204)
