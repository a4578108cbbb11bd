"""Exchange connectors: one module per venue, sharing connectors.base.

Protocol classes are named here as "module:Class" and imported on first use, so a
broken or missing venue module cannot stop the others from loading."""

from __future__ import annotations

import importlib

# live protocols, by exchange id (config / CLI name)
PROTOCOLS = {
    "binance": "connectors.binance:BinanceSpot",
    "binance_futures": "connectors.binance:BinanceFutures",
    "kraken": "connectors.kraken:Kraken",
    "okx": "connectors.okx:OKX",
    "coinbase": "connectors.coinbase:Coinbase",
    "bybit": "connectors.bybit:Bybit",
    "bybit_spot": "connectors.bybit:BybitSpot",
    "bybit_inverse": "connectors.bybit:BybitInverse",
    "bitstamp": "connectors.bitstamp:Bitstamp",
    "gemini": "connectors.gemini:Gemini",
    "htx": "connectors.htx:HTX",
    "kucoin": "connectors.kucoin:KuCoin",
    "gateio": "connectors.gateio:GateIO",
    "bitmex": "connectors.bitmex:BitMEX",
    "bitfinex": "connectors.bitfinex:Bitfinex",
    "deribit": "connectors.deribit:Deribit",
    "bitget": "connectors.bitget:Bitget",
    "phemex": "connectors.phemex:Phemex",
    "kraken_futures": "connectors.kraken_futures:KrakenFutures",
    "mexc": "connectors.mexc:MEXC",
    "cryptocom": "connectors.cryptocom:CryptoCom",
    "upbit": "connectors.upbit:Upbit",
    "bithumb": "connectors.bithumb:Bithumb",
    "poloniex": "connectors.poloniex:Poloniex",
    "hyperliquid": "connectors.hyperliquid:Hyperliquid",
    "dydx": "connectors.dydx:DyDx",
    "bitflyer": "connectors.bitflyer:BitFlyer",
    "hitbtc": "connectors.hitbtc:HitBTC",
    "ascendex": "connectors.ascendex:AscendEX",
}

# which protocol replays which recorded session (file-name prefix in ../shared/recorded);
# some are older dialects of a venue's protocol that the module also speaks
RECORDINGS = {
    "BINANCE": "connectors.binance:BinanceSpot",
    "BINANCE_FUTURES": "connectors.binance:BinanceFutures",
    "KRAKEN": "connectors.kraken:KrakenV1",
    "OKX": "connectors.okx:OKX",
    "COINBASE": "connectors.coinbase:CoinbaseExchange",
    "BITSTAMP": "connectors.bitstamp:Bitstamp",
    "GEMINI": "connectors.gemini:Gemini",
    "HUOBI": "connectors.htx:HTX",
    "KUCOIN": "connectors.kucoin:KuCoin",
    "GATEIO": "connectors.gateio:GateIO",
    "BITMEX": "connectors.bitmex:BitMEX",
    "BITFINEX": "connectors.bitfinex:Bitfinex",
    "DERIBIT": "connectors.deribit:Deribit",
    "BITGET": "connectors.bitget:Bitget",
    "PHEMEX": "connectors.phemex:Phemex",
    "KRAKEN_FUTURES": "connectors.kraken_futures:KrakenFutures",
    "UPBIT": "connectors.upbit:Upbit",
    "POLONIEX": "connectors.poloniex:Poloniex",
    "BITFLYER": "connectors.bitflyer:BitFlyer",
    "HITBTC": "connectors.hitbtc:HitBTCV2",
    "ASCENDEX": "connectors.ascendex:AscendEX",
}


def load(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def protocol(exchange: str):
    if exchange not in PROTOCOLS:
        raise KeyError(f"unknown exchange {exchange!r} (known: {', '.join(sorted(PROTOCOLS))})")
    return load(PROTOCOLS[exchange])
