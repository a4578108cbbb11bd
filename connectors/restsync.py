"""The REST half of venues that sync a websocket diff stream against REST snapshots
(Binance, MEXC, Gate, KuCoin, Bitstamp, OKX): per-book sync state, at most one
snapshot request per book until its answer (or a reset), the snapshot URL, and the way
back from a (recorded) snapshot URL to its book.

What stays in each venue's module is its own protocol: the sync state's fields, how
diffs are buffered and checked against the snapshot, and ``on_snapshot``, which clears
``requested`` when it has used or rejected an answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Protocol, RestRequest


class RestSnapshotProtocol(Protocol):
    """A Protocol whose books are seeded by REST snapshots.

    ``self.sync[symbol]`` is the book's sync state, made by ``sync_state()``; it has at
    least a ``requested`` flag, True from the moment a snapshot request is queued until
    the venue's ``on_snapshot`` clears it or ``reset_symbol`` starts the book afresh.
    Every buffered diff of a book that is not live asks for a resync, so without the flag
    a burst of diffs would cost a REST call each.

    A snapshot URL is ``{rest_url}{snapshot_path}?{symbol_param}={symbol}`` followed by
    ``snapshot_params`` (with ``{depth}`` standing for ``self.depth``).  A venue whose
    URL is shaped otherwise (Bitstamp: the symbol is a path segment) overrides
    ``snapshot_url`` and ``rest_symbol`` together."""

    sync_state: Callable[[], Any]   # a fresh sync state of one book
    snapshot_path = ""              # e.g. /api/v3/depth
    symbol_param = "symbol"         # the query key naming the book
    snapshot_params = ""            # query after the symbol, e.g. "&limit={depth}"
    recorded_snapshot_paths: tuple[str, ...] = ()  # other paths recordings fetched from
    upper_case_symbols = False      # a URL's symbol names the book in upper case

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sync = {s: self.sync_state() for s in self.targets}

    def snapshot_url(self, symbol: str) -> str:
        return (f"{self.rest_url}{self.snapshot_path}?{self.symbol_param}={symbol}"
                + self.snapshot_params.format(depth=self.depth))

    def rest_symbol(self, url: str) -> str | None:
        """The ``symbol_param`` value of a snapshot URL (any of ``snapshot_path`` and
        ``recorded_snapshot_paths``); None for any other URL."""
        key = self.symbol_param + "="
        if key not in url or not any(p in url for p in (self.snapshot_path,
                                                        *self.recorded_snapshot_paths)):
            return None
        symbol = url.split(key, 1)[1].split("&", 1)[0]
        return symbol.upper() if self.upper_case_symbols else symbol

    def request_snapshot(self, symbol: str) -> None:
        """Queue a REST snapshot of ``symbol`` unless one is already asked for."""
        sync = self.sync[symbol]
        if not sync.requested:
            sync.requested = True
            self.rest_requests.append(RestRequest(symbol, self.snapshot_url(symbol)))

    def request_resync(self, symbol: str) -> None:
        self.request_snapshot(symbol)

    def reset_symbol(self, symbol: str) -> None:
        """Start the book's sync afresh: a new state from ``sync_state()``, so its buffer
        is dropped and the next ``request_snapshot`` queues a new request."""
        self.sync[symbol] = self.sync_state()
