"""Paged instrument lists are followed to the end (Bybit cursors) by fetch_instruments."""

import asyncio

import aiohttp
import orjson
from aiohttp import web

from connectors.bybit import Bybit
from connectors.feed import ExchangeSpec, fetch_instruments


def _item(i):
    return {"symbol": f"C{i:04d}USDT", "baseCoin": f"C{i:04d}", "quoteCoin": "USDT",
            "status": "Trading", "contractType": "LinearPerpetual", "settleCoin": "USDT",
            "priceScale": "2", "priceFilter": {"tickSize": "0.01"},
            "lotSizeFilter": {"qtyStep": "0.001"}}


def test_fetch_instruments_follows_next_page_cursors():
    total = 2 * Bybit.instruments_limit + 7
    seen = []

    async def handler(request: web.Request) -> web.Response:
        start = int(request.query.get("cursor", "0"))
        seen.append(start)
        end = min(start + Bybit.instruments_limit, total)
        body = {"retCode": 0, "result": {"category": "linear",
                                         "list": [_item(i) for i in range(start, end)],
                                         "nextPageCursor": str(end) if end < total else ""}}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def scenario():
        app = web.Application()
        app.add_routes([web.get(Bybit.instruments_path, handler)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as http:
                spec = ExchangeSpec(Bybit, [], rest_url=f"http://127.0.0.1:{port}")
                return await fetch_instruments(spec, http)
        finally:
            await runner.cleanup()

    out = asyncio.run(scenario())
    assert len(out) == total and "C0000USDT" in out and f"C{total - 1:04d}USDT" in out
    assert seen == [0, Bybit.instruments_limit, 2 * Bybit.instruments_limit]
    assert Bybit.next_instrument_url("u", orjson.dumps(
        {"result": {"list": [], "nextPageCursor": "x"}})) is None
