"""Which of the payment simulator's test cards (paysim/cards.py) a buyer pays with: a mix spread evenly over the
buyers by their number, with no randomness, so two runs of one scenario pay with the same cards."""

from __future__ import annotations

from paysim.cards import DECLINED, SLOW, SUCCEEDS

_GOLDEN_FRACTION = 0.618033988749895  # n * this mod 1 spreads any prefix of the buyers evenly over [0, 1)


def card_of(number: int, declined: float, slow: float) -> str:
    """The card of buyer ``number``: declined for a share ``declined`` of the buyers, slow (it succeeds after a
    delay) for a share ``slow``, the always-succeeding card for the rest."""
    position = (number * _GOLDEN_FRACTION) % 1.0
    if position < declined:
        return DECLINED
    return SLOW if position < declined + slow else SUCCEEDS
