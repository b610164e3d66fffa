"""Field types every domain's models share: names, external ids, ticket codes, seat ids, money; and the shapes of
the path parameters (ids), for OpenAPI."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from engine import ids, limits
from gateway.parsing import RequestModel
from persistence.access import apikeys, users

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


# RFC 3339's date-time, as OpenAPI's "date-time" format means it: pydantic alone would also take "123" (epoch
# seconds), a space for the T, a time without seconds or an offset without its colon.
_RFC3339_RE = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_MICROSECOND_DIGITS = 6


def _rfc3339_text(value: object) -> object:
    """An RFC 3339 string as its datetime (anything else is left to the type's own refusal)."""
    if not isinstance(value, str):
        return value
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        raise PydanticCustomError("datetime_format", "must be an RFC 3339 time with its offset: 2026-12-31T18:00:00Z")
    whole, fraction, offset = match.groups()
    fraction = (fraction or "")[: 1 + _MICROSECOND_DIGITS]  # a finer fraction than microseconds is cut, not refused
    try:
        return datetime.fromisoformat(whole.upper() + fraction + ("+00:00" if offset in "Zz" else offset))
    except ValueError:
        raise PydanticCustomError("datetime_format", "is not a valid date and time") from None


# The driver stores Python's first and last instants as -infinity and infinity (and reads them back naive).
_UTC_EDGES = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_OUT_OF_RANGE = "is out of range: in UTC it must fall after 0001-01-01T00:00:00Z and before 9999-12-31T23:59:59.999999Z"


def _in_utc(moment: datetime) -> datetime:
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is year 0 in UTC, which nothing downstream (rendering, the driver) can hold.
        raise PydanticCustomError("invalid", _OUT_OF_RANGE) from None
    if utc in _UTC_EDGES:  # schemathesis found 0001-01-01T00:00:00Z answering 500 (stored as -infinity)
        raise PydanticCustomError("invalid", _OUT_OF_RANGE)
    return utc


# An RFC 3339 time with its zone, as UTC; refused (422, type "invalid") when UTC cannot hold it.
UtcTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]


class Money(RequestModel):
    amount_minor: Annotated[int, Field(ge=0, le=money_amount_minor_max)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(description="ISO 4217 code")


class MoneyOut(BaseModel):
    amount_minor: int
    currency: str



@dataclass(frozen=True)
class PathParameter:
    """What a path parameter looks like, for OpenAPI. A route looks the id up and answers 404 for anything it does
    not find, a malformed id included, so the pattern documents the ids the API hands out, never a 422."""

    pattern: str
    description: str
    example: str


# By the router's parameter name; a parameter not named here is documented as a non-empty string.
PATH_PARAMETERS: Mapping[str, PathParameter] = MappingProxyType(
    {
        "event_id": PathParameter(
            rf"^{ids.EVENT_PREFIX}[0-9a-f]{{{ids.event_hex_chars}}}$", "an event id", "evt_" + "0" * 32
        ),
        "hold_id": PathParameter(
            rf"^{ids.HOLD_PREFIX}[0-9a-f]{{{ids.event_hex_chars + ids.hold_token_hex_chars}}}$",
            "a hold id (it embeds its event's id)",
            "hld_" + "0" * 52,
        ),
        "key_id": PathParameter(rf"^{apikeys.KEY_ID_PREFIX}[0-9a-f]{{32}}$", "an API key id", "key_" + "0" * 32),
        "user_id": PathParameter(rf"^{users.USER_PREFIX}[0-9a-f]{{32}}$", "a person's id", "usr_" + "0" * 32),
        "order_id": PathParameter(rf"^{ids.ORDER_PREFIX}[0-9a-f]{{52}}$", "an order id", "ord_" + "0" * 52),
        "ticket_id": PathParameter(
            rf"^{ids.TICKET_PREFIX}[0-9a-f]{{52}}_[1-9][0-9]{{0,2}}$", "a ticket id", "tkt_" + "0" * 52 + "_1"
        ),
        "provider": PathParameter(r"^[a-z][a-z0-9_]{0,31}$", "a payment provider's name", "simulator"),
    }
)
