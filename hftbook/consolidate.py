"""Consolidated best bid and offer across exchanges, per unified symbol (pure logic).

Every connector names its instruments with a unified symbol (``connectors.base.Instrument
.unified``: ``BTC-USDT``, ``BTC-USDT-PERP``, ``BTC-USD-20220527``); books of different
venues with the same unified symbol trade the same thing, so their tops can be merged.
Prices are compared exactly (fixed-point ints of each book's own scale, turned into
``Decimal``), so two venues quoting the same price with different decimals tie.

Only books that can be trusted take part (``Quote.live``): a stale, syncing or crossed
book, or one whose writer has gone, would put a price nobody can trade into the view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Quote:
    """One book's top of book as read (fixed point, the book's own decimals).
    ``bid_px``/``ask_px`` are None for an empty side."""

    exchange: str
    unified: str
    bid_px: int | None
    bid_sz: int
    ask_px: int | None
    ask_sz: int
    price_decimals: int
    size_decimals: int
    live: bool = True


@dataclass(frozen=True)
class Consolidated:
    """Best bid and offer over every venue of one unified symbol.

    ``bid_venues``/``ask_venues``: the venues quoting the best price (largest size
    first); ``bid_size``/``ask_size``: the size summed over them.  ``spread`` is
    ask - bid across venues (None if a side is missing); ``crossed`` means some venue's
    bid is at or above another's ask (``spread <= 0``): a cross-venue arbitrage, or a
    stale venue that the live flags did not catch."""

    unified: str
    bid: Decimal | None
    bid_size: Decimal
    bid_venues: tuple[str, ...]
    ask: Decimal | None
    ask_size: Decimal
    ask_venues: tuple[str, ...]
    venues: int                      # live venues quoting this symbol

    @property
    def spread(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else self.ask - self.bid

    @property
    def crossed(self) -> bool:
        s = self.spread
        return s is not None and s <= 0

    @property
    def mid(self) -> Decimal | None:
        return None if self.bid is None or self.ask is None else (self.bid + self.ask) / 2


def _dec(v: int, decimals: int) -> Decimal:
    return Decimal(v).scaleb(-decimals)


def _best(side: list[tuple[Decimal, Decimal, str]], highest: bool):
    if not side:
        return None, Decimal(0), ()
    best = max(p for p, _, _ in side) if highest else min(p for p, _, _ in side)
    at = sorted(((q, v) for p, q, v in side if p == best), key=lambda t: (-t[0], t[1]))
    return best, sum((q for q, _ in at), Decimal(0)), tuple(v for _, v in at)


def consolidate(quotes: Iterable[Quote]) -> dict[str, Consolidated]:
    """Per unified symbol, the best live bid and offer and who holds them."""
    groups: dict[str, dict[str, list]] = {}
    venues: dict[str, set[str]] = {}
    for q in quotes:
        if not q.live:
            continue
        g = groups.setdefault(q.unified, {"bids": [], "asks": []})
        venues.setdefault(q.unified, set()).add(q.exchange)
        if q.bid_px is not None:
            g["bids"].append((_dec(q.bid_px, q.price_decimals), _dec(q.bid_sz, q.size_decimals),
                              q.exchange))
        if q.ask_px is not None:
            g["asks"].append((_dec(q.ask_px, q.price_decimals), _dec(q.ask_sz, q.size_decimals),
                              q.exchange))
    out = {}
    for sym in sorted(groups):
        bid, bq, bv = _best(groups[sym]["bids"], highest=True)
        ask, aq, av = _best(groups[sym]["asks"], highest=False)
        out[sym] = Consolidated(sym, bid, bq, bv, ask, aq, av, len(venues[sym]))
    return out


def read_quotes(seg, books: Iterable[int] | None = None) -> list[Quote]:
    """Tops of the books of an attached segment (engine.shm.AttachedStore) or any
    BookStore with ``info``, each from one seqlock-validated read.  A book is live when
    its status is live and, for a segment, its writer is running."""
    from engine.constants import LIVE
    from engine.read import bbo_status

    writer_ok = seg.writer().alive if hasattr(seg, "writer") else True
    out = []
    for i in books if books is not None else range(seg.n_books):
        info = seg.info[i]
        bp, bq, ap, aq, nb, na, status, _ = bbo_status(seg.hdr, seg.px, seg.sz, i)
        out.append(Quote(info.exchange, info.unified, bp if nb else None, bq,
                         ap if na else None, aq, info.price_decimals, info.size_decimals,
                         live=writer_ok and status == LIVE))
    return out
