"""`hftbook top`: live books of a running `hftbook run`, from another process.

Attaches read-only to the shared-memory segment (engine.shm), so it costs the feed
nothing and can come and go at any time.  Shows the writer's state and heartbeat,
ladders for the selected books, a table of books (status, top of book, spread,
update rate, age) and the consolidated best bid/offer per unified symbol across
exchanges (hftbook.consolidate).  ``--once`` prints one frame and exits (scripts,
tests); otherwise it refreshes until Ctrl-C, and follows a restarted feed."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from engine import shm
from engine.fixedpoint import from_fixed
from hftbook.consolidate import Consolidated, consolidate, read_quotes


@dataclass
class Sample:
    t: float
    updates: dict[int, int]
    messages: dict[int, int]


def _sample(seg: shm.AttachedStore, books: list[int]) -> Sample:
    from engine.constants import H_MESSAGES, H_UPDATES, HDR_WORDS

    h = seg.hdr
    return Sample(time.monotonic(),
                  {b: int(h[b * HDR_WORDS + H_UPDATES]) for b in books},
                  {b: int(h[b * HDR_WORDS + H_MESSAGES]) for b in books})


def _rates(a: Sample | None, b: Sample) -> dict[int, tuple[float, float]]:
    if a is None:
        return {}
    dt = max(b.t - a.t, 1e-9)
    return {k: ((b.updates[k] - a.updates.get(k, b.updates[k])) / dt,
                (b.messages[k] - a.messages.get(k, b.messages[k])) / dt) for k in b.updates}


def _age(book: shm.SharedBook) -> str:
    a = book.age_s()
    return "-" if a is None else f"{a:.1f}s" if a < 100 else f"{a / 60:.0f}m"


def ladder(book: shm.SharedBook, depth: int, rate: float | None):
    """A ladder table of one book: bid size, bid, ask, ask size, best first."""
    from rich.table import Table

    top = book.top(depth, exact=True)
    pd, sd = book.price_decimals, book.size_decimals
    spread = (from_fixed(int(top.ask_px[0] - top.bid_px[0]), pd)
              if top.n_bid and top.n_ask else "-")
    status = top.status if not book.stale or top.status != "live" else "live (writer gone)"
    t = Table(title=f"{book.name}  [{book.info.unified}]", expand=False,
              caption=f"{status} · spread {spread} · "
                      f"{'-' if rate is None else f'{rate:,.0f}'} upd/s · seq {top.seq} · "
                      f"age {_age(book)}")
    for c, style in (("bid size", "green"), ("bid", "bold green"), ("ask", "bold red"),
                     ("ask size", "red")):
        t.add_column(c, justify="right", style=style)
    for k in range(max(top.n_bid, top.n_ask)):
        b = k < top.n_bid
        a = k < top.n_ask
        t.add_row(from_fixed(int(top.bid_sz[k]), sd) if b else "",
                  from_fixed(int(top.bid_px[k]), pd) if b else "",
                  from_fixed(int(top.ask_px[k]), pd) if a else "",
                  from_fixed(int(top.ask_sz[k]), sd) if a else "")
    return t


def books_table(seg: shm.AttachedStore, books: list[int], rates: dict, rows: int):
    from rich.table import Table

    t = Table(title="books", expand=False)
    for c in ("book", "unified", "status", "bid", "ask", "spread", "upd/s", "msg/s", "age"):
        t.add_column(c, justify="left" if c in ("book", "unified", "status") else "right")
    for b in books[:rows]:
        bk = seg.book(b)
        top = bk.top(1, exact=True)
        pd = bk.price_decimals
        r = rates.get(b)
        t.add_row(bk.name, bk.info.unified, top.status,
                  from_fixed(int(top.bid_px[0]), pd) if top.n_bid else "-",
                  from_fixed(int(top.ask_px[0]), pd) if top.n_ask else "-",
                  from_fixed(int(top.ask_px[0] - top.bid_px[0]), pd)
                  if top.n_bid and top.n_ask else "-",
                  "-" if r is None else f"{r[0]:,.0f}", "-" if r is None else f"{r[1]:,.0f}",
                  _age(bk))
    if len(books) > rows:
        t.caption = f"{rows} of {len(books)} books shown (--rows, --exchange, --symbol)"
    return t


def consolidated_table(cons: dict[str, Consolidated], rows: int):
    from rich.table import Table

    t = Table(title="consolidated best bid / offer across exchanges", expand=False)
    for c in ("symbol", "venues", "bid size", "bid", "bid venue", "ask", "ask size",
              "ask venue", "spread"):
        t.add_column(c, justify="left" if c in ("symbol", "bid venue", "ask venue")
                     else "right")
    multi = sorted(cons.values(), key=lambda c: (-c.venues, c.unified))

    def num(v) -> str:
        return "-" if v is None else f"{v.normalize():f}"

    for c in multi[:rows]:
        t.add_row(c.unified, str(c.venues), num(c.bid_size) if c.bid is not None else "-",
                  num(c.bid), ",".join(c.bid_venues) or "-", num(c.ask),
                  num(c.ask_size) if c.ask is not None else "-",
                  ",".join(c.ask_venues) or "-",
                  num(c.spread) + (" crossed" if c.crossed else ""))
    if len(multi) > rows:
        t.caption = f"{rows} of {len(multi)} symbols shown, most venues first"
    return t


def frame(seg: shm.AttachedStore, books: list[int], rates: dict, *, depth: int,
          ladders: int, rows: int):
    """Everything shown in one refresh, as one rich renderable."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.text import Text

    w = seg.writer()
    live = sum(1 for b in books if seg.book(b).status == "live")
    style = "green" if w.alive else "bold red"
    head = Text.assemble(
        ("hftbook top", "bold"), f"  segment {seg.shm_name!r} ({seg.path})  ",
        (f"writer {w.state}", style),
        f" pid {w.pid} · heartbeat {w.heartbeat} ({w.heartbeat_age_s:.1f}s ago) · "
        f"{len(books)} books shown, {live} live")
    parts = [head]
    if ladders:
        parts.append(Columns([ladder(seg.book(b), depth, rates.get(b, (None,))[0])
                              for b in books[:ladders]]))
    parts.append(books_table(seg, books, rates, rows))
    parts.append(consolidated_table(consolidate(read_quotes(seg, books)), rows))
    return Group(*parts)


