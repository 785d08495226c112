from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.smarttab.tabs.pricing import CURRENCY_EXPONENTS, MAX_AMOUNT

MAX_PARTS = 50
MAX_UNIT_PRICE = 10**10
MAX_QUANTITY = 9999


def _printable(value: str) -> str:
    """Text shown on receipts and screens: no control characters (PostgreSQL refuses NUL)."""
    if not value.isprintable():
        raise ValueError("control characters are not allowed")
    return value


Percent = Annotated[Decimal, Field(gt=0, le=100, max_digits=5, decimal_places=2)]
TaxCategoryName = Literal["standard", "reduced", "exempt"]
TabStatusName = Literal["open", "paying", "paid", "cancelled", "partially_refunded", "refunded"]
Outcome = Literal["paid", "failed", "pending"]
CashierId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
Label = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_printable)]
TableName = Annotated[str, Field(min_length=1, max_length=50), AfterValidator(_printable)]
ItemName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Sku = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_printable)]
Reason = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]


class _Write(BaseModel):
    """Every write may name the cashier working the terminal (recorded on parts and events)."""

    model_config = ConfigDict(extra="forbid")

    cashier_id: CashierId | None = None


class DiscountIn(BaseModel):
    """``{"kind": "percentage", "percent": 10}`` or ``{"kind": "fixed", "amount": 500}``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["percentage", "fixed"]
    percent: Percent | None = None
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, strict=True)

    @model_validator(mode="after")
    def _one_value(self) -> DiscountIn:
        if self.kind == "percentage" and (self.percent is None or self.amount is not None):
            raise ValueError("a percentage discount takes percent (0 < percent <= 100) only")
        if self.kind == "fixed" and (self.amount is None or self.percent is not None):
            raise ValueError("a fixed discount takes amount (minor units) only")
        return self


class TabOpen(_Write):
    label: Label | None = None
    table: TableName | None = None
    currency: str = Field(default="JPY", pattern=r"^[A-Z]{3}$")
    service_charge_percent: Percent | None = None

    @field_validator("currency")
    @classmethod
    def _supported_currency(cls, value: str) -> str:
        if value not in CURRENCY_EXPONENTS:
            raise ValueError(f"currency {value} is not supported")
        return value


class TabUpdate(_Write):
    """Only the fields sent change; ``null`` clears label, table, discount and service charge."""

    label: Label | None = None
    table: TableName | None = None
    discount: DiscountIn | None = None
    service_charge_percent: Percent | None = None
    tip_amount: int | None = Field(default=None, ge=0, le=MAX_AMOUNT, strict=True)


class ItemAdd(_Write):
    name: ItemName
    sku: Sku | None = None
    quantity: int = Field(default=1, gt=0, le=MAX_QUANTITY, strict=True)
    unit_price: int = Field(
        ge=0, le=MAX_UNIT_PRICE, strict=True, description="Minor units, tax excluded"
    )
    tax_category: TaxCategoryName = "standard"
    discount: DiscountIn | None = None


class ItemUpdate(_Write):
    """Only the fields sent change; ``"discount": null`` removes the item's discount."""

    name: ItemName | None = None
    sku: Sku | None = None
    quantity: int | None = Field(default=None, gt=0, le=MAX_QUANTITY, strict=True)
    unit_price: int | None = Field(default=None, ge=0, le=MAX_UNIT_PRICE, strict=True)
    tax_category: TaxCategoryName | None = None
    discount: DiscountIn | None = None


class FullSplit(_Write):
    mode: Literal["full"]


class EqualSplit(_Write):
    mode: Literal["equal"]
    count: int = Field(ge=1, le=MAX_PARTS, strict=True)


class AmountsSplit(_Write):
    mode: Literal["amounts"]
    amounts: list[Annotated[int, Field(gt=0, le=MAX_AMOUNT, strict=True)]] = Field(
        min_length=1, max_length=MAX_PARTS
    )


class ItemsSplit(_Write):
    mode: Literal["items"]
    parts: list[list[uuid.UUID]] = Field(min_length=1, max_length=MAX_PARTS)


