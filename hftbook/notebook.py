"""Helpers for the notebooks in notebooks/: attach to a running feed (or start a
simulator-backed one), and a live view of books built from ipywidgets that refreshes
from an asyncio task on the kernel's event loop, so cells keep running meanwhile.

The view is read-only like every shared-memory reader: it only attaches (engine.shm).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import html
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import orjson

from engine import shm
from engine.constants import H_UPDATES, HDR_WORDS
from engine.fixedpoint import from_fixed
from hftbook.consolidate import consolidate, read_quotes

ROOT = Path(__file__).resolve().parent.parent

SIM_CONFIG = """
[simulator]
symbols_per_exchange = {symbols}
rate = {rate}
reference_price = 100000
[shm]
enabled = true
name = "{name}"
"""


def start_feed(name: str, exchanges=("binance", "okx", "coinbase", "kraken"),
               symbols: int = 3, rate: float = 50.0,
               max_seconds: float = 0) -> subprocess.Popen:
    """Start ``hftbook run`` on loopback simulators, serving segment ``name``; it stops
    after ``max_seconds`` (0: never), with ``stop_feed``, or when this process exits."""
    text = SIM_CONFIG.format(symbols=symbols, rate=rate, name=name) + "".join(
        f'[exchanges.{ex}]\nsymbols = ["*"]\n' for ex in exchanges)
    fd, path = tempfile.mkstemp(prefix="hftbook-notebook-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    proc = subprocess.Popen([sys.executable, "-m", "hftbook.cli", "run", "--config", path,
                             "--json", "--duration", str(max_seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    atexit.register(stop_feed, proc, 10.0)  # a kernel that exits takes its feed along
    return proc


def attach_or_start(name: str = "hftbook", start: bool = True, timeout: float = 180.0,
                    **feed_options) -> tuple[shm.AttachedStore, subprocess.Popen | None]:
    """Attach to feed ``name``; if there is none (and ``start``), start a simulated one
    and wait until its books are live.  Returns (segment, the started process or None)."""
    try:
        seg = shm.attach(name, timeout=5.0)
        if seg.writer().alive:
            return seg, None
        seg.close()  # a dead feed's leftover: start a fresh one
    except shm.ShmError:
        if not start:
            raise
    proc = start_feed(name, **feed_options)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"hftbook run exited: {proc.stderr.read()}")
        try:
            seg = shm.attach(name, timeout=1.0)
            if all(not seg.book(i).stale for i in range(seg.n_books)):
                return seg, proc
            seg.close()
        except shm.ShmError:
            pass
        if time.monotonic() > deadline:
            stop_feed(proc)
            raise RuntimeError(f"the simulated feed was not live within {timeout}s")
        time.sleep(0.5)


def stop_feed(proc: subprocess.Popen | None, timeout: float = 60.0) -> dict | None:
    """Stop a feed started by ``start_feed`` cleanly (SIGINT); its JSON summary."""
    if proc is None or (proc.stdout is not None and proc.stdout.closed):
        return None  # never started, or already stopped and read
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    with contextlib.suppress(Exception):
        return orjson.loads(out.strip().splitlines()[-1])
    return None


# -- HTML pieces -----------------------------------------------------------------------

def table_html(columns: list[str], rows: list[list], title: str = "") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:right'>{html.escape(str(v))}</td>"
                                    for v in r) + "</tr>" for r in rows)
    cap = f"<caption><b>{html.escape(title)}</b></caption>" if title else ""
    return f"<table style='font-family:monospace'>{cap}<tr>{head}</tr>{body}</table>"


def ladder_html(book: shm.SharedBook, depth: int = 10) -> str:
    top = book.top(depth, exact=True)
    pd, sd = book.price_decimals, book.size_decimals
    rows = []
    for k in range(max(top.n_bid, top.n_ask)):
        rows.append([from_fixed(int(top.bid_sz[k]), sd) if k < top.n_bid else "",
                     from_fixed(int(top.bid_px[k]), pd) if k < top.n_bid else "",
                     from_fixed(int(top.ask_px[k]), pd) if k < top.n_ask else "",
                     from_fixed(int(top.ask_sz[k]), sd) if k < top.n_ask else ""])
    state = "stale" if book.stale else top.status
    return table_html(["bid size", "bid", "ask", "ask size"], rows,
                      f"{book.name} [{book.info.unified}] {state} seq {top.seq}")


def _num(v) -> str:
    return "-" if v is None else f"{v.normalize():f}"


def consolidated_rows(seg: shm.AttachedStore) -> list[list]:
    out = []
    for c in consolidate(read_quotes(seg)).values():
        out.append([c.unified, c.venues, _num(c.bid), ",".join(c.bid_venues) or "-",
                    _num(c.ask), ",".join(c.ask_venues) or "-",
                    _num(c.spread) + (" (crossed)" if c.crossed else "")])
    return out


class Health:
    """Per-exchange health between two refreshes: books live / stale, level updates
    per second, the oldest book's age."""

    def __init__(self, seg: shm.AttachedStore) -> None:
        self.seg = seg
        self.last: tuple[float, dict[int, int]] | None = None

    def rows(self) -> list[list]:
        seg = self.seg
        now = time.monotonic()
        upd = {i: int(seg.hdr[i * HDR_WORDS + H_UPDATES]) for i in range(seg.n_books)}
        dt = now - self.last[0] if self.last else 0.0
        per: dict[str, list] = {}
        for info in seg.info:
            b = seg.book(info.index)
            r = per.setdefault(info.exchange, [0, 0, 0.0, 0.0])
            stale = b.stale
            r[0] += not stale
            r[1] += stale
            if self.last and dt > 0:
                r[2] += (upd[info.index] - self.last[1].get(info.index, 0)) / dt
            r[3] = max(r[3], b.age_s() or 0.0)
        self.last = (now, upd)
        return [[ex, live, stale, f"{rate:,.0f}", f"{age:.1f}s"]
                for ex, (live, stale, rate, age) in sorted(per.items())]


