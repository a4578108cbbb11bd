"""The ``hftbook`` command line."""

from __future__ import annotations

import argparse
import sys

import orjson

# benchmark -> (module under bench/, takes the recordings directory, console width when
# stdout is not a terminal)
BENCHES = {
    "engine": ("engine", False, None),
    "replay": ("replay", True, 140),
    "tiers": ("tiers", False, 200),
    "platform": ("platform", False, 200),
    "shm": ("shm", False, None),
    "loop": ("recorded_loop", True, 140),
}


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    from rich.console import Console

    if args.what not in BENCHES:
        raise SystemExit(f"unknown benchmark {args.what!r}")
    module, wants_recordings, width = BENCHES[args.what]
    b = importlib.import_module(f"bench.{module}")
    if args.what == "replay":
        from connectors.recorded_paths import default_recordings

        res = b.run(args.recordings or default_recordings())
    elif wants_recordings:
        res = b.run(args.recordings)
    else:
        res = b.run(quick=args.quick)
    if args.json:
        sys.stdout.write(orjson.dumps(res).decode() + "\n")
    else:
        b.print_table(res, Console(width=None if sys.stdout.isatty() or width is None
                                   else width))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hftbook.demo import run_demo

    return run_demo(duration=args.duration, n_books=args.books, rate=args.rate,
                    as_json=args.json)


def _cmd_run(args: argparse.Namespace) -> int:
    from hftbook.run_cmd import run

    return run(args.config, args.duration, args.exchanges, args.live, args.json,
               args.simulator, args.fault, args.verify, prometheus_port=args.prometheus_port,
               shm_name=args.shm_name, no_shm=args.no_shm, source=args.source,
               recorded_speed=args.recorded_speed)


def _cmd_top(args: argparse.Namespace) -> int:
    from hftbook.top_cmd import run_top

    return run_top(args.name, args.exchange, args.symbol, depth=args.depth,
                   ladders=args.ladders, rows=args.rows, interval=args.interval,
                   once=args.once, width=args.width)


def _cmd_record(args: argparse.Namespace) -> int:
    from hftbook.run_cmd import run

    return run(args.config, args.duration, args.exchanges, args.live, args.json,
               record_dir=args.out)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from hftbook.simulate_cmd import run

    return run(args.config, args.duration, args.exchanges, args.urls_file, args.fault,
               args.json, source=args.source, recorded_speed=args.recorded_speed)


def _cmd_replay(args: argparse.Namespace) -> int:
    from hftbook.replay_cmd import run_replay

    _quiet_logs(args)
    return run_replay(args.files, args.verify, args.json, args.dump_books, args.no_checksums,
                      args.speed, args.progress)


def _quiet_logs(args: argparse.Namespace) -> None:
    import logging

    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False)
                        else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


