"""Schemathesis over the whole OpenAPI document, against a running gateway: every check (``--checks all``, plus
tests/e2e/schemathesis_hooks.py), every phase (the document's examples, coverage of each schema's edges, fuzzing,
and the stateful phase walking the document's links: create an event, publish it, hold, confirm...), with bounded
examples and a bounded wall-clock time.

The gateway is the real app behind a real uvicorn server on this run's Postgres and Redis, over the in-process
inventory (tests/fakes/inventory.py: the real per-event shell without Ray), like the other e2e tests. Every route
of the router is in the document (``test_every_route_is_documented``), and the run must have tested every
operation of the document (its JUnit report), so a route added anywhere is fuzzed here without anyone listing it.

What the run is told beyond its defaults, and why:
- ``positive_data_acceptance`` lets a schema-valid request be refused with 410 or 422: some rules are beyond any
  JSON Schema (distinct codes within a list, a clock, another object's state). ``rules_beyond_the_schema`` then
  checks that each such refusal names one of those rules and never a field the document admits: see its module.
- The rate limits are off (but the daily quota): a fuzzer is a flood from one key and one address, and answers
  429 (documented, and allowed by every check) would only stop it from reaching deeper. tests/e2e/test_rate_limits.py
  proves the limits themselves.
- Two organizations (a WFC auth file): the run acts as the first, and ``object_level_authorization`` replays the
  first's reads of its own objects with the second's key, which must not get them (the cross-tenant matrix of
  tests/e2e/test_bad_input.py, done by the fuzzer on whatever objects it made).
- Two workers: the gateway answers one while the other generates.
- A fixed seed, so a failure is reproducible (``VOELGOED_SCHEMATHESIS_SEED`` picks another, and
  ``VOELGOED_SCHEMATHESIS_EXAMPLES`` more fuzzing examples for a deeper run by hand, and
  ``VOELGOED_SCHEMATHESIS_ARGS`` adds options, such as an NDJSON report). No ``max-time``:
  with one, fuzzing and the stateful phase repeat until it is spent; the examples bound the run, and the test
  kills it past ``run_s_max``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from starlette.routing import Route, WebSocketRoute

from engine.ratelimit import DEFAULT_RATES, policy_with
from gateway.openapi import WEBSOCKET_TAG, build_openapi, documented_methods, template_of
from gateway.routes import all_routes
from tests.fakes import new_org, running_gateway

# The bounds of the run: examples per operation and phase, steps per stateful scenario, the whole run's time.
fuzzing_examples_max = 12
stateful_examples_max = 30
stateful_steps_max = 8
run_s_max = 240
seed_default = 20261202
TENANTS = ("tenant_a", "tenant_b")
# Refused with these while valid by the schema: rules beyond JSON Schema (see the module's docstring).
POSITIVE_EXPECTED = ["2xx", "3xx", "401", "403", "404", "409", "410", "422", "429", "5xx"]  # the default + 410, 422
# Invalid requests refused with these: schemathesis's default, and 413 (a body over 64 KiB is refused before it is
# read: no JSON Schema can state a size in bytes, and an array past its maxItems is often that large).
NEGATIVE_EXPECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]


def test_every_route_is_documented() -> None:
    """The run below fuzzes the document; the document holds every route of the router, so it fuzzes them all."""
    document = build_openapi(all_routes())
    for route in all_routes():
        assert isinstance(route, Route | WebSocketRoute)
        path = template_of(route.path)
        for method in documented_methods(route):
            assert method in document["paths"].get(path, {}), f"{method.upper()} {path} is not in /openapi.json"
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique: links name their target by it"


async def test_a_plain_get_of_the_live_feed_answers_the_credential_then_426(database_url: str, redis_url: str) -> None:
    """The websocket's path has no HTTP route: a GET without the upgrade is told so, after the credential."""
    _, key = await new_org(database_url, "plain get org")
    path = "/v1/events/" + "evt_" + "0" * 32 + "/live"
    async with running_gateway(database_url, redis_url) as gw:
        anonymous = await gw.client.get(path)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        for ask in ({"headers": {"Authorization": f"Bearer {key}"}}, {"params": {"key": key}}):
            plain = await gw.client.get(path, **ask)  # type: ignore[arg-type]
            assert plain.status_code == 426 and plain.headers["upgrade"] == "websocket", plain.text
            assert plain.json()["error"]["code"] == "upgrade_required"
        posted = await gw.client.post(path, headers={"Authorization": f"Bearer {key}"})
        assert posted.status_code == 405 and posted.headers["allow"] == "GET"


def documented_operations() -> set[str]:
    document = build_openapi(all_routes())
    return {f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops}


