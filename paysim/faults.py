"""The control switch for tests: what the simulator should get wrong on purpose, set by `POST /_sim/faults`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

fault_count_max = 1_000_000
response_delay_s_max = 60.0
webhook_delay_s_max = 3_600.0
reorder_batch_max = 1_000
signature_age_s_max = 86_400 * 7


@dataclass
class Faults:
    fail_requests: int = 0  # the next N API calls answer 500 and take no effect
    fail_after_effect: int = 0  # the next N state-changing API calls take effect, then answer 500 (a lost answer)
    response_delay_s: float = 0.0  # every API answer waits this long
    webhook_delay_s: float = 0.0  # every delivery's first attempt waits this long
    reorder_webhooks: int = 0  # >= 2: deliveries leave in batches of this many, last first
    duplicate_webhooks: bool = False  # every event is delivered twice (same event id)
    signature_age_s: int = 0  # deliveries are signed as if sent this many seconds ago
    drop_webhooks: int = 0  # the next N events are never delivered (every copy of each): a lost webhook

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Any) -> str | None:
        """Apply the given fields; a problem (and nothing applied) when any is unknown or out of bounds."""
        if not isinstance(changes, dict):
            return "the body is an object of fault fields"
        bounds: dict[str, tuple[type, float]] = {
            "fail_requests": (int, fault_count_max),
            "fail_after_effect": (int, fault_count_max),
            "response_delay_s": (float, response_delay_s_max),
            "webhook_delay_s": (float, webhook_delay_s_max),
            "reorder_webhooks": (int, reorder_batch_max),
            "duplicate_webhooks": (bool, 1),
            "signature_age_s": (int, signature_age_s_max),
            "drop_webhooks": (int, fault_count_max),
        }
        known = {f.name for f in fields(self)}
        assert known == set(bounds), "every fault has its bound"
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in bounds:
                return f"unknown fault {name!r}"
            kind, bound = bounds[name]
            if kind is bool:
                if not isinstance(value, bool):
                    return f"{name!r} is true or false"
            elif (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind is int and isinstance(value, float))
            ):
                return f"{name!r} is a number"
            elif not 0 <= value <= bound:
                return f"{name!r} is between 0 and {bound}"
            parsed[name] = float(value) if kind is float else value
        for name, value in parsed.items():
            setattr(self, name, value)
        return None

    def take_failure(self) -> bool:
        if self.fail_requests > 0:
            self.fail_requests -= 1
            return True
        return False

    def take_lost_answer(self) -> bool:
        if self.fail_after_effect > 0:
            self.fail_after_effect -= 1
            return True
        return False

    def take_dropped_webhook(self) -> bool:
        if self.drop_webhooks > 0:
            self.drop_webhooks -= 1
            return True
        return False
