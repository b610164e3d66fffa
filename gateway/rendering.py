"""Answers rendered from their response models: the model that documents an answer in OpenAPI is the one that
renders it, so the two cannot drift. A route hands ``render`` plain data; the model validates it (a missing or
mistyped field is a server bug: 500, never a malformed answer) and serializes it, both in pydantic's core, which
costs less than building the JSON by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


def rfc3339(moment: datetime | float | None) -> str | None:
    """UTC, 'Z'-suffixed; epoch seconds (the engine's clock) keep their milliseconds."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _engine_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A stored time (Postgres timestamptz): RFC 3339 in UTC, with its microseconds when it has any.
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
# A time of the engine's clock (epoch seconds): RFC 3339 in UTC, milliseconds.
EngineTime = Annotated[datetime, PlainSerializer(_engine_time, return_type=str)]


def render(model: type[BaseModel], data: Any, status: int = 200, *, exclude_none: bool = False) -> Response:
    """``data`` (a dict, or anything the model validates) as ``model``'s JSON. ``exclude_none`` leaves out the
    fields that are null (a ticket names its seat or its unit, never both as null)."""
    instance = model.__pydantic_validator__.validate_python(data)
    body = model.__pydantic_serializer__.to_json(instance, exclude_none=exclude_none, by_alias=True)
    return Response(body, status_code=status, media_type=JSON_MEDIA_TYPE)
