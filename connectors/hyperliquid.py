"""Hyperliquid perpetuals: the public websocket ``l2Book`` subscription.

Protocol, as documented (sources below):

* Endpoint ``wss://api.hyperliquid.xyz/ws`` (testnet ``wss://api.hyperliquid-testnet.xyz/ws``).
  One subscription per message:
  ``{"method":"subscribe","subscription":{"type":"l2Book","coin":"BTC"}}``; ``"unsubscribe"``
  takes the same shape.  The venue acknowledges with
  ``{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":{...}}}``.
  Perp books are named by the bare coin (``BTC``, ``ETH``, ``kPEPE``), as in ``meta``.
* Book messages: ``{"channel":"l2Book","data":{"coin":C,"time":ms,"levels":[bids,asks]}}``
  where each side is a best-first list of ``{"px":str,"sz":str,"n":int}``.  EVERY message is
  a complete picture of the top of the book (no deltas), so each one is published as a
  snapshot: the engine clears the book and loads the levels.
* Integrity: there is NO sequence number and NO checksum.  The one ordering fact is
  ``time`` (ms).  A message whose ``time`` is older than the last applied message of that
  book is dropped (the book keeps the newer picture) and counted in ``out_of_order`` and
  ``stats.reasons["out-of-order snapshot dropped"]``; equal times are applied (a repeat of
  a full picture is harmless).  ``STALE_LIMIT`` such messages in a row mean the venue's
  clock really went back (not one late frame): the book is resynced and the clock
  forgotten, so a regressed clock can never freeze a book.  A lost message cannot leave
  the book wrong for longer than the next message (each one is complete); a crossed
  result is flagged by the engine and resyncs.
* Resync: unsubscribe + subscribe of ``l2Book`` (connectors.resubscribe); a book whose
  first snapshot does not come within ``snapshot_timeout`` triggers a reconnect.
* Keep-alive: the venue closes a connection it has sent nothing to for 60 s; the client
  sends ``{"method":"ping"}`` and gets ``{"channel":"pong"}``.  ``ping_interval`` (20 s)
  stays well inside that and inside the runner's 30 s idle timeout.
* Errors: ``{"channel":"error","data":"..."}`` is counted as a malformed frame.
* Depth: the public ``l2Book`` carries at most 20 levels per side (``depth = 20``).
  No ``nSigFigs`` is sent, so levels are unaggregated (full price precision).
* Instruments: ``POST https://api.hyperliquid.xyz/info`` with body ``{"type":"meta"}``;
  ``universe[i] = {"name", "szDecimals", "maxLeverage", ["isDelisted"], ...}``.  Prices
  have up to 5 significant figures and at most ``6 - szDecimals`` decimals (perps), sizes
  exactly ``szDecimals`` decimals: those are the fixed-point scales (exact, no headroom;
  a finer number is refused by the parser, counted, and resyncs the book).  Delisted
  assets are skipped.  Unified names are ``<COIN>-USDC-PERP`` (perps are USDC margined).

  The framework's instrument fetch (connectors.feed.fetch_instruments) only GETs the
  URLs of ``instrument_urls`` and ``RestRequest`` has no body, so ``{"type":"meta"}``
  cannot be sent through it.  Until it can, callers fetch with ``fetch_instruments``
  below (an aiohttp POST) and pass the result as ``ExchangeSpec.instruments``.

Sources:
  https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/websocket (endpoint,
  subscribe message, subscriptionResponse), .../api/websocket/subscriptions (l2Book -> WsBook,
  WsLevel {px, sz, n}), .../api/websocket/timeouts-and-heartbeats (60 s, ping/pong),
  .../api/tick-and-lot-size (5 significant figures, 6 - szDecimals, szDecimals),
  .../api/info-endpoint/perpetuals (meta / universe), .../api/rate-limits.
Not confirmed (not verified against a live session or a recording): the heartbeat page's
text (the 60 s limit and the ``{"channel":"pong"}`` reply are as third-party clients
describe them; the page itself was only seen as a title); that a snapshot is
pushed immediately on subscribe even when the book is quiet (assumed: clients in the
wild rely on it); how often l2Book is pushed (per block / on change); whether ``time``
can repeat; the exact shape of error frames; that GET /info is refused (assumed); the
per-connection subscription limit (docs give 1000 subscriptions per IP and 2000 sent
messages per minute: 100 books per connection and 20 subscribe messages/s are our own
choices).  Spot books (``@<index>`` names from ``spotMeta``, 8 - szDecimals price
decimals) and HIP-3 ``dex:COIN`` books are not handled here.
"""

