"""A buyer's-eye view of which seats are free, as a checkout page with a live seat map would show it (pure).

Each generator process keeps one: refreshed from the availability bitmap every so often, and corrected in
between by what its own buyers learn (a 409 names the taken seats; a hold takes its seats). Buyers pick seats
they believe free, next to each other in one row when they want several, so conflicts come from real races and a
stale map, not from buyers guessing blindly at seats sold long ago.

Buyers who ask for the best seats of a zone instead (``--buyers-pick best``) look only at how many seats each zone
shows free (a zone is a seat id's section, as the inventory reads inline seating): ``best_zones`` asks for their
own zone first and names the others as fallbacks, so the inventory moves them when their zone has run out.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence

from engine.limits import best_available_fallback_zones_max

pick_attempts_max = 8  # random draws before a buyer settles for whatever seat the stale map shows


class SeatView:
    def __init__(self, seat_ids: Sequence[str]) -> None:
        self.seat_ids = tuple(seat_ids)
        self._index = {seat: i for i, seat in enumerate(self.seat_ids)}
        self._row = [seat.rsplit("-", 1)[0] for seat in self.seat_ids]
        self._zone = [seat.split("-", 1)[0] for seat in self.seat_ids]
        self.zones = tuple(dict.fromkeys(self._zone))
        self._free: list[int] = list(range(len(self.seat_ids)))
        self._free_set = set(self._free)
        self._taken: set[int] = set()
        self._zone_free = Counter(self._zone)

    @property
    def believed_free(self) -> int:
        return len(self._free) - len(self._taken)

    def refresh(self, bitmap: bytes) -> None:
        """Bit i (MSB first) set when seat i is available, as the availability endpoint sends it."""
        self._free = [i for i in range(len(self.seat_ids)) if bitmap[i >> 3] & (0x80 >> (i & 7))]
        self._free_set = set(self._free)
        self._taken.clear()
        zone = self._zone
        self._zone_free = Counter(zone[i] for i in self._free)

    def mark_taken(self, seats: Iterable[str]) -> None:
        # only seats the map shows free: believed_free stays the count of seats a buyer could still pick
        for i in (self._index.get(s) for s in seats):
            if i is not None and i in self._free_set and i not in self._taken:
                self._taken.add(i)
                self._zone_free[self._zone[i]] -= 1

    def free_in(self, zone: str) -> int:
        return self._zone_free.get(zone, 0)

    def best_zones(self, preferred: str, quantity: int) -> tuple[list[str], int] | None:
        """(zones, quantity) a best-available buyer asks for: its preferred zone, then as fallbacks the others, those
        the map shows most free first (so a zone that ran out since the map was drawn costs no refusal), for
        ``quantity`` seats, or fewer when those zones show fewer in all; None when every zone shows none."""
        others = sorted((z for z in self.zones if z != preferred), key=self.free_in, reverse=True)
        zones = [preferred, *others][: 1 + best_available_fallback_zones_max]
        shown = sum(map(self.free_in, zones))
        if shown <= 0:
            return None
        return zones, min(quantity, shown)

    def choose(self, quantity: int, rng: random.Random) -> list[str]:
        if not self.seat_ids:
            return []
        start = self._pick_start(rng)
        chosen = [start]
        for step in (1, -1):  # rightwards along the row first, then leftwards
            i = start + step
            while len(chosen) < quantity and 0 <= i < len(self.seat_ids) and self._row[i] == self._row[start]:
                if not self._is_free(i):
                    break
                chosen.append(i)
                i += step
        self.mark_taken(self.seat_ids[i] for i in chosen)  # this process's other buyers try elsewhere
        return [self.seat_ids[i] for i in sorted(chosen)]

    def _pick_start(self, rng: random.Random) -> int:
        for _ in range(pick_attempts_max):
            if not self._free:
                break
            i = self._free[rng.randrange(len(self._free))]
            if i not in self._taken:
                return i
        return rng.randrange(len(self.seat_ids))

    def _is_free(self, i: int) -> bool:
        return i in self._free_set and i not in self._taken
