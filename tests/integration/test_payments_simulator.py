"""The provider client (persistence/payments/simulator.py) against the real simulator subprocess (paysim/): every
test card's outcome arrives by signed webhook, captures and refunds are idempotent and bounded, and the fault
switch does what it says. The signature is checked with the platform's own verifier (engine/payments)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from engine.payments.provider import (
    CreateIntent,
    EventType,
    IntentStatus,
    ProviderRefused,
    ProviderUnavailable,
    RefundRequest,
    WebhookEvent,
)
from engine.payments.signature import SignatureRefusal, verify
from engine.payments.webhooks import WebhookRefused
from persistence.payments.simulator import RetryPolicy, SimulatorProvider
from tests.paysim_fixtures import Delivery, RunningSimulator

SUCCEEDS = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
DUPLICATE_WEBHOOK = "4000000000000259"
SLOW = "4000000000003220"
slow_card_s = 5.0


def key() -> str:
    return "test-" + secrets.token_hex(8)


async def new_intent(sim: RunningSimulator, amount_minor: int = 12_500, currency: str = "ZAR") -> Any:
    return await sim.provider.create_intent(
        CreateIntent(amount_minor=amount_minor, currency=currency, idempotency_key=key(), metadata={"order": "o1"})
    )


def read(sim: RunningSimulator, delivery: Delivery) -> WebhookEvent:
    # the platform's verifier, on the raw bytes as delivered
    assert verify(sim.secret, delivery.body, delivery.signature, now_s=time.time()) is None
    return sim.provider.parse_webhook(delivery.body, delivery.signature, now_s=time.time())


async def events_of(sim: RunningSimulator, intent_id: str, count: int) -> list[WebhookEvent]:
    await sim.receiver.wait_for(lambda _: len(sim.receiver.for_intent(intent_id)) >= count)
    return [read(sim, d) for d in sim.receiver.for_intent(intent_id)]


async def authorized(sim: RunningSimulator, amount_minor: int = 12_500) -> str:
    intent = await new_intent(sim, amount_minor)
    await sim.provider.confirm(intent.intent_id, SUCCEEDS)
    return str(intent.intent_id)


@pytest.mark.parametrize(
    ("card", "event_type", "status", "failure_code"),
    [
        (SUCCEEDS, EventType.AUTHORIZED, IntentStatus.AUTHORIZED, None),
        (DECLINED, EventType.FAILED, IntentStatus.FAILED, "card_declined"),
        (INSUFFICIENT_FUNDS, EventType.FAILED, IntentStatus.FAILED, "insufficient_funds"),
    ],
)
async def test_each_card_outcome_arrives_by_signed_webhook(
    paysim: RunningSimulator, card: str, event_type: EventType, status: IntentStatus, failure_code: str | None
) -> None:
    intent = await new_intent(paysim)
    assert intent.status is IntentStatus.REQUIRES_PAYMENT
    assert intent.confirm_url == f"{paysim.url}/v1/intents/{intent.intent_id}/confirm"
    answered = await paysim.provider.confirm(intent.intent_id, card)
    assert answered.status is status

    [event] = await events_of(paysim, intent.intent_id, 1)
    assert event.type is event_type
    assert event.intent.status is status and event.intent.failure_code == failure_code
    assert event.intent.amount_minor == 12_500 and event.intent.currency == "ZAR"
    assert event.intent.metadata == {"order": "o1"}
    assert (await paysim.provider.get_intent(intent.intent_id)).status is status


async def test_the_duplicate_card_delivers_its_outcome_twice_with_one_event_id(paysim: RunningSimulator) -> None:
    intent = await new_intent(paysim)
    await paysim.provider.confirm(intent.intent_id, DUPLICATE_WEBHOOK)
    first, second = await events_of(paysim, intent.intent_id, 2)
    await paysim.wait_idle()
    assert len(paysim.receiver.for_intent(intent.intent_id)) == 2
    assert first.event_id == second.event_id
    assert first.type is second.type is EventType.AUTHORIZED


async def test_the_slow_card_authorizes_after_five_seconds(paysim: RunningSimulator) -> None:
    intent = await new_intent(paysim)
    started = time.monotonic()
    answered = await paysim.provider.confirm(intent.intent_id, SLOW)
    assert answered.status is IntentStatus.PROCESSING
    assert (await paysim.provider.get_intent(intent.intent_id)).status is IntentStatus.PROCESSING
    [event] = await events_of(paysim, intent.intent_id, 1)
    waited_s = paysim.receiver.for_intent(intent.intent_id)[0].received_at - started
    assert slow_card_s - 0.1 <= waited_s <= slow_card_s + 3.0
    assert event.type is EventType.AUTHORIZED


async def test_a_card_that_is_not_a_test_card_is_refused(paysim: RunningSimulator) -> None:
    intent = await new_intent(paysim)
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.confirm(intent.intent_id, "4111111111111111")
    assert (refused.value.status, refused.value.code) == (422, "unknown_test_card")
    assert (await paysim.provider.get_intent(intent.intent_id)).status is IntentStatus.REQUIRES_PAYMENT


async def test_an_intent_is_confirmed_once(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim)
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.confirm(intent_id, DECLINED)
    assert refused.value.code == "already_confirmed"


async def test_create_with_the_same_key_is_one_intent(paysim: RunningSimulator) -> None:
    before = await paysim.stats()
    request = CreateIntent(amount_minor=700, currency="EUR", idempotency_key=key())
    first = await paysim.provider.create_intent(request)
    second = await paysim.provider.create_intent(request)
    assert first.intent_id == second.intent_id
    assert (await paysim.stats())["intents"] == before["intents"] + 1
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.create_intent(CreateIntent(701, "EUR", request.idempotency_key))
    assert (refused.value.status, refused.value.code) == (422, "idempotency_key_reused")


async def test_capture_with_the_same_key_is_one_capture(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim)
    before = await paysim.stats()
    capture_key = key()
    first = await paysim.provider.capture(intent_id, capture_key)
    second = await paysim.provider.capture(intent_id, capture_key)
    assert first == second and first.status is IntentStatus.CAPTURED and first.captured_minor == 12_500
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.capture(intent_id, key())
    assert (refused.value.status, refused.value.code) == (409, "already_captured")
    after = await paysim.stats()
    assert after["captures"] == before["captures"] + 1
    assert after["captured_minor"]["ZAR"] == before["captured_minor"].get("ZAR", 0) + 12_500
    assert after["captures"] == after["captured_intents"]
    events = await events_of(paysim, intent_id, 2)
    # deliveries run concurrently: events close together may arrive in either order, as from a real provider
    assert sorted(e.type for e in events) == sorted([EventType.AUTHORIZED, EventType.CAPTURED])


async def test_a_failed_or_unconfirmed_intent_cannot_be_captured(paysim: RunningSimulator) -> None:
    unconfirmed = await new_intent(paysim)
    declined = await new_intent(paysim)
    await paysim.provider.confirm(declined.intent_id, DECLINED)
    for intent_id in (unconfirmed.intent_id, declined.intent_id):
        with pytest.raises(ProviderRefused) as refused:
            await paysim.provider.capture(intent_id, key())
        assert (refused.value.status, refused.value.code) == (409, "not_capturable")


async def test_refunds_are_partial_and_never_more_than_captured(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim, amount_minor=1_000)
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.refund(RefundRequest(intent_id, 100, "ZAR", key()))
    assert refused.value.code == "not_refundable"  # authorized, not captured: nothing to return yet
    await paysim.provider.capture(intent_id, key())
    before = await paysim.stats()

    first_key = key()
    first = await paysim.provider.refund(RefundRequest(intent_id, 600, "ZAR", first_key, reason="one seat"))
    assert await paysim.provider.refund(RefundRequest(intent_id, 600, "ZAR", first_key, reason="one seat")) == first
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.refund(RefundRequest(intent_id, 401, "ZAR", key()))
    assert (refused.value.status, refused.value.code) == (422, "refund_exceeds_captured")
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.refund(RefundRequest(intent_id, 400, "USD", key()))
    assert refused.value.code == "currency_mismatch"
    await paysim.provider.refund(RefundRequest(intent_id, 400, "ZAR", key()))
    intent = await paysim.provider.get_intent(intent_id)
    assert (intent.status, intent.captured_minor, intent.refunded_minor) == (IntentStatus.REFUNDED, 1_000, 1_000)
    with pytest.raises(ProviderRefused) as refused:
        await paysim.provider.refund(RefundRequest(intent_id, 1, "ZAR", key()))
    assert refused.value.code == "refund_exceeds_captured"

    after = await paysim.stats()
    assert after["refunds"] == before["refunds"] + 2
    assert after["refunded_minor"]["ZAR"] == before["refunded_minor"].get("ZAR", 0) + 1_000
    events = await events_of(paysim, intent_id, 4)
    refunds = {e.refund.amount_minor: e.intent for e in events if e.refund is not None}
    assert sorted(refunds) == [400, 600]
    assert (refunds[600].status, refunds[600].refunded_minor) == (IntentStatus.CAPTURED, 600)
    assert (refunds[400].status, refunds[400].refunded_minor) == (IntentStatus.REFUNDED, 1_000)


async def test_cancel_voids_an_authorization(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim)
    canceled = await paysim.provider.cancel(intent_id, key())
    assert canceled.status is IntentStatus.CANCELED
    with pytest.raises(ProviderRefused):
        await paysim.provider.capture(intent_id, key())
    events = await events_of(paysim, intent_id, 2)
    assert {e.type for e in events} == {EventType.AUTHORIZED, EventType.CANCELED}


async def test_failed_requests_are_retried_and_take_effect_once(paysim: RunningSimulator) -> None:
    await paysim.set_faults(fail_requests=2)
    before = await paysim.stats()
    intent = await new_intent(paysim)
    after = await paysim.stats()
    assert after["failed_by_fault"] == before["failed_by_fault"] + 2
    assert after["intents"] == before["intents"] + 1
    assert (await paysim.provider.get_intent(intent.intent_id)).intent_id == intent.intent_id


async def test_a_lost_capture_answer_is_retried_without_a_second_capture(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim)
    before = await paysim.stats()
    await paysim.set_faults(fail_after_effect=1)
    captured = await paysim.provider.capture(intent_id, key())
    after = await paysim.stats()
    assert captured.status is IntentStatus.CAPTURED
    assert after["lost_answers"] == before["lost_answers"] + 1  # the first answer really was lost
    assert after["idempotent_replays"] >= before["idempotent_replays"] + 1
    assert after["captures"] == before["captures"] + 1


async def test_a_lost_refund_answer_is_retried_without_a_second_refund(paysim: RunningSimulator) -> None:
    intent_id = await authorized(paysim, amount_minor=1_000)
    await paysim.provider.capture(intent_id, key())
    before = await paysim.stats()
    await paysim.set_faults(fail_after_effect=1)
    await paysim.provider.refund(RefundRequest(intent_id, 300, "ZAR", key()))
    after = await paysim.stats()
    assert after["lost_answers"] == before["lost_answers"] + 1
    assert after["refunds"] == before["refunds"] + 1
    assert (await paysim.provider.get_intent(intent_id)).refunded_minor == 300


async def test_a_provider_that_keeps_failing_gives_up_within_its_bounds(paysim: RunningSimulator) -> None:
    await paysim.set_faults(fail_requests=1_000)
    policy = RetryPolicy(attempts_max=3, total_s_max=2.0, attempt_s_max=1.0, backoff_s_first=0.01, backoff_s_max=0.05)
    async with SimulatorProvider(paysim.url, paysim.secret, api_key=paysim.api_key, retry=policy) as provider:
        before = (await paysim.stats())["failed_by_fault"]
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await provider.create_intent(CreateIntent(100, "ZAR", key()))
        assert time.monotonic() - started <= policy.total_s_max + 0.5
        assert (await paysim.stats())["failed_by_fault"] == before + policy.attempts_max


async def test_slow_answers_time_out_and_the_same_key_later_finds_the_one_intent(paysim: RunningSimulator) -> None:
    await paysim.set_faults(response_delay_s=1.0)
    policy = RetryPolicy(attempts_max=3, total_s_max=1.5, attempt_s_max=0.3, backoff_s_first=0.01, backoff_s_max=0.05)
    request = CreateIntent(900, "ZAR", key())
    before = (await paysim.stats())["intents"]
    async with SimulatorProvider(paysim.url, paysim.secret, api_key=paysim.api_key, retry=policy) as impatient:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await impatient.create_intent(request)
        assert time.monotonic() - started <= policy.total_s_max + 0.5
    await paysim.reset_faults()
    intent = await paysim.provider.create_intent(request)
    assert intent.amount_minor == 900
    assert (await paysim.stats())["intents"] == before + 1  # every timed-out attempt was the same intent


async def test_webhooks_can_be_duplicated(paysim: RunningSimulator) -> None:
    await paysim.set_faults(duplicate_webhooks=True)
    intent_id = await authorized(paysim)
    first, second = await events_of(paysim, intent_id, 2)
    assert first.event_id == second.event_id


async def test_webhooks_can_be_reordered(paysim: RunningSimulator) -> None:
    await paysim.set_faults(reorder_webhooks=2)
    first = await authorized(paysim)
    second = await authorized(paysim)
    await paysim.receiver.wait_for(lambda ds: len(ds) >= 2)
    arrived = [d.json()["data"]["intent"]["id"] for d in paysim.receiver.deliveries]
    assert arrived == [second, first]


async def test_webhooks_can_be_delayed(paysim: RunningSimulator) -> None:
    await paysim.set_faults(webhook_delay_s=1.0)
    started = time.monotonic()
    intent_id = await authorized(paysim)
    await events_of(paysim, intent_id, 1)
    assert paysim.receiver.for_intent(intent_id)[0].received_at - started >= 1.0


async def test_webhooks_can_be_dropped(paysim: RunningSimulator) -> None:
    await paysim.set_faults(drop_webhooks=1)
    before = (await paysim.stats())["webhooks"]
    lost = await authorized(paysim)  # its payment.authorized is the one event dropped
    kept = await authorized(paysim)
    await events_of(paysim, kept, 1)
    stats = await paysim.wait_idle()
    assert paysim.receiver.for_intent(lost) == []
    assert (await paysim.provider.get_intent(lost)).status is IntentStatus.AUTHORIZED  # it happened all the same
    assert stats["webhooks"]["dropped"] == before["dropped"] + 1
    assert stats["webhooks"]["queued"] == before["queued"] + 1
    async with paysim.session.get(f"{paysim.url}/_sim/faults") as answer:
        assert (await answer.json())["drop_webhooks"] == 0  # used up


async def test_stale_signatures_are_refused_by_the_platform(paysim: RunningSimulator) -> None:
    await paysim.set_faults(signature_age_s=600)
    intent_id = await authorized(paysim)
    await paysim.receiver.wait_for(lambda _: len(paysim.receiver.for_intent(intent_id)) >= 1)
    [delivery] = paysim.receiver.for_intent(intent_id)
    assert verify(paysim.secret, delivery.body, delivery.signature, now_s=time.time()) is SignatureRefusal.STALE
    with pytest.raises(WebhookRefused) as refused:
        paysim.provider.parse_webhook(delivery.body, delivery.signature, now_s=time.time())
    assert refused.value.reason == SignatureRefusal.STALE.value


async def test_a_receiver_that_fails_gets_the_delivery_again(paysim: RunningSimulator) -> None:
    paysim.receiver.fail_next = 2
    intent_id = await authorized(paysim)
    [event] = await events_of(paysim, intent_id, 1)
    assert event.type is EventType.AUTHORIZED
    assert paysim.receiver.refused == 2
    assert paysim.receiver.for_intent(intent_id)[0].attempt == 3


async def test_bad_fault_settings_are_refused_and_change_nothing(paysim: RunningSimulator) -> None:
    for bad in ({"fail_requests": -1}, {"no_such_fault": 1}, {"duplicate_webhooks": 1}, {"response_delay_s": 1e9},
                {"drop_webhooks": 0.5}, {"drop_webhooks": -1}):
        async with paysim.session.post(f"{paysim.url}/_sim/faults", json={"reorder_webhooks": 5, **bad}) as answer:
            assert answer.status == 422
    async with paysim.session.get(f"{paysim.url}/_sim/faults") as answer:
        assert (await answer.json())["reorder_webhooks"] == 0


async def test_the_platform_calls_need_the_api_key(paysim: RunningSimulator) -> None:
    body = {"amount_minor": 100, "currency": "ZAR"}
    async with paysim.session.post(f"{paysim.url}/v1/intents", json=body, headers={"Idempotency-Key": key()}) as answer:
        assert answer.status == 401
    headers = {"Authorization": f"Bearer {paysim.api_key}"}
    async with paysim.session.post(f"{paysim.url}/v1/intents", json=body, headers=headers) as answer:
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == "idempotency_key_required"
