"""Everything the gateway and the inventory actor exchange survives the wire unchanged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.wire import decode_commands, decode_results, encode_commands, encode_results
from engine.inventory.best_available import BestRequest
from engine.inventory.commands import (
    CancelSale,
    CancelTickets,
    Confirm,
    ExtendHold,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Release,
    SaleView,
    TicketView,
    actor_ref,
)
from engine.refusals import Refusal

text = st.text(max_size=20)
ids = st.text(alphabet="abcdef0123456789_", min_size=1, max_size=60)
seat_tuples = st.lists(text, max_size=4).map(tuple)
unit_tuples = st.lists(st.integers(1, 10**6), max_size=4).map(tuple)
# who confirmed, as engine.inventory.commands.actor_ref spells it (a Confirm refuses any other shape)
actor_refs = st.builds(actor_ref, st.sampled_from(["key", "user", "system"]), ids)
best_requests = st.none() | st.builds(
    BestRequest, st.integers(0, 100), st.none() | text, st.lists(text, max_size=3).map(tuple),
    st.lists(text, max_size=3).map(tuple),
)

commands = st.one_of(
    st.builds(
        Hold, ids, ids, text, seat_tuples, st.none() | text, st.integers(0, 100), st.none() | st.integers(1, 3600),
        best_requests,
    ),
    st.builds(Release, ids, ids),
    st.builds(Confirm, ids, ids, text, actor_refs, st.none() | st.ip_addresses().map(str)),
    st.builds(CancelSale, ids, ids),
    st.builds(LookupHold, ids, ids),
    st.builds(ExtendHold, ids, ids, st.integers(-(2**31), 2**31)),
    st.builds(CancelTickets, ids, ids, st.lists(ids, max_size=4).map(tuple)),  # empty too: the core refuses it
)
details = st.dictionaries(text, st.lists(text, max_size=3) | st.integers(-(2**63), 2**63 - 1))
tickets = st.builds(TicketView, ids, text, st.none() | text, st.none() | st.integers(1, 10**6))
results = st.one_of(
    st.just(Ok(None)),
    st.builds(Ok, st.builds(HoldView, ids, text, seat_tuples, text, st.integers(0, 100), unit_tuples,
                            st.floats(0, 2e9), st.sampled_from(["held", "sold"]))),
    st.builds(Ok, st.builds(SaleView, ids, ids, text, text, st.lists(tickets, max_size=3).map(tuple))),
    st.builds(Rejected, st.sampled_from(list(Refusal)), text, details),
)


@given(st.lists(commands, max_size=20))
def test_commands_round_trip(batch: list[object]) -> None:
    assert decode_commands(encode_commands(batch)) == batch  # type: ignore[arg-type]


@given(st.lists(results, max_size=20))
def test_results_round_trip(batch: list[object]) -> None:
    assert decode_results(encode_results(batch)) == batch  # type: ignore[arg-type]
