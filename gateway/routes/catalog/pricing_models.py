"""Pricing's request and response bodies: an event's price tiers, fees and tax (parts of EventCreate), promo codes
and quotes. Field shapes here; the rules across fields are engine/catalog/pricing.py's, run by the validators."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from engine import limits
from engine.catalog import pricing
from gateway.fields import ExternalId, Money, TicketCode, UtcTime
from gateway.parsing import RequestModel, cross_field_error
from gateway.rendering import Timestamp

_PRICE_CODE_PATTERN = rf"^[A-Za-z0-9_-]{{1,{limits.label_chars_max}}}$"
PriceCode = Annotated[str, StringConstraints(pattern=_PRICE_CODE_PATTERN)]
HoldId = Annotated[str, StringConstraints(pattern=r"^hld_[0-9a-f]{52}$")]
BasisPoints = Annotated[int, Field(ge=0, le=pricing.bp_per_whole, description="1 bp = 0.01 %")]
Amount = Annotated[int, Field(ge=0, le=limits.price_minor_max)]


def _refuse(problems: list[pricing.FieldProblem]) -> None:
    if problems:
        raise cross_field_error(problems)


class PriceTierIn(RequestModel):
    until: UtcTime = Field(description="this tier's price applies while now < until")
    price: Money

    def definition(self) -> pricing.PriceTier:
        return pricing.PriceTier(self.until, self.price.amount_minor, self.price.currency)


PriceTiersIn = Annotated[list[PriceTierIn], Field(max_length=pricing.price_tiers_per_type_max)]


class FeeIn(RequestModel):
    code: PriceCode
    per: Literal["ticket", "order"]
    amount_minor: Amount | None = Field(default=None, description="a fixed amount per ticket or per order")
    percent_bp: BasisPoints | None = Field(default=None, description="a share of the net ticket amount")

    def definition(self) -> pricing.Fee:
        return pricing.Fee(self.code, self.per, self.amount_minor, self.percent_bp)

    @model_validator(mode="after")
    def _amount_or_percent(self) -> FeeIn:
        _refuse([(f or "amount_minor", m) for f, m in pricing.fee_problems(self.definition())])
        return self


FeesIn = Annotated[list[FeeIn], Field(max_length=pricing.fees_per_event_max)]


class TaxIn(RequestModel):
    code: PriceCode
    rate_bp: BasisPoints
    included: bool = Field(description="true: inside the ticket prices; false: added on top")

    def definition(self) -> pricing.Tax:
        return pricing.Tax(self.code, self.rate_bp, self.included)


PromoTypes = Annotated[list[TicketCode], Field(min_length=1, max_length=limits.ticket_types_per_event_max)]


class PromoCodeCreate(RequestModel):
    code: PriceCode = Field(description="matched case-insensitively; stored upper-cased")
    percent_off_bp: Annotated[int, Field(ge=1, le=pricing.bp_per_whole)] | None = None
    amount_off_minor: Annotated[int, Field(ge=1, le=limits.price_minor_max)] | None = Field(
        default=None, description="once per order, at most the eligible tickets' amount"
    )
    max_uses: Annotated[int, Field(ge=1, le=pricing.promo_max_uses_max)] | None = None
    max_uses_per_buyer: Annotated[int, Field(ge=1, le=pricing.promo_max_uses_max)] | None = None
    valid_from: UtcTime | None = None
    valid_until: UtcTime | None = None
    ticket_types: PromoTypes | None = Field(default=None, description="the types it applies to; all when left out")

    def definition(self) -> pricing.Promo:
        return pricing.Promo(
            code=pricing.promo_key(self.code),
            percent_off_bp=self.percent_off_bp,
            amount_off_minor=self.amount_off_minor,
            max_uses=self.max_uses,
            max_uses_per_buyer=self.max_uses_per_buyer,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            ticket_types=None if self.ticket_types is None else tuple(self.ticket_types),
        )

    @model_validator(mode="after")
    def _consistent(self) -> PromoCodeCreate:
        _refuse(pricing.promo_problems(self.definition(), None))
        return self


class PromoCodeOut(BaseModel):
    event_id: str
    code: str
    percent_off_bp: int | None
    amount_off_minor: int | None
    max_uses: int | None
    max_uses_per_buyer: int | None
    valid_from: Timestamp | None
    valid_until: Timestamp | None
    ticket_types: list[str] | None


class QuoteItemIn(RequestModel):
    ticket_type: TicketCode
    quantity: Annotated[int, Field(ge=1, le=limits.quantity_per_hold_max)]


class QuoteCreate(RequestModel):
    buyer_id: ExternalId
    items: Annotated[list[QuoteItemIn], Field(min_length=1, max_length=pricing.items_per_quote_max)] | None = None
    hold_id: HoldId | None = Field(default=None, description="price what this live hold of the buyer holds")
    promo_code: PriceCode | None = None

    def item_definitions(self) -> list[pricing.Item]:
        return [pricing.Item(i.ticket_type, i.quantity) for i in self.items or ()]

    @model_validator(mode="after")
    def _items_or_hold(self) -> QuoteCreate:
        if (self.items is None) == (self.hold_id is None):
            raise cross_field_error([("items", "give items or a hold_id, exactly one")])
        _refuse(pricing.item_problems(self.item_definitions()))
        return self


class QuoteLineOut(BaseModel):
    kind: Literal["ticket", "discount", "fee", "tax"]
    code: str
    description: str
    quantity: int
    amount_minor: int = Field(description="negative for a discount")
    included: bool | None = Field(
        default=None, description="tax lines only: true when the tax is inside the prices (not counted in the total)"
    )


class QuoteOut(BaseModel):
    event_id: str
    buyer_id: str
    currency: str
    lines: list[QuoteLineOut]
    subtotal_minor: int
    discount_minor: int
    fees_minor: int
    tax_minor: int
    total_minor: int
    promo_code: str | None = Field(default=None, description="the promo code applied, when one was given")
    price_list_version: int
    quoted_at: Timestamp
