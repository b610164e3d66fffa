"""Field types every domain's models share: names, external ids, ticket codes, seat ids, money."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from engine import limits
from gateway.parsing import RequestModel

money_amount_minor_max = limits.price_minor_max

_TICKET_CODE_PATTERN = rf"^[A-Za-z0-9_-]{{1,{limits.label_chars_max}}}$"

_SEAT_ID_PATTERN = (
    rf"^[A-Za-z0-9]{{1,{limits.label_chars_max}}}-[A-Za-z0-9]{{1,{limits.label_chars_max}}}-[1-9][0-9]{{0,6}}$"
)

NO_CONTROL_CHARS_PATTERN = r"^[^\x00-\x1f\x7f]*$"

PRINTABLE_ASCII_PATTERN = r"^[\x21-\x7e]+$"

DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.name_chars_max, pattern=NO_CONTROL_CHARS_PATTERN)
]

ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.id_chars_max, pattern=PRINTABLE_ASCII_PATTERN)
]

TicketCode = Annotated[str, StringConstraints(pattern=_TICKET_CODE_PATTERN)]

SeatId = Annotated[str, StringConstraints(max_length=limits.id_chars_max, pattern=_SEAT_ID_PATTERN)]


class Money(RequestModel):
    amount_minor: Annotated[int, Field(ge=0, le=money_amount_minor_max)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(description="ISO 4217 code")


class MoneyOut(BaseModel):
    amount_minor: int
    currency: str

