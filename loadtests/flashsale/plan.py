"""Who arrives when and wants what: the whole sale's buyers, drawn up front from the seed (pure, reproducible).

Arrivals are open loop: each buyer's arrival time is fixed before the sale starts, so a slow platform makes
buyers wait (and shows as latency) instead of making fewer of them arrive. Poisson arrivals are N sorted uniform
draws over the arrival window: a Poisson process conditioned on exactly N arrivals in it (exponential gaps, yet
every buyer arrives within --arrival-seconds). Uniform arrivals space them evenly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loadtests.flashsale.scenario import Scenario

CONFIRM = "confirm"
RELEASE = "release"
ABANDON = "abandon"


@dataclass(frozen=True, slots=True)
class BuyerPlan:
    number: int
    arrival_s: float
    ga: bool  # wants general admission (else seats)
    quantity: int
    fate: str  # what the buyer does with a hold: CONFIRM, RELEASE or ABANDON
    think_s: float
    seed: int  # for this buyer's own choices (which seats), so processes need not share one generator

    @property
    def buyer_id(self) -> str:
        return f"fs-buyer-{self.number}"


def plan_buyers(scenario: Scenario) -> list[BuyerPlan]:
    rng = random.Random(scenario.seed)
    arrivals = _arrival_times(scenario, rng)
    ga_share = scenario.ga / scenario.capacity
    return [
        BuyerPlan(
            number=n,
            arrival_s=arrival,
            ga=rng.random() < ga_share,
            quantity=rng.randint(1, scenario.tickets_max),
            fate=_fate(scenario, rng.random()),
            think_s=rng.expovariate(1.0 / scenario.think_s) if scenario.think_s > 0 else 0.0,
            seed=rng.getrandbits(32),
        )
        for n, arrival in enumerate(arrivals)
    ]


def _arrival_times(scenario: Scenario, rng: random.Random) -> list[float]:
    if scenario.arrivals == "uniform":
        return [n * scenario.arrival_seconds / scenario.buyers for n in range(scenario.buyers)]
    return sorted(rng.uniform(0.0, scenario.arrival_seconds) for _ in range(scenario.buyers))


def _fate(scenario: Scenario, draw: float) -> str:
    if draw < scenario.confirm_ratio:
        return CONFIRM
    if draw < scenario.confirm_ratio + scenario.abandon_ratio:
        return ABANDON
    return RELEASE


def share(plans: list[BuyerPlan], parts: int) -> list[list[BuyerPlan]]:
    """Round-robin, so every generator process sees the same arrival rate over the whole sale."""
    return [plans[i::parts] for i in range(parts)]
