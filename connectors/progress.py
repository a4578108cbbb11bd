"""Progress bars for long replays: tqdm on stderr, shown only when asked or when stderr
is a terminal, so piped output and ``--json`` on stdout stay clean."""

from __future__ import annotations

import sys

UPDATE_EVERY = 512       # items between bar updates: keeps the bar off the hot path


def wanted(forced: bool, as_json: bool = False) -> bool:
    """``--progress`` forces a bar (on stderr); otherwise only an interactive stderr
    gets one, and never a run whose stdout is a JSON document."""
    return forced or (not as_json and sys.stderr.isatty())


class Bar:
    """A tqdm bar over ``total`` items, or nothing.  ``tick()`` per item is a counter
    increment; the bar is redrawn every ``UPDATE_EVERY`` items."""

    __slots__ = ("bar", "pending")

    def __init__(self, enabled: bool, total: int, desc: str, unit: str = "frame") -> None:
        self.pending = 0
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True,
                            file=sys.stderr, dynamic_ncols=True, mininterval=0.2)

    def tick(self) -> None:
        if self.bar is not None:
            self.pending += 1
            if self.pending >= UPDATE_EVERY:
                self.bar.update(self.pending)
                self.pending = 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.pending)
            self.pending = 0
            self.bar.close()
