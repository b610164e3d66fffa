"""The provider's JSON, strictly read into engine/payments/provider.py's values (and written, for fakes).

A provider is outside the platform: anything it sends that does not have the documented shape is refused as
`MalformedProviderData`, never half-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.payments.provider import EventType, Intent, IntentStatus, Refund, WebhookEvent

provider_id_chars_max = 64
confirm_url_chars_max = 2_048
failure_code_chars_max = 64


class MalformedProviderData(ValueError):
    """The provider's JSON does not have the documented shape."""


def _field(obj: Mapping[str, Any], name: str, kind: type) -> Any:
    value = obj.get(name)
    # bool is an int in Python; an amount of True is malformed
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedProviderData(f"{name!r} should be {kind.__name__}")
    return value


def _id(obj: Mapping[str, Any], name: str) -> str:
    value = _field(obj, name, str)
    if not 0 < len(value) <= provider_id_chars_max or not value.isascii() or not value.isprintable():
        raise MalformedProviderData(f"{name!r} is not a provider id")
    return str(value)


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedProviderData(f"{name!r} should be an object")
    return value


def intent_from_json(value: Any) -> Intent:
    obj = _object(value, "intent")
    try:
        status = IntentStatus(_field(obj, "status", str))
    except ValueError as error:
        raise MalformedProviderData(f"unknown intent status {obj.get('status')!r}") from error
    failure_code = obj.get("failure_code")
    if failure_code is not None and (not isinstance(failure_code, str) or len(failure_code) > failure_code_chars_max):
        raise MalformedProviderData("'failure_code' should be a short string or null")
    metadata = _object(obj.get("metadata", {}), "metadata")
    confirm_url = _field(obj, "confirm_url", str)
    if len(confirm_url) > confirm_url_chars_max:
        raise MalformedProviderData("'confirm_url' too long")
    try:
        return Intent(
            intent_id=_id(obj, "id"),
            status=status,
            amount_minor=_field(obj, "amount_minor", int),
            currency=_field(obj, "currency", str),
            captured_minor=_field(obj, "captured_minor", int),
            refunded_minor=_field(obj, "refunded_minor", int),
            confirm_url=confirm_url,
            metadata=dict(metadata),
            failure_code=failure_code,
            created_at_s=_field(obj, "created_at", int),
        )
    except MalformedProviderData:
        raise
    except ValueError as error:
        raise MalformedProviderData(str(error)) from error


def refund_from_json(value: Any) -> Refund:
    obj = _object(value, "refund")
    try:
        return Refund(
            refund_id=_id(obj, "id"),
            intent_id=_id(obj, "intent_id"),
            amount_minor=_field(obj, "amount_minor", int),
            currency=_field(obj, "currency", str),
            reason=_field(obj, "reason", str),
            created_at_s=_field(obj, "created_at", int),
        )
    except MalformedProviderData:
        raise
    except ValueError as error:
        raise MalformedProviderData(str(error)) from error


def event_from_json(value: Any) -> WebhookEvent:
    obj = _object(value, "event")
    try:
        event_type = EventType(_field(obj, "type", str))
    except ValueError as error:
        raise MalformedProviderData(f"unknown event type {obj.get('type')!r}") from error
    data = _object(obj.get("data"), "data")
    refund = data.get("refund")
    try:
        return WebhookEvent(
            event_id=_id(obj, "id"),
            type=event_type,
            created_at_s=_field(obj, "created_at", int),
            intent=intent_from_json(data.get("intent")),
            refund=None if refund is None else refund_from_json(refund),
        )
    except MalformedProviderData:
        raise
    except ValueError as error:
        raise MalformedProviderData(str(error)) from error


def intent_to_json(intent: Intent) -> dict[str, Any]:
    return {
        "id": intent.intent_id,
        "status": intent.status.value,
        "amount_minor": intent.amount_minor,
        "currency": intent.currency,
        "captured_minor": intent.captured_minor,
        "refunded_minor": intent.refunded_minor,
        "confirm_url": intent.confirm_url,
        "metadata": dict(intent.metadata),
        "failure_code": intent.failure_code,
        "created_at": intent.created_at_s,
    }


def refund_to_json(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.refund_id,
        "intent_id": refund.intent_id,
        "amount_minor": refund.amount_minor,
        "currency": refund.currency,
        "reason": refund.reason,
        "created_at": refund.created_at_s,
    }


def event_to_json(event: WebhookEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"intent": intent_to_json(event.intent)}
    if event.refund is not None:
        data["refund"] = refund_to_json(event.refund)
    return {"id": event.event_id, "type": event.type.value, "created_at": event.created_at_s, "data": data}
