"""The simulator's true books and a synthetic order-flow model.

Prices are integer ticks, sizes integer lots; a venue formats them with its own
decimals.  Each step changes a few levels near the touch (geometric distance), with
deletes, inserts, occasional new levels inside the spread, and never crosses."""

from __future__ import annotations

import random


def fmt(v: int, decimals: int, pad: bool = True) -> str:
    """Fixed-point int -> decimal text; ``pad`` keeps trailing zeros (Binance style)."""
    neg = v < 0
    v = abs(v)
    if decimals == 0:
        s = str(v)
    else:
        whole, frac = divmod(v, 10 ** decimals)
        f = str(frac).rjust(decimals, "0")
        if not pad:
            f = f.rstrip("0")
        s = f"{whole}.{f}" if f else str(whole)
    return "-" + s if neg else s


class SimBook:
    """One symbol's true book: {price ticks: size lots} per side."""

    def __init__(self, rng: random.Random, mid: int = 1_000_000, levels: int = 40,
                 max_levels: int = 200) -> None:
        self.rng = rng
        self.max_levels = max_levels
        self.bids = {mid - 1 - i: rng.randint(1, 5000) for i in range(levels)}
        self.asks = {mid + 1 + i: rng.randint(1, 5000) for i in range(levels)}

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def step(self) -> list[tuple[int, int, int]]:
        """Apply one random event; returns its level changes (side, price, size)."""
        rng = self.rng
        changes = []
        for _ in range(rng.choice((1, 1, 2, 3, 5))):
            side = rng.randrange(2)
            levels = self.bids if side == 0 else self.asks
            touch = self.best_bid() if side == 0 else self.best_ask()
            sign = -1 if side == 0 else 1
            r = rng.random()
            dist = min(int(rng.expovariate(0.25)), 60)
            if r < 0.5:  # resize a level near the touch
                price = touch + sign * dist
                if price in levels:
                    size = rng.randint(1, 5000)
                    levels[price] = size
                    changes.append((side, price, size))
            elif r < 0.72:  # delete one (keep at least a few)
                price = touch + sign * dist
                if price in levels and len(levels) > 5:
                    del levels[price]
                    changes.append((side, price, 0))
            elif r < 0.95 or len(levels) >= self.max_levels:  # add a level behind the touch
                price = touch + sign * (1 + dist)
                if price not in levels and len(levels) < self.max_levels:
                    size = rng.randint(1, 5000)
                    levels[price] = size
                    changes.append((side, price, size))
            else:  # improve the touch inside the spread
                bb, ba = self.best_bid(), self.best_ask()
                if ba - bb > 2:
                    price = bb + 1 if side == 0 else ba - 1
                    size = rng.randint(1, 5000)
                    levels[price] = size
                    changes.append((side, price, size))
        return changes

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        levels = self.bids if side == 0 else self.asks
        return sorted(levels.items(), reverse=(side == 0))[:n]