def run_top(name: str, exchange: str | None, symbol: str | None, *, depth: int = 10,
            ladders: int = 2, rows: int = 20, interval: float = 0.5, once: bool = False,
            width: int | None = None) -> int:
    from rich.console import Console

    console = Console(width=width)
    try:
        seg = shm.attach(name, timeout=5.0)
    except shm.ShmError as exc:
        print(f"hftbook top: {exc}", file=sys.stderr)
        return 2
    books = [b.index for b in seg.select(exchange, symbol)]
    if not books:
        print(f"hftbook top: no book matches --exchange {exchange} --symbol {symbol} in "
              f"{name!r} (exchanges: {', '.join(sorted({b.exchange for b in seg.info}))})",
              file=sys.stderr)
        return 2
    prev = _sample(seg, books)
    if once:
        time.sleep(interval)  # two samples: update rates
        cur = _sample(seg, books)
        console.print(frame(seg, books, _rates(prev, cur), depth=depth, ladders=ladders,
                            rows=rows))
        return 0
    from rich.live import Live

    rates: dict = {}
    try:
        with Live(frame(seg, books, rates, depth=depth, ladders=ladders, rows=rows),
                  console=console, refresh_per_second=max(1, int(1 / interval)),
                  screen=False) as live:
            while True:
                time.sleep(interval)
                if not seg.writer().alive and seg.replaced():
                    try:  # the feed was restarted: follow it
                        seg = shm.attach(name, timeout=1.0)
                        books = [b.index for b in seg.select(exchange, symbol)] or books
                        prev = None
                    except shm.ShmError:
                        pass
                cur = _sample(seg, books)
                rates = _rates(prev, cur)
                prev = cur
                live.update(frame(seg, books, rates, depth=depth, ladders=ladders, rows=rows))
    except KeyboardInterrupt:
        pass
    return 0
