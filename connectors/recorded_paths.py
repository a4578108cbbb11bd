"""Where the recorded sessions live by default: ../shared/recorded beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path


def default_recordings() -> Path:
    env = os.environ.get("HFTBOOK_RECORDINGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "recorded" / "cryptofeed"
