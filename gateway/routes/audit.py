"""/v1/audit-log: the caller's organization's audit entries, newest first, filtered and paged by an opaque cursor.

Entries come back with their hashes, so a client can check the chain itself (docs/api.md, "Audit log")."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine import audit_chain
from engine.access.rules import Permission
from gateway.endpoints import Call, read_route
from gateway.errors import ValidationFailed
from gateway.fields import PRINTABLE_ASCII_PATTERN
from gateway.parsing import parse_query as parsed_query
from gateway.rendering import render
from persistence import audit
from services import audit_log

TAG = ("audit log",)
SCOPE = Permission.AUDIT_READ.value
page_entries_default = 50
page_entries_max = 200
cursor_chars_max = 64
_CURSOR_PREFIX = "seq:"
_CURSOR_RE = re.compile(r"seq:([1-9][0-9]{0,17})")
_RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    if not isinstance(value, str) or _RFC3339_RE.fullmatch(value) is None:
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 time with an offset, like 2026-01-01T00:00:00Z")
    try:
        moment = datetime.fromisoformat(value.upper())
    except ValueError:
        raise PydanticCustomError("rfc3339", "is not a valid time") from None
    try:
        # In UTC here, not in the database: 9999-12-31T23:59:59-01:00 is year 10000 in UTC, which the driver would
        # refuse mid-query (a DataError the route would otherwise answer as an outage).
        return moment.astimezone(UTC)
    except OverflowError:
        # A rule beyond the document's date-time format: type "invalid" (tests/e2e/schemathesis_hooks.py).
        raise PydanticCustomError("invalid", "is out of range: in UTC it must fall within years 1..9999") from None


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The seq a cursor continues below, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    match = _CURSOR_RE.fullmatch(raw)
    return int(match.group(1)) if match else None


def _cursor(value: object) -> object:
    if not isinstance(value, str) or len(value) > cursor_chars_max or decode_cursor(value) is None:
        # Opaque: which strings are cursors this route returned is beyond the document's pattern (type "invalid").
        raise PydanticCustomError("invalid", "is not a cursor this route returned (pass next_cursor back unchanged)")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_rfc3339)]
# As the chain hashes it: always six decimals, so a client re-hashing an entry gets the same bytes.
AuditTime = Annotated[datetime, PlainSerializer(audit_chain.rfc3339_micros, return_type=str)]


class AuditQuery(BaseModel):
    """The query parameters of GET /v1/audit-log; every given filter must match."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str | None = Field(
        default=None,
        min_length=1,
        max_length=audit_chain.actor_id_chars_max,
        pattern=PRINTABLE_ASCII_PATTERN,
        description="an actor id: a key id, a user id, or a system part (such as cli)",
    )
    action: str | None = Field(
        default=None,
        max_length=audit_chain.action_chars_max,
        pattern=r"^[a-z_]+(\.[a-z_]+)+$",
        description="an action, such as event.create or session.login_failed",
    )
    object_id: str | None = Field(
        default=None,
        alias="object",
        min_length=1,
        max_length=audit_chain.object_id_chars_max,
        pattern=PRINTABLE_ASCII_PATTERN,
        description="an object id, such as evt_... or key_...",
    )
    since: Rfc3339 | None = Field(default=None, description="entries at or after this RFC 3339 time")
    until: Rfc3339 | None = Field(default=None, description="entries before this RFC 3339 time")
    limit: int = Field(default=page_entries_default, ge=1, le=page_entries_max, description="entries per page")
    cursor: Annotated[
        str,
        BeforeValidator(_cursor),
        Field(json_schema_extra={"minLength": 1, "maxLength": cursor_chars_max, "pattern": "^[A-Za-z0-9_-]+$"}),
    ] | None = Field(
        default=None, description="next_cursor of the previous page: the entries after it (older ones)"
    )


class AuditActorOut(BaseModel):
    type: Literal["user", "key", "system"]
    id: str


class AuditObjectOut(BaseModel):
    type: str
    id: str


class AuditEntryOut(BaseModel):
    seq: int = Field(description="1, 2, 3, ... per organization, in commit order")
    at: AuditTime = Field(description="RFC 3339, UTC, microseconds (as hashed)")
    actor: AuditActorOut
    action: str
    object_: AuditObjectOut = Field(alias="object")
    ip: str | None = Field(description="the client address the call came from")
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    hash: str = Field(description="hex sha256(prev_hash || canonical JSON of the entry)")
    prev_hash: str = Field(description="hex hash of the previous entry (64 zeros for the first)")


class AuditLogOut(BaseModel):
    entries: list[AuditEntryOut]
    next_cursor: str | None = Field(description="pass back as cursor for the next (older) page; null at the end")


def entry_view(row: audit.AuditRow) -> dict[str, Any]:
    entry = row.entry
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": {"type": entry.actor_type, "id": entry.actor_id},
        "action": entry.action,
        "object": {"type": entry.object_type, "id": entry.object_id},
        "ip": entry.ip,
        "before": entry.before,
        "after": entry.after,
        "hash": row.hash.hex(),
        "prev_hash": row.prev_hash.hex(),
    }


def parse_query(request: Request) -> AuditQuery:
    """The validated query parameters: 422 naming each bad (unknown, repeated or invalid) one."""
    wanted = parsed_query(AuditQuery, request.query_params.multi_items())
    if wanted.since is not None and wanted.until is not None and wanted.until < wanted.since:
        raise ValidationFailed(
            details={"fields": [{"field": "until", "message": "is before since", "type": "invalid"}]}
        )
    return wanted


@read_route(
    "The organization's audit log, newest first",
    description=(
        "Every write and every login (success and failure) of the organization, with who (user, key or system), "
        "what, which object, when, from where, and the object before/after (never a secret). Filters combine; "
        f"pages hold 1..{page_entries_max} entries ({page_entries_default} by default); follow next_cursor until "
        "it is null. Each entry carries its hash and its predecessor's: the organization's chain."
    ),
    query=AuditQuery,
    response=AuditLogOut,
    scope=SCOPE,
    tags=TAG,
)
async def list_audit_log(call: Call[Any]) -> Response:
    wanted = parse_query(call.request)
    after_seq = None if wanted.cursor is None else decode_cursor(wanted.cursor)
    filters = audit_log.Filters(wanted.actor, wanted.action, wanted.object_id, wanted.since, wanted.until)
    page = await audit_log.page(call.svc, call.principal.org_id, filters, after_seq=after_seq, limit=wanted.limit)
    next_cursor = None if page.next_after_seq is None else encode_cursor(page.next_after_seq)
    return render(AuditLogOut, {"entries": [entry_view(row) for row in page.rows], "next_cursor": next_cursor})


ROUTES: list[BaseRoute] = [Route("/v1/audit-log", list_audit_log, methods=["GET"])]