class LiveView:
    """Ticking ladders, a mid/spread chart across exchanges, the consolidated BBO and
    per-exchange health, as ipywidgets; ``start()`` refreshes them every ``interval``
    seconds from an asyncio task (the kernel stays free), ``stop()`` ends it."""

    def __init__(self, seg: shm.AttachedStore, books: list[int], depth: int = 8,
                 history: int = 240) -> None:
        import ipywidgets as w

        self.seg = seg
        self.books = books
        self.depth = depth
        self.health = Health(seg)
        self.t0 = time.monotonic()
        self.series = {b: (deque(maxlen=history), deque(maxlen=history),
                           deque(maxlen=history)) for b in books}  # t, mid bps, spread bps
        self.first_mid: dict[int, float] = {}
        self.frames = 0
        self.errors = 0
        self.ladders = w.HBox([w.HTML() for _ in books])
        self.chart = w.Image(format="png")
        self.consolidated = w.HTML()
        self.status = w.HTML()
        self.widget = w.VBox([self.status, self.ladders, self.chart, self.consolidated])
        self._task: asyncio.Task | None = None

    def refresh(self) -> None:
        """Read everything once and update the widgets."""
        seg = self.seg
        st = seg.writer()
        t = time.monotonic() - self.t0
        for box, b in zip(self.ladders.children, self.books):
            box.value = ladder_html(seg.book(b), self.depth)
            book = seg.book(b)
            mid, spread = book.mid(), book.spread()
            if mid:
                first = self.first_mid.setdefault(b, mid)
                ts, mids, spreads = self.series[b]
                ts.append(t)
                mids.append((mid / first - 1) * 1e4)
                spreads.append(spread / mid * 1e4)
        self.chart.value = self._plot()
        self.consolidated.value = table_html(
            ["symbol", "venues", "bid", "bid venue", "ask", "ask venue", "spread"],
            consolidated_rows(seg), "consolidated best bid / offer across exchanges")
        self.status.value = (
            f"<b>{html.escape(seg.shm_name)}</b>: writer {st.state} (pid {st.pid}, heartbeat "
            f"{st.heartbeat_age_s:.1f}s ago) · frame {self.frames + 1}"
            + table_html(["exchange", "live", "stale", "level upd/s", "oldest update"],
                         self.health.rows(), "per-exchange health"))
        self.frames += 1

    def _plot(self) -> bytes:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.2), dpi=80)
        ax1, ax2 = fig.subplots(1, 2)
        for b in self.books:
            ts, mids, spreads = self.series[b]
            label = self.seg.info[b].name
            ax1.plot(list(ts), list(mids), label=label)
            ax2.plot(list(ts), list(spreads), label=label)
        ax1.set_title("mid move since start (bps)")
        ax2.set_title("spread (bps of mid)")
        for ax in (ax1, ax2):
            ax.set_xlabel("seconds")
        ax1.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # keep ticking; the count shows in the status line
                self.errors += 1
            await asyncio.sleep(interval)

    def start(self, interval: float = 0.5) -> asyncio.Task:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop(interval))
        return self._task

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