def config_toml(auth_file: Path, seed: int, fuzzing_examples: int = fuzzing_examples_max) -> str:
    positive, negative = (", ".join(f'"{s}"' for s in statuses) for statuses in (POSITIVE_EXPECTED, NEGATIVE_EXPECTED))
    websocket_positive, websocket_negative = (
        ", ".join(f'"{s}"' for s in [*statuses, "426"]) for statuses in (POSITIVE_EXPECTED, NEGATIVE_EXPECTED)
    )
    return f"""
hooks = "tests.e2e.schemathesis_hooks"
seed = {seed}
workers = 2
continue-on-failure = true

# Nothing kept between runs (no crash cache in the checkout): each run stands alone.
[cache]
enabled = false

[auth]
auto-signup = false

# Two organizations: the run acts as the first; object_level_authorization replays the first's reads of its own
# objects as the second, which must not get them (another org's id answers 404 like an unknown one).
[auth.wfc]
path = "{auth_file}"
user = "{TENANTS[0]}"
peers = ["{TENANTS[0]}", "{TENANTS[1]}"]

[generation]
max-examples = {fuzzing_examples}

[checks]
enabled = true

[checks.positive_data_acceptance]
expected-statuses = [{positive}]

[checks.negative_data_rejection]
expected-statuses = [{negative}]

# A WebSocket route, which schemathesis calls as a plain GET (it cannot upgrade): after the credential, the answer is
# 426 Upgrade Required, whatever the rest of the request. Its refusals before the upgrade (404, 409...) are
# tests/e2e/test_bad_input.py's test_websocket_refusals.
[[operations]]
include-tag = "{WEBSOCKET_TAG}"

[operations.checks.positive_data_acceptance]
expected-statuses = [{websocket_positive}]

[operations.checks.negative_data_rejection]
expected-statuses = [{websocket_negative}]

[phases.stateful]
max-steps = {stateful_steps_max}

[phases.stateful.generation]
max-examples = {stateful_examples_max}
"""


def report_outcomes(junit: Path) -> dict[str, str | None]:
    """Each operation of the JUnit report: None when it passed, else why not (failure, error or skipped)."""
    outcome: dict[str, str | None] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        problems = [f"{child.tag} {child.get('message') or ''}: {(child.text or '')[:2_000]}" for child in case]
        outcome[name] = "; ".join(problems) or None
    return outcome


async def test_schemathesis_finds_nothing(database_url: str, redis_url: str, tmp_path: Path) -> None:
    keys = [(await new_org(database_url, f"schemathesis {tenant}"))[1] for tenant in TENANTS]
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auth": [
        {"name": tenant, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {key}"}]}
        for tenant, key in zip(TENANTS, keys, strict=True)
    ]}))  # fmt: skip
    seed = int(os.environ.get("VOELGOED_SCHEMATHESIS_SEED", seed_default))
    config = tmp_path / "schemathesis.toml"
    examples = int(os.environ.get("VOELGOED_SCHEMATHESIS_EXAMPLES", fuzzing_examples_max))
    config.write_text(config_toml(auth_file, seed, examples))
    junit = tmp_path / "junit.xml"
    no_rate_limits = policy_with(dict.fromkeys(DEFAULT_RATES))
    async with running_gateway(database_url, redis_url, serve=True, rate_limits=no_rate_limits) as gw:
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
            "run", f"{gw.url}/openapi.json",
            "--checks", "all",
            "--phases", "examples,coverage,fuzzing,stateful",
            # Every path, explicitly: schemathesis leaves out the operation it read the document from otherwise.
            "--include-path-regex", "^/",
            "--report", "junit", "--report-junit-path", str(junit),
            *os.environ.get("VOELGOED_SCHEMATHESIS_ARGS", "").split(),
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=Path(__file__).resolve().parents[2],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), run_s_max + 60)
        except TimeoutError:
            process.kill()
            await process.wait()
            pytest.fail(f"schemathesis ran over {run_s_max + 60} s")
    text = output.decode(errors="replace")
    log = Path(os.environ.get("VOELGOED_SCHEMATHESIS_LOG") or tmp_path / "schemathesis.log")
    log.write_text(text)  # the whole output: the assertion shows its end
    assert process.returncode == 0, f"schemathesis output: {log}\n{text[-20_000:]}"
    outcomes = report_outcomes(junit)
    missing = documented_operations() - set(outcomes)
    assert not missing, f"operations schemathesis did not test: {sorted(missing)}\n{text[-5_000:]}"
    not_clean = {name: why for name, why in outcomes.items() if why is not None}
    assert not not_clean, f"{not_clean}\n{text[-5_000:]}"
