from __future__ import annotations

import uuid

import pytest

from actors.placement import actor_name, dedicated_name, host_name


def test_placement_is_deterministic_and_spread() -> None:
    events = [f"evt_{uuid.uuid4().hex}" for _ in range(2_000)]
    first = [host_name(e, 4) for e in events]
    assert first == [host_name(e, 4) for e in events]
    counts = {name: first.count(name) for name in set(first)}
    assert len(counts) == 4
    assert min(counts.values()) > 350  # about 500 each


def test_adding_a_host_moves_only_events_to_the_new_host() -> None:
    events = [f"evt_{uuid.uuid4().hex}" for _ in range(1_000)]
    moved = [(host_name(e, 4), host_name(e, 5)) for e in events if host_name(e, 4) != host_name(e, 5)]
    assert moved and all(new == "inv-host-4" for _, new in moved)


def test_dedicated_events_get_their_own_actor() -> None:
    assert actor_name("org_a", "evt_b", dedicated=True, hosts_count=4) == dedicated_name("org_a", "evt_b")
    with pytest.raises(ValueError):
        host_name("evt_b", 0)
