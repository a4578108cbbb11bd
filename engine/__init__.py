"""hftbook engine: seqlocked struct-of-arrays books, Numba kernels, SPSC rings, writers.

Numba's on-disk cache (``cache=True``) is invalidated only when a kernel's own source
file changes, not when a constant it imported from another module does (a changed
header layout would then run with the old offsets baked in).  So the cache lives in a
directory keyed by a hash of the Numba version, every engine source (kernels and the
constants they bake in) and every other source that defines kernels (mentions ``njit``);
editing other files does not force a recompile.
"""

import hashlib
import os
from pathlib import Path

import numba


def _cache_dir() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha1(numba.__version__.encode())
    for pkg in ("engine", "connectors", "bench", "simulator"):
        for f in sorted((root / pkg).glob("*.py")):
            text = f.read_bytes()
            if pkg == "engine" or b"njit" in text:
                h.update(f.name.encode())
                h.update(text)
    base = os.environ.get("HFTBOOK_NUMBA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hftbook-numba")
    return os.path.join(base, h.hexdigest()[:16])


if not os.environ.get("NUMBA_CACHE_DIR"):  # an explicit user setting wins
    numba.config.CACHE_DIR = _cache_dir()
