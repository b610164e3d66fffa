"""Each domain owns its Redis keys (persistence/<domain>/redis_keys.py) and no two domains' keys can collide:
every key a domain makes, from valid ids, matches that domain's declared patterns and no other domain's.

A new domain's keys module is found by walking persistence/ (any ``redis_keys`` module below it), so it is
checked without touching this test; it declares KEYS (its key functions) and KEY_PATTERNS (their shapes).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import secrets
from collections.abc import Callable
from types import ModuleType

import pytest

import persistence

samples_per_key = 25


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


# Valid values of each key parameter, by its name (ids as engine/ids.py and the stores make them).
_ARGUMENTS: dict[str, Callable[[], str]] = {
    "org_id": lambda: "org_" + _hex(32),
    "event_id": lambda: "evt_" + _hex(32),
    "key_holder_id": lambda: secrets.choice(("key_", "usr_")) + _hex(32),
    "session_id": lambda: "ses_" + _hex(32),
    "prefix": lambda: _hex(12),
    "actor_name": lambda: secrets.choice(("voelgoed/inv-host-", "voelgoed/inv-evt-")) + _hex(8),
    "route_class": lambda: secrets.choice(("reads", "holds", "writes")),
    "subject": lambda: secrets.choice(("key", "ip", "buyer", "account")),
    "value": lambda: secrets.choice(("203.0.113.7", "someone@example.com")),
    "ip": lambda: secrets.choice(("203.0.113.7", "2001:db8::1")),
    "idempotency_key": lambda: secrets.token_urlsafe(12),
    "parts": lambda: "evt_" + _hex(32),
    "promo_code": lambda: secrets.choice(("SUMMER10", "VIP", "EARLY_BIRD-2")),
}


def _domains() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.walk_packages(persistence.__path__, "persistence."):
        if info.name.rsplit(".", 1)[-1] == "redis_keys" and info.name != "persistence.redis_keys":
            found[info.name.removeprefix("persistence.").removesuffix(".redis_keys")] = importlib.import_module(
                info.name
            )
    return found


DOMAINS = _domains()


def _sample(key: Callable[..., str]) -> str:
    args = []
    for name, parameter in inspect.signature(key).parameters.items():
        args += [_ARGUMENTS[name]()] * (2 if parameter.kind is parameter.VAR_POSITIONAL else 1)
    return key(*args)


def test_the_domains_with_keys_are_found() -> None:
    assert {"inventory", "catalog", "access", "ratelimit", "idempotency"} <= set(DOMAINS)


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_a_domains_keys_match_its_own_patterns_and_no_other_domains(domain: str) -> None:
    own = [re.compile(p) for p in DOMAINS[domain].KEY_PATTERNS]
    others = {d: [re.compile(p) for p in m.KEY_PATTERNS] for d, m in DOMAINS.items() if d != domain}
    for key in DOMAINS[domain].KEYS:
        for _ in range(samples_per_key):
            made = _sample(key)
            assert made.startswith("vg:"), made
            assert any(p.fullmatch(made) for p in own), f"{domain}: {made!r} matches none of its KEY_PATTERNS"
            clashes = [d for d, patterns in others.items() if any(p.fullmatch(made) for p in patterns)]
            assert not clashes, f"{domain}'s key {made!r} has the shape of {clashes}'s keys"
