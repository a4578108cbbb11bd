"""A book whose snapshots keep failing must not turn into a storm of REST calls: the
runner spaces out repeated snapshot requests for one symbol, and only for that symbol."""

import asyncio
import time
from collections import deque

import aiohttp
from aiohttp import web

from connectors import runner
from connectors.base import RestRequest
from connectors.runner import Connection


class _NeverSatisfied:
    """A protocol whose every snapshot asks for the next one at once, as a book does
    when each snapshot fails its checks or is larger than its queue."""

    exchange = "stub"

    def __init__(self) -> None:
        self.rest_requests: deque[RestRequest] = deque()
        self.snapshots: dict[str, int] = {}

    def handle_rest(self, req: RestRequest, body: bytes, recv_ns: int) -> None:
        self.snapshots[req.symbol] = self.snapshots.get(req.symbol, 0) + 1
        if req.symbol == "BAD":
            self.rest_requests.append(RestRequest(req.symbol, req.url))

    def reset_symbol(self, symbol: str) -> None:  # after a fetch gave up
        pass


def test_repeated_snapshot_asks_back_off_per_symbol():
    hits: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        sym = request.query["symbol"]
        hits[sym] = hits.get(sym, 0) + 1
        return web.Response(body=b"{}", content_type="application/json")

    async def scenario() -> float:
        app = web.Application()
        app.add_routes([web.get("/depth", handler)])
        site_runner = web.AppRunner(app)
        await site_runner.setup()
        site = web.TCPSite(site_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/depth?symbol="
        proto = _NeverSatisfied()
        try:
            async with aiohttp.ClientSession() as http:
                conn = Connection(proto, ["BAD", "GOOD"], http)
                proto.rest_requests.append(RestRequest("BAD", url + "BAD"))
                end = time.monotonic() + 2.5
                while time.monotonic() < end:  # the runner's loop: fetch what is asked
                    await asyncio.wait_for(conn._fetch(proto.rest_requests.popleft()),
                                           end + 5 - time.monotonic())
                t0 = time.monotonic()
                await conn._fetch(RestRequest("GOOD", url + "GOOD"))
                return time.monotonic() - t0
        finally:
            await site_runner.cleanup()

    good_took = asyncio.run(scenario())
    # asks 1 and 2 go out at once, then 0.5 s, 1 s, 2 s later: 4 or 5 in 2.5 s
    # (without the back-off the loop above makes hundreds of calls)
    assert 3 <= hits["BAD"] <= 5, hits
    assert hits["GOOD"] == 1 and good_took < 0.4  # another symbol does not wait


def test_snapshot_delay_doubles_to_a_cap_and_forgets_after_a_quiet_window():
    conn = Connection(_NeverSatisfied(), ["X"], http=None)
    t = 1000.0
    waits = []
    for _ in range(10):
        wait, _repeats = conn.snapshot_delay("X", t)
        waits.append(wait)
        t += wait + 0.01  # asked again just after the last fetch
    assert waits[:4] == [0.0, 0.0, 0.5, 1.0]
    assert waits[4:] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert max(waits) == runner.SNAPSHOT_BACKOFF_MAX_S
    # a symbol that has been fine for a while starts again from no wait
    assert conn.snapshot_delay("X", t + runner.REPEAT_WINDOW_S + 1) == (0.0, 0)
    assert conn.snapshot_delay("Y", t) == (0.0, 0)