from __future__ import annotations

import logging
from operator import itemgetter

import orjson

from connectors.base import ConfigError, Instrument, MalformedFrame, RestRequest
from connectors.publish import join_levels
from connectors.resubscribe import ResubscribingProtocol
from engine.constants import NO_SEQ

log = logging.getLogger("hftbook.connectors")

INFO_PATH = "/info"
META_REQUEST = b'{"type":"meta"}'
PERP_MAX_DECIMALS = 6      # price decimals = PERP_MAX_DECIMALS - szDecimals
STALE_LIMIT = 5            # consecutive older-than-applied messages before a resync
CHANNEL = "l2Book"

_px = itemgetter("px")
_sz = itemgetter("sz")


def _side(levels) -> tuple[bytes, bytes]:
    """One side ``[{"px","sz","n"}, ...]`` -> joined (prices, sizes); TypeError otherwise."""
    if type(levels) is not list:
        raise TypeError("a side of levels is not a list")
    for lv in levels:
        if type(lv) is not dict or type(lv.get("px")) is not str \
                or type(lv.get("sz")) is not str:
            raise TypeError(f"bad level {str(lv)[:60]}")
    return join_levels(levels, _px, _sz)


async def fetch_instruments(http, rest_url: str = "https://api.hyperliquid.xyz") \
        -> dict[str, Instrument]:
    """POST ``{"type":"meta"}`` to ``/info`` with an aiohttp session and parse it (the
    framework's GET-only instrument fetch cannot: see the module docstring)."""
    import aiohttp
    async with http.post(rest_url + INFO_PATH, data=META_REQUEST,
                         headers={"Content-Type": "application/json"},
                         timeout=aiohttp.ClientTimeout(total=20)) as r:
        if r.status != 200:
            raise ConfigError(f"hyperliquid: POST {rest_url}{INFO_PATH} -> HTTP {r.status}")
        return Hyperliquid.parse_instruments(await r.read())


