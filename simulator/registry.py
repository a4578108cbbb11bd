"""Which simulated venue speaks which connector's protocol, and symbol names for it."""

from __future__ import annotations

import importlib

VENUES = {
    "binance": "simulator.binance:BinanceSpotVenue",
    "binance_futures": "simulator.binance:BinanceFuturesVenue",
    "kraken": "simulator.kraken:KrakenVenue",
    "okx": "simulator.okx:OKXVenue",
    "coinbase": "simulator.coinbase:CoinbaseVenue",
    "bybit": "simulator.bybit:BybitVenue",
    "bybit_spot": "simulator.bybit:BybitSpotVenue",
    "bybit_inverse": "simulator.bybit:BybitInverseVenue",
    "bitstamp": "simulator.bitstamp:BitstampVenue",
    "gemini": "simulator.gemini:GeminiVenue",
    "htx": "simulator.htx:HTXVenue",
    "kucoin": "simulator.kucoin:KuCoinVenue",
    "gateio": "simulator.gateio:GateIOVenue",
    "bitmex": "simulator.bitmex:BitMEXVenue",
    "bitfinex": "simulator.bitfinex:BitfinexVenue",
    "deribit": "simulator.deribit:DeribitVenue",
    "bitget": "simulator.bitget:BitgetVenue",
    "phemex": "simulator.phemex:PhemexVenue",
    "kraken_futures": "simulator.kraken_futures:KrakenFuturesVenue",
    "mexc": "simulator.mexc:MEXCVenue",
    "cryptocom": "simulator.cryptocom:CryptoComVenue",
    "upbit": "simulator.upbit:UpbitVenue",
    "bithumb": "simulator.bithumb:BithumbVenue",
    "poloniex": "simulator.poloniex:PoloniexVenue",
    "hyperliquid": "simulator.hyperliquid:HyperliquidVenue",
    "dydx": "simulator.dydx:DyDxVenue",
    "bitflyer": "simulator.bitflyer:BitFlyerVenue",
    "hitbtc": "simulator.hitbtc:HitBTCVenue",
    "ascendex": "simulator.ascendex:AscendEXVenue",
}

# how each venue spells a (base, quote) pair natively
SPELLING = {
    "binance": "{b}{q}",
    "binance_futures": "{b}{q}",
    "kraken": "{b}/{q}",
    "okx": "{b}-{q}",
    "coinbase": "{b}-{q}",
    "bybit": "{b}{q}",
    "bybit_spot": "{b}{q}",
    "bybit_inverse": "{b}{q}",
    "bitstamp": "{b}{q}",
    "gemini": "{b}{q}",
    "htx": "{b}{q}",
    "kucoin": "{b}-{q}",
    "gateio": "{b}_{q}",
    "bitmex": "{b}{q}",
    "bitfinex": lambda b, q: f"t{b}{q}" if len(b) == 3 else f"t{b}:{q}",  # tAVAX:USD
    "deribit": "{b}-PERPETUAL",
    "mexc": "{b}{q}",
    "bithumb": "{q}-{b}",
    "upbit": "{q}-{b}",
    "poloniex": "{b}_{q}",
    "cryptocom": "{b}_{q}",
    "hyperliquid": "{b}",
    "dydx": "{b}-{q}",
    "bitflyer": "{b}_{q}",
    "hitbtc": "{b}{q}",
    "ascendex": "{b}/{q}",
    "bitget": "{b}{q}",
    "phemex": "s{b}{q}",
    "kraken_futures": "PF_{b}USD",
}
QUOTES = {"kraken": "USD", "coinbase": "USD", "bybit_inverse": "USD", "gemini": "USD",
          "bitstamp": "USD", "bitfinex": "USD", "bithumb": "KRW", "upbit": "KRW",
          "cryptocom": "USD", "dydx": "USD", "bitflyer": "JPY"}
LOWERCASE = {"htx", "bitstamp"}  # venues that spell symbols in lower case
BASES = ["BTC", "ETH", "SOL", "XRP", "DOGE", "ADA", "AVAX", "LINK", "DOT", "LTC", "TRX",
         "BCH", "ATOM", "UNI", "ETC", "FIL", "APT", "ARB", "OP", "NEAR"]


def venue_class(exchange: str):
    spec = VENUES.get(exchange)
    if spec is None:
        raise KeyError(f"no simulated venue for {exchange!r}")
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def symbol_names(exchange: str, n: int) -> list[str]:
    """n native symbol names: well-known bases first, then synthetic ones (S0021...)."""
    quote = QUOTES.get(exchange, "USDT")
    bases = BASES[:n] + [f"S{i:04d}" for i in range(len(BASES), n)]
    spell = SPELLING[exchange]
    names = [spell(b, quote) if callable(spell) else spell.format(b=b, q=quote)
             for b in bases]
    return [n.lower() for n in names] if exchange in LOWERCASE else names
