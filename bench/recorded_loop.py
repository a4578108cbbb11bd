"""`hftbook bench loop`: frames per second the recorded-session venue
(simulator/recorded.py) serves at full speed (``recorded_speed = 0``) to a plain
websocket client in another process, per looped recording.

The baseline, measured in the same run with the same client and server code, is the
same frames sent verbatim (no timestamp or sequence rewrite, no venue-side book), so the
ratio is the cost of what the venue adds to the websocket send itself."""

from __future__ import annotations

import asyncio
import sys
import time

CLIENT = r"""
import asyncio, sys, time, websockets
async def main(url, secs):
    n = 0
    async with websockets.connect(url, max_size=2**24, close_timeout=0.5) as ws:
        await ws.send('{"method":"SUBSCRIBE","id":1,"params":[]}')
        t0 = time.monotonic()
        while time.monotonic() - t0 < secs:
            await ws.recv()
            n += 1
    print(n / secs)
asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


async def _client_rate(url: str, seconds: float) -> float:
    p = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, url, str(seconds),
                                             stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    return float(out)


async def _verbatim_server(frames: list) -> tuple:
    """The baseline venue: every recorded frame as recorded, in a loop."""
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def handler(ws):
        await ws.recv()
        try:
            while True:
                for _ts, data, _msg in frames:
                    await asyncio.sleep(0)
                    await ws.send(data)
        except ConnectionClosed:
            pass

    server = await serve(handler, "127.0.0.1", 0, max_size=2**24)
    return server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _bench(directory, seconds: float) -> dict:
    from simulator.recorded import RECORDED, RecordedVenue

    out = {}
    for ex in RECORDED:
        venue = await RecordedVenue(ex, directory, speed=0).start()
        t0 = time.monotonic()
        rate = await _client_rate(venue.ws_url, seconds)
        elapsed = time.monotonic() - t0
        loops = venue.loops
        await venue.stop()
        server, url = await _verbatim_server(venue.frames)
        base = await _client_rate(url, seconds)
        server.close()
        await server.wait_closed()
        out[ex] = {"recording": venue.recording, "frames_per_loop": len(venue.frames),
                   "recorded_frames_per_s": round(len(venue.frames) / max(venue.span, 1e-9),
                                                  1),
                   "frames_per_s": round(rate), "verbatim_frames_per_s": round(base),
                   "ratio_to_verbatim": round(rate / base, 2) if base else 0.0,
                   "loops": loops, "seconds": round(elapsed, 2)}
    return out


def run(directory=None, seconds: float = 3.0) -> dict:
    return {"venues": asyncio.run(_bench(directory, seconds)), "seconds_each": seconds}


def print_table(res: dict, console) -> None:
    from rich.table import Table

    t = Table(title="hftbook bench loop (recorded venue at full speed -> websocket client "
                    "in another process)")
    for c in ("venue", "recording", "frames/loop", "recorded pace f/s", "served f/s",
              "verbatim f/s", "ratio", "loops"):
        t.add_column(c, justify="left" if c in ("venue", "recording") else "right")
    for ex, r in res["venues"].items():
        t.add_row(ex, r["recording"], str(r["frames_per_loop"]),
                  f"{r['recorded_frames_per_s']:,}", f"{r['frames_per_s']:,}",
                  f"{r['verbatim_frames_per_s']:,}", f"{r['ratio_to_verbatim']:.2f}",
                  str(r["loops"]))
    console.print(t)
