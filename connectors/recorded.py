"""Reader for recorded exchange sessions (cryptofeed ``sample_data`` format).

The recordings let the book logic be replayed against real exchange traffic
without a network. Each file holds one record per line:

- ``URL <-> TS``          a websocket connection opened (:class:`Connect`)
- ``URL <- TS: TEXT``     a frame the client sent (:class:`Sent`)
- ``TS: TEXT``            a frame received (:class:`Frame`); binary frames are
                          written as a Python bytes literal ``b'...'``
- ``URL -> TS: BODY``     an HTTP response body (:class:`HttpResponse`)
- ``configuration: JSON`` the channels/symbols recorded (:class:`Configuration`)

Line kinds are told apart by the line *prefix* only, since frame texts may
themselves contain ``" -> "`` or ``" <- "``.
"""

from __future__ import annotations

import ast
import codecs
import heapq
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "Configuration",
    "Connect",
    "Connection",
    "Event",
    "Frame",
    "HttpResponse",
    "Record",
    "RecordFormatError",
    "Sent",
    "Session",
    "list_sessions",
    "load_session",
    "parse_line",
    "read_records",
    "session_events",
]


class RecordFormatError(ValueError):
    """A line (or file) that does not follow the recording format."""

    def __init__(self, reason: str, path: str | None = None, lineno: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.lineno = lineno
        where = "" if path is None else (f"{path}: " if lineno is None else f"{path}:{lineno}: ")
        super().__init__(where + reason)


@dataclass(frozen=True, slots=True)
class Connect:
    """A websocket connection to ``url`` opened at ``ts``."""

    url: str
    ts: float


@dataclass(frozen=True, slots=True)
class Sent:
    """A frame the client sent on ``url`` (subscriptions, pings)."""

    url: str
    ts: float
    text: str


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame received; ``data`` is bytes for binary frames, else str."""

    ts: float
    data: bytes | str


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The body of a REST GET of ``url``, received at ``ts``."""

    url: str
    ts: float
    body: str


@dataclass(frozen=True, slots=True)
class Configuration:
    """The recorder's configuration: channel name -> list of symbols."""

    config: dict


Record = Connect | Sent | Frame | HttpResponse | Configuration

_TS = r"(\d+(?:\.\d+)?)"
_FRAME_RE = re.compile(_TS + r": ")
_MESSAGE_RE = re.compile(r"(\S+) (<-|->) " + _TS + r": ")
_CONNECT_RE = re.compile(r"(\S+) <-> " + _TS)
_CONFIG_PREFIX = "configuration: "


def _decode_bytes_literal(text: str) -> bytes:
    """Decode a Python bytes literal without evaluating code.

    The recorder wrote ``repr(bytes)``, so the fast path decodes the escapes in C
    (``codecs.escape_decode``: undocumented but long-standing, pickle uses it) and
    accepts the result only if it re-encodes to exactly ``text``; anything else (a
    hand-written but valid literal) falls back to ``ast.literal_eval``. Measured
    ~1.8x faster than ``literal_eval`` alone on the 811 recorded binary frames.
    """
    if len(text) < 3 or text[-1] != text[1]:
        raise RecordFormatError(f"unterminated bytes literal: {text[:60]!r}")
    body = text[2:-1]
    if body.isascii():
        try:
            data = codecs.escape_decode(body)[0]
        except ValueError:
            data = None
        if data is not None and repr(data) == text:
            return data
    try:
        data = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise RecordFormatError(f"bad bytes literal: {text[:60]!r}") from exc
    if not isinstance(data, bytes):
        raise RecordFormatError(f"not a bytes literal: {text[:60]!r}")
    return data


def parse_line(line: str) -> Record | None:
    """Parse one line (without its newline); ``None`` for a blank line."""
    if not line:
        return None
    m = _FRAME_RE.match(line)
    if m is not None:
        text = line[m.end() :]
        if text[:2] in ("b'", 'b"'):  # JSON never starts with 'b'
            return Frame(float(m[1]), _decode_bytes_literal(text))
        return Frame(float(m[1]), text)
    if line.startswith(_CONFIG_PREFIX):
        try:
            config = json.loads(line[len(_CONFIG_PREFIX) :])
        except ValueError as exc:
            raise RecordFormatError(f"bad configuration JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise RecordFormatError("configuration is not a JSON object")
        return Configuration(config)
    m = _MESSAGE_RE.match(line)
    if m is not None:
        cls = Sent if m[2] == "<-" else HttpResponse
        return cls(m[1], float(m[3]), line[m.end() :])
    m = _CONNECT_RE.fullmatch(line)
    if m is not None:
        return Connect(m[1], float(m[2]))
    raise RecordFormatError(f"unrecognised line: {line[:80]!r}")


def read_records(path: str | PathLike[str]) -> Iterator[Record]:
    """Stream the records of one file; errors name the file and line number."""
    name = str(path)
    with open(path, "rb") as fh:  # split on b"\n" only: never on a stray \r
        for lineno, raw in enumerate(fh, 1):
            try:
                record = parse_line(raw.removesuffix(b"\n").decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise RecordFormatError(f"not UTF-8: {exc}", name, lineno) from exc
            except RecordFormatError as exc:
                raise RecordFormatError(exc.reason, name, lineno) from exc
            if record is not None:
                yield record


@dataclass(frozen=True, slots=True)
class Connection:
    """One websocket connection (one ``EXCHANGE.ws.N.0`` file)."""

    url: str
    opened_ts: float
    sent: list[Sent]
    frames: list[Frame]
    file: str  # file name, e.g. "KRAKEN.ws.50.0"


@dataclass(frozen=True, slots=True)
class Session:
    """Everything recorded for one exchange."""

    exchange: str
    config: dict | None
    instrument_responses: list[HttpResponse]  # from EXCHANGE.0
    http: list[HttpResponse]  # REST snapshots during the session, in ts order
    connections: list[Connection]  # by N of EXCHANGE.ws.N.0


_SESSION_FILE_RE = re.compile(r"(.+?)\.(?:0|(?:http|ws)\.\d+\.0)")


def list_sessions(directory: str | PathLike[str]) -> list[str]:
    """Exchange names (e.g. ``BIT.COM``, ``BINANCE_FUTURES``) with files in ``directory``."""
    names = set()
    for p in Path(directory).iterdir():
        m = _SESSION_FILE_RE.fullmatch(p.name)
        if m is not None and p.is_file():
            names.add(m[1])
    return sorted(names)


def _load_connection(path: Path) -> Connection:
    records = read_records(path)
    first = next(records, None)
    if not isinstance(first, Connect):
        raise RecordFormatError("websocket file does not start with a connect line", str(path))
    sent: list[Sent] = []
    frames: list[Frame] = []
    for rec in records:
        if isinstance(rec, Frame):
            frames.append(rec)
        elif isinstance(rec, Sent):
            sent.append(rec)
        else:
            raise RecordFormatError(f"unexpected {type(rec).__name__} in websocket file", str(path))
    return Connection(first.url, first.ts, sent, frames, path.name)


def load_session(directory: str | PathLike[str], exchange: str) -> Session:
    """Load ``EXCHANGE.0``, ``EXCHANGE.http.N.0`` and ``EXCHANGE.ws.N.0`` from ``directory``."""
    directory = Path(directory)
    numbered = re.compile(re.escape(exchange) + r"\.(http|ws)\.(\d+)\.0")
    files: dict[str, list[tuple[int, Path]]] = {"http": [], "ws": []}
    for p in directory.iterdir():
        m = numbered.fullmatch(p.name)
        if m is not None:
            files[m[1]].append((int(m[2]), p))
    head = directory / f"{exchange}.0"
    if not head.is_file() and not files["http"] and not files["ws"]:
        raise FileNotFoundError(f"no recorded session {exchange!r} in {directory}")

    config: dict | None = None
    instruments: list[HttpResponse] = []
    if head.is_file():
        for rec in read_records(head):
            if isinstance(rec, HttpResponse):
                instruments.append(rec)
            elif isinstance(rec, Configuration) and config is None:
                config = rec.config
            else:
                raise RecordFormatError(f"unexpected {type(rec).__name__}", str(head))

    http: list[HttpResponse] = []
    for _, p in sorted(files["http"]):
        for rec in read_records(p):
            if not isinstance(rec, HttpResponse):
                raise RecordFormatError(f"unexpected {type(rec).__name__} in http file", str(p))
            http.append(rec)
    http.sort(key=lambda r: r.ts)  # stable: equal timestamps keep file order

    connections = [_load_connection(p) for _, p in sorted(files["ws"])]
    return Session(exchange, config, instruments, http, connections)


class Event(NamedTuple):
    """One step of a replay: ``source`` is ``"http"`` or ``"ws"``; ``conn`` indexes
    ``Session.connections`` for ``"ws"`` events and is ``None`` for ``"http"``."""

    ts: float
    source: str
    conn: int | None
    record: Frame | HttpResponse


def session_events(session: Session) -> Iterator[Event]:
    """Merge received frames and REST responses into one chronological stream.

    Each source keeps its recorded order; on equal timestamps REST responses
    come first, then connections in index order, so a snapshot is served
    before the frames recorded at the same instant.
    """

    def stream(records: list, source: str, conn: int | None) -> Iterator[Event]:
        return (Event(r.ts, source, conn, r) for r in records)

    streams = [stream(session.http, "http", None)]
    streams += [stream(c.frames, "ws", i) for i, c in enumerate(session.connections)]
    return heapq.merge(*streams, key=lambda e: (e.ts, -1 if e.conn is None else e.conn))
