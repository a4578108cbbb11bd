"""`hftbook replay`: recorded sessions through the connectors and the engine."""

from __future__ import annotations

import sys

import orjson

from connectors.base import ConfigError
from connectors.replay import recordings_in, replay_session


def run_replay(paths: list[str], verify: bool, as_json: bool, dump: str | None,
               no_checksums: bool = False) -> int:
    try:
        sessions = recordings_in(paths)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"hftbook replay: {exc}", file=sys.stderr)
        return 2
    if not sessions:
        print("hftbook replay: no supported recordings found in " + " ".join(paths),
              file=sys.stderr)
        return 2
    results = []
    for directory, name in sessions:
        try:
            results.append(replay_session(directory, name, verify_checksums=not no_checksums,
                                          drain_every=1 if verify else 64))
        except (ConfigError, OSError, ValueError, ImportError) as exc:
            print(f"hftbook replay: {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    failed = []
    for r in results:
        bad = r.checksums_failed or not all(s == "live" for s in r.statuses.values())
        if verify:
            bad = bad or r.gaps or r.resyncs or r.malformed
        if bad:
            failed.append(r.recording)
    if dump:
        books = {f"{r.exchange}": r.books_dict() for r in results}
        with open(dump, "wb") as f:
            f.write(orjson.dumps(books, option=orjson.OPT_INDENT_2))
    if as_json:
        out = {"recordings": [r.summary() for r in results], "failed": failed,
               "ok": not failed}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
    else:
        _print_table(results, failed)
    return 1 if failed else 0


def _print_table(results, failed) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="hftbook replay")
    cols = ("recording", "frames", "level upd", "books", "live", "checksums ok", "mismatch",
            "gaps", "resyncs", "malformed", "msgs/s", "levels/s")
    for c in cols:
        t.add_column(c, justify="right" if c != "recording" else "left")
    for r in results:
        s = r.summary()
        t.add_row(r.recording, str(s["frames"]), str(s["level_updates"]), str(s["books"]),
                  str(s["books_live"]), str(s["checksums_verified"]),
                  str(s["checksum_mismatches"]), str(s["gaps"]), str(s["resyncs"]),
                  str(s["malformed"]), f"{s['msgs_per_s']:,}", f"{s['levels_per_s']:,}")
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(t)
    if failed:
        console.print(f"[red]FAILED[/red]: {', '.join(failed)}")
    else:
        console.print("all books live, no checksum mismatches")
