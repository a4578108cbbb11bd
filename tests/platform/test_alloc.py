"""The steady-state hot path (Python pushes into a ring, a Writer thread applies)
allocates nothing: no Python objects kept, no Numba NRT allocations inside kernels."""

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def _probe(n_msgs: int) -> dict:
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    out = subprocess.run([sys.executable, "-m", "bench.alloc_probe", str(n_msgs)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout.strip().splitlines()[-1])


def test_steady_state_allocates_nothing():
    r = _probe(20_000)
    assert r["records_applied"] >= 20_000 * 8, "the writer must have applied the stream"
    # inside the kernels: nothing.  Each Python->kernel call boxes its 3 array arguments
    # (freed on return), exactly that and no more.
    assert r["nrt_allocs_per_python_call"] == 3.0
    assert r["nrt_allocs_writer_kernel"] == 0
    assert r["nrt_allocs_steady_state"] == r["nrt_frees_steady_state"]
    # Python: nothing kept per message (20k messages; a per-message object would show
    # as >= 20k * 16 bytes), no block grown in engine/ sources
    assert r["python_engine_blocks_grown"] == 0
    assert abs(r["python_net_bytes"]) < 1024
    assert r["python_peak_bytes"] < 4096
    # the probe can see allocations: a read that returns a new array allocates per call
    assert r["nrt_allocs_allocating_reads"] >= r["reads"]
    assert r["nrt_allocs_preallocated_reads"] < 10
