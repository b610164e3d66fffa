"""The test cards (../shared/API.md): what each one does when a buyer confirms an intent with it."""

from __future__ import annotations

from dataclasses import dataclass

slow_card_s = 5.0  # how long the slow card keeps an intent processing before it authorizes


@dataclass(frozen=True, slots=True)
class CardOutcome:
    failure_code: str | None  # None: authorized
    settle_after_s: float  # 0: the outcome is decided at confirm
    outcome_deliveries: int  # how many times the outcome's webhook is delivered (same event id)


SUCCEEDS = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
DUPLICATE_WEBHOOK = "4000000000000259"
SLOW = "4000000000003220"

CARDS: dict[str, CardOutcome] = {
    SUCCEEDS: CardOutcome(failure_code=None, settle_after_s=0.0, outcome_deliveries=1),
    DECLINED: CardOutcome(failure_code="card_declined", settle_after_s=0.0, outcome_deliveries=1),
    INSUFFICIENT_FUNDS: CardOutcome(failure_code="insufficient_funds", settle_after_s=0.0, outcome_deliveries=1),
    DUPLICATE_WEBHOOK: CardOutcome(failure_code=None, settle_after_s=0.0, outcome_deliveries=2),
    SLOW: CardOutcome(failure_code=None, settle_after_s=slow_card_s, outcome_deliveries=1),
}


def card_outcome(card_number: str, slow_s: float = slow_card_s) -> CardOutcome | None:
    """None for a number that is not a test card: the simulator takes no real cards."""
    outcome = CARDS.get(card_number)
    if outcome is not None and outcome.settle_after_s > 0:
        return CardOutcome(outcome.failure_code, slow_s, outcome.outcome_deliveries)
    return outcome