def _source_flags(p: argparse.ArgumentParser) -> None:
    """Where the simulated venues' book activity comes from (overrides [simulator])."""
    p.add_argument("--source", choices=["synthetic", "recorded", "both"],
                   help="simulated book activity: the synthetic order flow, the recorded "
                        "sessions looped (the exchanges with a looped recording; others "
                        "stay synthetic), or both")
    p.add_argument("--recorded-speed", type=float, metavar="X",
                   help="recorded sessions: times the recorded pace (0 = as fast as possible)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hftbook", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="hold live books for the configured exchanges")
    run.add_argument("--config", help="config file (default: config.toml of the checkout)")
    run.add_argument("--duration", type=float, help="seconds to run (0 = until Ctrl-C)")
    run.add_argument("--exchanges", help="comma-separated subset of the configured exchanges")
    run.add_argument("--live", action="store_true", help="real exchanges, not the simulator")
    run.add_argument("--json", action="store_true", help="print a final JSON summary only")
    run.add_argument("--simulator", metavar="FILE",
                     help="use a simulator already running (hftbook simulate's URL file)")
    run.add_argument("--fault", action="append", metavar="AT:KIND:EXCHANGE[:SYMBOL]",
                     help="inject a fault into the embedded simulator, e.g. "
                          "3:gap:binance:BTCUSDT (kinds: gap, checksum, disconnect, garbage, "
                          "stall=SECONDS); repeatable")
    run.add_argument("--verify", action="store_true",
                     help="simulated mode: at the end, pause the venues and check every book "
                          "against the simulator's true book")
    run.add_argument("--prometheus-port", type=int, metavar="PORT",
                     help="serve Prometheus metrics on this port (0 = any free port, "
                          "-1 = off); overrides [monitoring] in the config")
    shm_opts = run.add_mutually_exclusive_group()
    shm_opts.add_argument("--shm-name", metavar="NAME",
                          help="serve the books in shared memory under this name "
                               "(overrides [shm]; readers: hftbook top --name NAME)")
    shm_opts.add_argument("--no-shm", action="store_true",
                          help="keep the books private to this process")
    _source_flags(run)
    run.set_defaults(func=_cmd_run)

    top = sub.add_parser("top", help="watch the books of a running feed from another "
                         "process (shared memory)")
    top.add_argument("--name", default="hftbook",
                     help="shared-memory name of the feed ([shm] name; default hftbook)")
    top.add_argument("--exchange", help="only this exchange's books")
    top.add_argument("--symbol", help="only books of this native or unified symbol")
    top.add_argument("--depth", type=int, default=10, help="levels per ladder side")
    top.add_argument("--ladders", type=int, default=2, help="books shown as ladders")
    top.add_argument("--rows", type=int, default=20, help="rows of the book and "
                     "consolidated tables")
    top.add_argument("--interval", type=float, default=0.5, help="seconds between refreshes")
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--width", type=int, help="terminal width (default: detected)")
    top.set_defaults(func=_cmd_top)

    rec = sub.add_parser("record", help="run the feed and record every frame and REST answer")
    rec.add_argument("--out", required=True, help="directory for one <exchange>.hfr per venue")
    rec.add_argument("--config", help="config file (default: config.toml of the checkout)")
    rec.add_argument("--duration", type=float, help="seconds to run (0 = until Ctrl-C)")
    rec.add_argument("--exchanges", help="comma-separated subset of the configured exchanges")
    rec.add_argument("--live", action="store_true", help="real exchanges, not the simulator")
    rec.add_argument("--json", action="store_true", help="print a final JSON summary only")
    rec.set_defaults(func=_cmd_record)

    sim = sub.add_parser("simulate", help="run the loopback exchange simulator on its own")
    sim.add_argument("--config", help="config file (default: config.toml of the checkout)")
    sim.add_argument("--duration", type=float, help="seconds to run (0 = until Ctrl-C)")
    sim.add_argument("--exchanges", help="comma-separated subset of the configured exchanges")
    sim.add_argument("--urls-file", help="where to write the venues' URLs (JSON)")
    sim.add_argument("--fault", action="append", metavar="AT:KIND:EXCHANGE[:SYMBOL]",
                     help="scheduled fault, as for hftbook run; repeatable")
    sim.add_argument("--json", action="store_true", help="print a final JSON summary")
    _source_flags(sim)
    sim.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser("demo", help="the engine alone on a synthetic in-process flow")
    demo.add_argument("--duration", type=float, default=10.0,
                      help="seconds to run (0 = until Ctrl-C)")
    demo.add_argument("--books", type=int, default=2000, help="books in the synthetic feed")
    demo.add_argument("--rate", type=int, default=200_000,
                      help="offered level updates per second")
    demo.add_argument("--json", action="store_true", help="print a final JSON summary only")
    demo.set_defaults(func=_cmd_demo)

    rp = sub.add_parser("replay", help="replay recorded sessions through connectors + engine")
    rp.add_argument("files", nargs="+", help="recordings: ../shared/recorded files or "
                    "directories, hftbook record's .hfr files, tardis.dev .csv/.csv.gz")
    rp.add_argument("--verify", action="store_true",
                    help="also fail on any gap, resync or malformed frame")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.add_argument("--dump-books", metavar="OUT.json", help="write every final book, exact")
    rp.add_argument("--no-checksums", action="store_true", help="skip checksum verification")
    rp.add_argument("--speed", type=float, help="pace by the recorded timestamps, this many "
                    "times real time (1 = real time); default: full speed")
    rp.add_argument("--progress", action="store_true",
                    help="progress bars on stderr for every format, even when stderr is not "
                         "a terminal (default: only on a terminal, and not with --json)")
    rp.add_argument("-v", "--verbose", action="store_true", help="log every event")
    rp.set_defaults(func=_cmd_replay)

    bench = sub.add_parser("bench", help="benchmarks that print their figures")
    bench.add_argument("what", choices=list(BENCHES),
                       help="loop: frames/s the recorded-session venue serves")
    bench.add_argument("--recordings", help="recorded sessions directory "
                       "(default: ../shared/recorded/cryptofeed beside the checkout)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="smaller workloads (smoke test)")
    bench.set_defaults(func=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
