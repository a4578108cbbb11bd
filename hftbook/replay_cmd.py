"""`hftbook replay`: recorded sessions through the connectors and the engine."""

from __future__ import annotations

import sys

import orjson

from connectors.base import ConfigError
from connectors.replay import recordings_in, replay_session


def _tardis(paths: list[str], speed: float | None, progress: bool) -> tuple[list, list]:
    """tardis.dev incremental_book_L2 CSV files: summaries and failures."""
    from connectors.tardis import replay_tardis

    out, failed = [], []
    for path in paths:
        res = replay_tardis(path, speed=speed, progress=progress)
        statuses = [b["status"] for b in res["books"].values()]
        summary = {"recording": path, "frames": res["messages"],
                   "level_updates": res["levels"], "books": len(statuses),
                   "books_live": statuses.count("live"), "checksums_verified": 0,
                   "checksum_mismatches": 0, "gaps": 0, "resyncs": 0,
                   "malformed": res["malformed"], "seconds": res["seconds"],
                   "msgs_per_s": round(res["messages"] / res["seconds"]) if res["seconds"]
                   else 0, "levels_per_s": round(res["levels_per_s"]),
                   "statuses": dict(zip(res["books"], statuses)),
                   "ok": statuses.count("live") == len(statuses)}
        out.append((summary, res["books"]))
        if not summary["ok"]:
            failed.append(path)
    return out, failed


def run_replay(paths: list[str], verify: bool, as_json: bool, dump: str | None,
               no_checksums: bool = False, speed: float | None = None,
               progress: bool = False) -> int:
    from connectors.progress import wanted

    progress = wanted(progress, as_json)   # stderr only; forced by --progress
    own = [p for p in paths if p.endswith(".hfr")]   # hftbook record's format
    csvs = [p for p in paths if p.endswith((".csv", ".csv.gz"))]  # tardis.dev L2
    paths = [p for p in paths if not p.endswith((".hfr", ".csv", ".csv.gz"))]
    try:
        sessions = recordings_in(paths) if paths else []
    except (ConfigError, FileNotFoundError) as exc:
        print(f"hftbook replay: {exc}", file=sys.stderr)
        return 2
    if not sessions and not own and not csvs:
        print("hftbook replay: no supported recordings found in " + " ".join(paths),
              file=sys.stderr)
        return 2
    results = []
    for directory, name in sessions:
        try:
            results.append(replay_session(directory, name, verify_checksums=not no_checksums,
                                          drain_every=1 if verify else 64, speed=speed,
                                          progress=progress))
        except (ConfigError, OSError, ValueError, ImportError) as exc:
            print(f"hftbook replay: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    from connectors.recording import RecordingError, replay_file

    for path in own:
        try:
            results.append(replay_file(path, verify_checksums=not no_checksums,
                                       drain_every=1 if verify else 64, speed=speed,
                                       progress=progress))
        except (ConfigError, OSError, ValueError, ImportError, RecordingError) as exc:
            print(f"hftbook replay: {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    try:
        tardis, failed = _tardis(csvs, speed, progress)
    except (OSError, ValueError) as exc:
        print(f"hftbook replay: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for r in results:
        bad = r.checksums_failed or not all(s == "live" for s in r.statuses.values())
        if verify:
            bad = bad or r.gaps or r.resyncs or r.malformed
        if bad:
            failed.append(r.recording)
    if dump:
        books = {f"{r.exchange}": r.books_dict() for r in results}
        for summary, tbooks in tardis:
            books[summary["recording"]] = tbooks
        with open(dump, "wb") as f:
            f.write(orjson.dumps(books, option=orjson.OPT_INDENT_2))
    if as_json:
        out = {"recordings": [r.summary() for r in results] + [t for t, _ in tardis],
               "failed": failed, "ok": not failed}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        _print_table([r.summary() for r in results] + [t for t, _ in tardis], failed)
    return 1 if failed else 0


def _print_table(results, failed) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="hftbook replay")
    cols = ("recording", "frames", "level upd", "books", "live", "checksums ok", "mismatch",
            "gaps", "resyncs", "malformed", "msgs/s", "levels/s")
    for c in cols:
        t.add_column(c, justify="right" if c != "recording" else "left")
    for s in results:
        t.add_row(s["recording"], str(s["frames"]), str(s["level_updates"]), str(s["books"]),
                  str(s["books_live"]), str(s["checksums_verified"]),
                  str(s["checksum_mismatches"]), str(s["gaps"]), str(s["resyncs"]),
                  str(s["malformed"]), f"{s['msgs_per_s']:,}", f"{s['levels_per_s']:,}")
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(t)
    if failed:
        console.print(f"[red]FAILED[/red]: {', '.join(failed)}")
    else:
        console.print("all books live, no checksum mismatches")
