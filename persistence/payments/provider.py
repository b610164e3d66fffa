"""The port: what the platform asks of a payment provider. Values and errors are engine/payments/provider.py's.

Implementations: `persistence.payments.simulator.SimulatorProvider` (HTTP to paysim); tests may pass fakes.
Every call either answers or raises a `ProviderError` within the implementation's own bounded time.
"""

from __future__ import annotations

from typing import Protocol

from engine.payments.provider import CreateIntent, Intent, Refund, RefundRequest, WebhookEvent


class PaymentProvider(Protocol):
    @property
    def name(self) -> str:
        """The provider's name in `POST /v1/payments/webhooks/{provider}`."""
        ...

    async def create_intent(self, request: CreateIntent) -> Intent:
        """A new intent (requires_payment) whose confirm_url the buyer pays at; the same idempotency key answers
        the same intent."""
        ...

    async def confirm(self, intent_id: str, card_number: str) -> Intent:
        """What a buyer's front end does with the card (tests and the harness stand in for it)."""
        ...

    async def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        """Take the authorized amount; the same key answers the same capture and never takes it twice."""
        ...

    async def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        """Void an intent not captured yet (a payment whose hold was lost before capture)."""
        ...

    async def refund(self, request: RefundRequest) -> Refund:
        """Return part or all of what was captured, never more; the same key answers the same refund."""
        ...

    async def get_intent(self, intent_id: str) -> Intent:
        """The intent as the provider has it now: the reconciler's question for attempts that stayed pending."""
        ...

    def parse_webhook(self, body: bytes, signature_header: str, now_s: float) -> WebhookEvent:
        """The delivered event, verified over the raw body; raises engine.payments.webhooks.WebhookRefused."""
        ...
