"""Which tier a book belongs in, from its measured update rate, with hysteresis.

Pure functions over numpy arrays (no threads): the rebalancer calls ``classify`` once
per interval for every book.  Each boundary has two thresholds (records per second):
a book crosses it upwards only at or above ``*_up`` and back down only below
``*_down`` (< ``*_up``), so a rate wandering between the two moves nobody.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOT = 0
WARM = 1
COLD = 2
TIER_NAMES = ("hot", "warm", "cold")


@dataclass(frozen=True)
class Thresholds:
    hot_up: float = 2000.0     # warm/cold -> hot at or above this rate
    hot_down: float = 1000.0   # hot -> warm/cold below this rate
    warm_up: float = 100.0     # cold -> warm at or above
    warm_down: float = 25.0    # warm/hot -> cold below

    def check(self) -> None:
        if not 0 <= self.hot_down < self.hot_up:
            raise ValueError(f"need 0 <= hot_down < hot_up, got {self.hot_down}, {self.hot_up}")
        if not 0 <= self.warm_down < self.warm_up:
            raise ValueError(f"need 0 <= warm_down < warm_up, got {self.warm_down}, "
                             f"{self.warm_up}")
        if self.warm_up > self.hot_up or self.warm_down > self.hot_down:
            raise ValueError("warm thresholds must not exceed the hot ones")


INCUMBENT_BONUS = 2.0   # a hot book keeps its hot place unless a newcomer is 2x busier


def classify(rates: np.ndarray, tiers: np.ndarray, th: Thresholds, pinned: np.ndarray | None = None,
             hot_capacity: int | None = None, have_hot: bool = True,
             have_cold: bool = True, rank_rates: np.ndarray | None = None,
             hot_load: float | None = None) -> np.ndarray:
    """New tier per book (int8) from rates (records/s) and current tiers.

    pinned books are always hot.  At most ``hot_capacity`` books are hot: pinned first,
    then by ``rank_rates`` (default: rates), where books already hot count
    INCUMBENT_BONUS times their rate (so the capacity itself does not make books near
    the cut flap).  ``hot_load`` caps the summed rate of the hot books the same way
    (the busiest book is always admitted): the hot tier keeps a predictable latency
    only while its threads are far from saturated.  Without hot (or cold) workers
    those books stay warm."""
    rates = np.asarray(rates, dtype=np.float64)
    rank = rates if rank_rates is None else np.asarray(rank_rates, dtype=np.float64)
    cur = np.asarray(tiers, dtype=np.int8)
    new = cur.copy()
    hot, warm, cold = cur == HOT, cur == WARM, cur == COLD
    falls = hot & (rates < th.hot_down)
    new[falls] = np.where(rates[falls] >= th.warm_down, WARM, COLD)
    new[warm & (rates < th.warm_down)] = COLD
    new[cold & (rates >= th.warm_up)] = WARM
    new[(warm | cold) & (rates >= th.hot_up)] = HOT
    if pinned is not None:
        new[pinned] = HOT
    if hot_capacity is not None or hot_load is not None:
        cand = np.flatnonzero(new == HOT)
        pin = pinned[cand] if pinned is not None else np.zeros(len(cand), bool)
        score = rank[cand] * np.where(cur[cand] == HOT, INCUMBENT_BONUS, 1.0)
        order = np.lexsort((-score, ~pin))         # pinned first, then by score
        keep = np.ones(len(cand), bool)
        if hot_capacity is not None:
            keep[max(hot_capacity, int(pin.sum())):] = False
        if hot_load is not None:
            load = np.cumsum(rank[cand][order])
            keep &= (load <= hot_load) | (np.arange(len(cand)) == 0) | pin[order]
        cut = cand[order[~keep]]
        new[cut] = np.where(rates[cut] >= th.warm_down, WARM, COLD)
    if not have_hot:
        new[new == HOT] = WARM
    if not have_cold:
        new[new == COLD] = WARM
    return new
