"""How commands and results cross the Ray boundary: as plain tuples.

Tuples of str/int/float pickle at C speed, while frozen slotted dataclasses pickle through Python-level
``__getstate__``: measured here, a batch of 2,048 holds and their results took ~55 ms to pickle and unpickle as
dataclasses against well under 10 ms as tuples, rebuilding included. Both sides speak engine.commands types.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.commands import (
    CancelSale,
    Command,
    Confirm,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Release,
    Result,
    SaleView,
    TicketView,
)

Row = tuple[Any, ...]
_COMMAND_TAGS: dict[type, int] = {Hold: 0, Release: 1, Confirm: 2, CancelSale: 3, LookupHold: 4}
_COMMAND_TYPES: tuple[type, ...] = (Hold, Release, Confirm, CancelSale, LookupHold)
_OK_NONE, _OK_HOLD, _OK_SALE, _REJECTED = range(4)


def encode_commands(commands: Sequence[Command]) -> list[Row]:
    return [(_COMMAND_TAGS[type(c)], *_fields(c)) for c in commands]


def _fields(command: Command) -> Row:
    if isinstance(command, Hold):
        return (command.cmd_id, command.hold_id, command.buyer_id, command.seats, command.ticket_type,
                command.quantity, command.ttl_s)
    if isinstance(command, Confirm):
        return command.cmd_id, command.hold_id, command.order_ref
    return command.cmd_id, command.hold_id


def decode_commands(rows: Sequence[Row]) -> list[Command]:
    return [_COMMAND_TYPES[row[0]](*row[1:]) for row in rows]


def encode_results(results: Sequence[Result]) -> list[Row]:
    return [_encode_result(r) for r in results]


def _encode_result(result: Result) -> Row:
    if isinstance(result, Rejected):
        return _REJECTED, result.code, result.message, result.details
    value = result.value
    if value is None:
        return (_OK_NONE,)
    if isinstance(value, HoldView):
        return (_OK_HOLD, value.hold_id, value.buyer_id, value.seats, value.ticket_type, value.quantity,
                value.units, value.expires_at, value.status)
    tickets = tuple((t.ticket_id, t.ticket_type, t.seat_id, t.unit) for t in value.tickets)
    return _OK_SALE, value.sale_id, value.hold_id, value.buyer_id, value.order_ref, tickets


def decode_results(rows: Sequence[Row]) -> list[Result]:
    return [_decode_result(row) for row in rows]


def _decode_result(row: Row) -> Result:
    tag = row[0]
    if tag == _REJECTED:
        return Rejected(row[1], row[2], row[3])
    if tag == _OK_NONE:
        return Ok(None)
    if tag == _OK_HOLD:
        return Ok(HoldView(*row[1:]))
    tickets = tuple(TicketView(*t) for t in row[5])
    return Ok(SaleView(row[1], row[2], row[3], row[4], tickets))