class Hyperliquid(ResubscribingProtocol):
    exchange = "hyperliquid"
    ws_url = "wss://api.hyperliquid.xyz/ws"
    rest_url = "https://api.hyperliquid.xyz"
    max_symbols_per_connection = 100   # our choice (docs: 1000 subscriptions per IP)
    subscribe_batch = 1                # one subscription per message
    subscribe_interval = 0.05          # 20 messages/s, under 2000 per minute
    ping_interval = 20.0
    depth = 20

    def __init__(self, *args, ping_interval: float | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if ping_interval is not None:
            self.ping_interval = ping_interval
        self.last_time: dict[str, int | None] = dict.fromkeys(self.targets)
        self.out_of_order = dict.fromkeys(self.targets, 0)
        self._behind = dict.fromkeys(self.targets, 0)
        self.pongs = 0
        self.acks = 0

    # -- instruments -------------------------------------------------------------------
    @classmethod
    def instrument_urls(cls) -> list[str]:
        return [cls.rest_url + INFO_PATH]

    @classmethod
    def instrument_requests(cls) -> list[RestRequest]:
        """The instrument list is a POST of {"type":"meta"} to /info."""
        return [RestRequest("", cls.rest_url + INFO_PATH, kind="instruments", method="POST",
                            body=META_REQUEST)]

    @classmethod
    def parse_instruments(cls, body: bytes | str) -> dict[str, Instrument]:
        msg = orjson.loads(body)
        universe = msg.get("universe") if isinstance(msg, dict) else None
        if not isinstance(universe, list):
            raise ConfigError(f"hyperliquid: not a meta response: {str(body)[:200]}")
        out = {}
        for asset in universe:
            name = asset.get("name") if isinstance(asset, dict) else None
            szd = asset.get("szDecimals") if isinstance(asset, dict) else None
            if not isinstance(name, str) or not name or type(szd) is not int \
                    or not 0 <= szd <= PERP_MAX_DECIMALS:
                raise ConfigError(f"hyperliquid: bad universe entry {str(asset)[:120]}")
            if asset.get("isDelisted"):
                continue
            pdec = PERP_MAX_DECIMALS - szd
            out[name] = Instrument(cls.exchange, name, f"{name.upper()}-USDC-PERP", pdec, szd,
                                   f"1e-{pdec}" if pdec else "1", f"1e-{szd}" if szd else "1",
                                   "perp")
        return out

    # -- subscription ------------------------------------------------------------------
    @staticmethod
    def book_request(kind: str, coin: str) -> str:
        return orjson.dumps({"method": kind,
                             "subscription": {"type": CHANNEL, "coin": coin}}).decode()

    def subscribe_messages(self, symbols: list[str]) -> list[str]:
        return [self.book_request("subscribe", s) for s in symbols]

    def book_channel_messages(self, kind: str, symbols: list[str]) -> list[str]:
        return [self.book_request(kind, s) for s in symbols]

    def ping_message(self) -> str | None:
        return '{"method":"ping"}'

    def on_connect(self) -> None:
        super().on_connect()
        for s in self.targets:        # a new connection: the clock starts over
            self.last_time[s] = None
            self._behind[s] = 0

    # -- frames ------------------------------------------------------------------------
    def on_message(self, frame: bytes | str, recv_ns: int) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise MalformedFrame("not a JSON object")
        channel = msg.get("channel")
        if channel == CHANNEL:
            self._on_book(msg.get("data"), recv_ns)
        elif channel == "pong":
            self.pongs += 1
            self.stats.ignored_frames += 1
        elif channel == "subscriptionResponse":
            self.acks += 1
            self.stats.ignored_frames += 1
        elif channel == "error":
            raise MalformedFrame(f"venue error: {str(msg.get('data'))[:120]}")
        elif isinstance(channel, str):
            self.stats.ignored_frames += 1     # trades, bbo, ... not ours
        else:
            raise MalformedFrame("message without a channel")

    def _on_book(self, data, recv_ns: int) -> None:
        if not isinstance(data, dict):
            raise MalformedFrame("l2Book without a data object")
        coin = data.get("coin")
        if coin not in self.live:
            self.stats.unknown_symbol_frames += 1
            return
        t = data.get("time")
        if type(t) is not int or t < 0:
            raise MalformedFrame(f"l2Book time is not a millisecond count: {t!r}", coin)
        try:
            levels = data["levels"]
            if type(levels) is not list or len(levels) != 2:
                raise ValueError("levels is not [bids, asks]")
            bids = _side(levels[0])
            asks = _side(levels[1])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedFrame(f"bad l2Book: {type(exc).__name__}: {exc}", coin) from exc
        last = self.last_time[coin]
        if last is not None and t < last:
            self._stale_message(coin, t, last)
            return
        self._behind[coin] = 0
        if self.publish(coin, bids, asks, NO_SEQ, t * 1_000_000, recv_ns, snapshot=True,
                        live=True):
            self.last_time[coin] = t
            self.snapshot_applied(coin)

    def _stale_message(self, coin: str, t: int, last: int) -> None:
        """An l2Book older than the one applied: drop it; a run of them resyncs."""
        self.out_of_order[coin] += 1
        self.stats.reasons["out-of-order snapshot dropped"] += 1
        self._behind[coin] += 1
        log.warning("hyperliquid %s: l2Book time %d is older than the applied %d: dropped",
                    coin, t, last)
        if self._behind[coin] >= STALE_LIMIT:
            self._behind[coin] = 0
            self.last_time[coin] = None
            self.resync(coin, "l2Book time went backwards")
