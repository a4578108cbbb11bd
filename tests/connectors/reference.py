"""Deliberately plain reference rebuilds of recorded sessions (json, Decimal, dicts),
independent of the connector code, and helpers to compare books."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "recorded" / "cryptofeed"


def need_recordings() -> Path:
    if not RECORDED.is_dir():
        pytest.skip(f"recorded sessions not found at {RECORDED}")
    return RECORDED


class RefBook:
    """{price: size} per side; with ``depth``, keeps only the best ``depth`` levels after
    every change (what a book of that depth holds)."""

    def __init__(self, depth: int | None = None) -> None:
        self.depth = depth
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def set(self, side: str, price, size) -> None:
        book = self.bids if side == "bid" else self.asks
        p, q = Decimal(price), Decimal(size)
        if q == 0:
            book.pop(p, None)
        else:
            book[p] = q
            if self.depth is not None and len(book) > self.depth:
                del book[min(book) if side == "bid" else max(book)]

    def levels(self) -> dict[str, list[tuple[Decimal, Decimal]]]:
        return {"bids": sorted(self.bids.items(), reverse=True),
                "asks": sorted(self.asks.items())}


def as_decimal_levels(book: dict) -> dict[str, list[tuple[Decimal, Decimal]]]:
    """A Book.to_dict() as Decimal pairs, for comparison with a RefBook."""
    return {k: [(Decimal(p), Decimal(q)) for p, q in book[k]] for k in ("bids", "asks")}


def frames_and_rest(recording: str):
    """(ts, kind, payload) in time order: kind 'ws' (text/bytes) or 'http' (url, body)."""
    from connectors.recorded import Frame, HttpResponse, load_session, session_events

    session = load_session(need_recordings(), recording)
    for ev in session_events(session):
        if isinstance(ev.record, Frame):
            yield ev.record.ts, "ws", ev.record.data
        elif isinstance(ev.record, HttpResponse):
            yield ev.record.ts, "http", (ev.record.url, ev.record.body)


def rebuild_binance(recording: str, futures: bool, depth: int) -> dict[str, RefBook]:
    """Binance's documented procedure, written out longhand."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    first: dict[str, bool] = {}
    buffered: dict[str, list[dict]] = {}

    def apply(sym: str, ev: dict) -> None:
        if futures:
            if first[sym]:
                if ev["u"] < last[sym]:
                    return
                assert ev["U"] <= last[sym] <= ev["u"] or ev["pu"] == last[sym]
                first[sym] = False
            else:
                assert ev["pu"] == last[sym], "gap in the recording"
        else:
            if ev["u"] <= last[sym]:
                return
            assert ev["U"] <= last[sym] + 1, "gap in the recording"
        for p, q in ev["b"]:
            books[sym].set("bid", p, q)
        for p, q in ev["a"]:
            books[sym].set("ask", p, q)
        last[sym] = ev["u"]

    for _, kind, payload in frames_and_rest(recording):
        if kind == "ws":
            data = json.loads(payload).get("data", {})
            if data.get("e") != "depthUpdate":
                continue
            sym = data["s"]
            if sym in books:
                apply(sym, data)
            else:
                buffered.setdefault(sym, []).append(data)
        else:
            url, body = payload
            sym = url.split("symbol=")[1].split("&")[0]
            snap = json.loads(body)
            books[sym] = RefBook(depth)
            for p, q in snap["bids"]:
                books[sym].set("bid", p, q)
            for p, q in snap["asks"]:
                books[sym].set("ask", p, q)
            last[sym] = snap["lastUpdateId"]
            first[sym] = True
            for ev in buffered.pop(sym, []):
                apply(sym, ev)
    return books
