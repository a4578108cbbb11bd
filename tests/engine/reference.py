"""A deliberately plain dict order book, the oracle the kernels are tested against."""

from engine.constants import ASK, BID


class RefBook:
    """Same semantics as the kernels: size 0 deletes, at most ``depth`` levels per side,
    a full side evicts its worst level for a better insert and ignores a worse one."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.sides: list[dict[int, int]] = [{}, {}]
        self.depth_drops = 0
        self.absent_deletes = 0

    def clear(self) -> None:
        self.sides = [{}, {}]

    def set(self, side: int, price: int, size: int) -> None:
        levels = self.sides[side]
        if size == 0:
            if levels.pop(price, None) is None:
                self.absent_deletes += 1
            return
        if price in levels or len(levels) < self.depth:
            levels[price] = size
            return
        worst = min(levels) if side == BID else max(levels)
        better = price > worst if side == BID else price < worst
        if better:
            del levels[worst]
            levels[price] = size
        else:
            self.depth_drops += 1

    def levels(self, side: int) -> list[tuple[int, int]]:
        """Best first."""
        d = self.sides[side]
        return sorted(d.items(), reverse=(side == BID))

    def crossed(self) -> bool:
        b, a = self.sides[BID], self.sides[ASK]
        return bool(b) and bool(a) and max(b) >= min(a)