SplitIn = Annotated[FullSplit | EqualSplit | AmountsSplit | ItemsSplit, Field(discriminator="mode")]


class CardIn(BaseModel):
    """What the card reader produced: passed to pgw, never stored or logged."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    pan: str = Field(pattern=r"^[0-9]{12,19}$", repr=False)
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    cvv: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$", repr=False)
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,12}$", repr=False)


class PayIn(_Write):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    method: Literal["card_present", "qr_wallet"] = "card_present"
    entry_mode: Literal["contactless", "chip", "swipe"] | None = None
    card: CardIn | None = None
    tip_amount: int = Field(
        default=0, ge=0, le=MAX_AMOUNT, strict=True, description="Tip given at payment"
    )


class RefundIn(_Write):
    part_number: int | None = Field(default=None, ge=1, le=MAX_PARTS, strict=True)
    amount: int | None = Field(default=None, gt=0, le=MAX_AMOUNT, strict=True)
    reason: Reason | None = None


class CancelIn(_Write):
    reason: Reason | None = None


class RefreshIn(_Write):
    pass


# --- responses -------------------------------------------------------------------------------


class DiscountRead(BaseModel):
    kind: str
    percent: float | None = None
    amount: int | None = None


class ItemRead(BaseModel):
    id: uuid.UUID
    position: int
    name: str
    sku: str | None
    quantity: int
    unit_price: int
    tax_category: str
    discount: DiscountRead | None
    gross: int
    item_discount: int
    tab_discount: int
    net: int


class TaxRead(BaseModel):
    category: str
    rate_percent: int
    base: int
    tax: int


class TotalsRead(BaseModel):
    subtotal: int
    item_discounts: int
    tab_discount: int
    discount_total: int
    service_charge: int
    taxes: list[TaxRead]
    tax_total: int
    tip: int
    total: int


class AttemptRead(BaseModel):
    number: int
    status: str
    method: str
    amount: int
    tip_amount: int
    payment_id: uuid.UUID | None
    failure_code: str | None
    failure_message: str | None
    qr_payload: str | None
    cashier_id: str | None
    created_at: dt.datetime | None


class PartRead(BaseModel):
    number: int
    status: str
    amount: int
    tip_share: int
    item_ids: list[uuid.UUID] | None
    breakdown: dict[str, Any]
    amount_captured: int
    amount_refunded: int
    payment_id: uuid.UUID | None
    cashier_id: str | None
    paid_at: dt.datetime | None
    attempts: int
    last_attempt: AttemptRead | None


class SplitRead(BaseModel):
    mode: str
    generation: int
    parts: list[PartRead]


class RefundRead(BaseModel):
    id: uuid.UUID
    part_number: int
    payment_id: uuid.UUID
    amount: int
    status: str
    reason: str | None
    failure_code: str | None
    cashier_id: str | None
    created_at: dt.datetime | None


class TabRead(BaseModel):
    id: uuid.UUID
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    status: str
    version: int
    label: str | None
    table: str | None
    cashier_id: str | None
    opened_by: str
    currency: str
    discount: DiscountRead | None
    service_charge_percent: float | None
    items: list[ItemRead]
    totals: TotalsRead
    split: SplitRead | None
    amount_paid: int
    amount_refunded: int
    amount_due: int
    refunds: list[RefundRead]
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    closed_at: dt.datetime | None


class TabSummary(BaseModel):
    id: uuid.UUID
    store_id: uuid.UUID
    status: str
    version: int
    label: str | None
    table: str | None
    currency: str
    total: int
    amount_paid: int
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


class TabPage(BaseModel):
    items: list[TabSummary]
    next_cursor: uuid.UUID | None


class PaymentSummary(BaseModel):
    id: uuid.UUID
    status: str
    amount: int
    tip_amount: int
    amount_captured: int
    failure_code: str | None
    failure_message: str | None
    qr_payload: str | None


class PayResult(BaseModel):
    """``outcome``: paid, failed (see the part's last attempt) or pending (unknown yet)."""

    outcome: Outcome
    tab: TabRead
    part: PartRead
    payment: PaymentSummary | None


class RefundResult(BaseModel):
    tab: TabRead
    refunds: list[RefundRead]
