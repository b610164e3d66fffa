"""A provider's webhook delivery, verified and read: the signature first (over the raw bytes), then the body.

Replays inside the signature's age bound and duplicates are not refused here: they verify. The receiver keeps
the event ids it applied and makes a second delivery a no-op.
"""

from __future__ import annotations

import json

from engine.payments.provider import WebhookEvent
from engine.payments.signature import SignatureRefusal, verify
from engine.payments.wire import MalformedProviderData, event_from_json

webhook_body_bytes_max = 64 * 1024
BODY_MALFORMED = "body_malformed"
BODY_TOO_LARGE = "body_too_large"


class WebhookRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # a SignatureRefusal value, BODY_MALFORMED or BODY_TOO_LARGE


def read_webhook(secret: bytes, body: bytes, signature_header: str, now_s: float) -> WebhookEvent:
    """The delivered event, or WebhookRefused saying why it may not be believed."""
    if len(body) > webhook_body_bytes_max:
        raise WebhookRefused(BODY_TOO_LARGE)
    refusal: SignatureRefusal | None = verify(secret, body, signature_header, now_s)
    if refusal is not None:
        raise WebhookRefused(refusal.value)
    try:
        return event_from_json(json.loads(body))
    except (ValueError, RecursionError) as error:  # json's errors and MalformedProviderData are ValueErrors
        raise WebhookRefused(BODY_MALFORMED) from error


__all__ = ["BODY_MALFORMED", "BODY_TOO_LARGE", "MalformedProviderData", "WebhookRefused", "read_webhook"]
