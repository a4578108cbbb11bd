"""`hftbook bench platform` plumbing: the row format, the table, and the optional rows of
bench/kernel_techniques.py (the measurements themselves run under `hftbook bench`)."""

import io
import sys
import types

from rich.console import Console

from bench import platform as bp


def test_rows_have_the_shared_format_and_print():
    rows = [bp.row("huge pages", "apply", 4.8, 7.3, "M upd/s", "n"),
            bp.row("NUMA placement", "x", None, None, "", "single node"),
            bp.row("zero-allocation hot path", "allocs", None, 0, "allocs")]
    assert set(rows[0]) == {"technique", "metric", "off", "on", "unit", "note"}
    buf = io.StringIO()
    bp.print_table({"rows": rows, "cpus": 2, "thp": "madvise", "numa_nodes": 1,
                    "rt_throttle": "950000/1000000 us"}, Console(file=buf, width=200))
    out = buf.getvalue()
    assert "x1.52" in out and "single node" in out and "madvise" in out


def test_kernel_technique_rows_are_included_when_the_module_exists(monkeypatch):
    monkeypatch.setitem(sys.modules, "bench.kernel_techniques", None)
    assert bp.kernel_technique_rows(True) == []
    fake = types.ModuleType("bench.kernel_techniques")
    fake.measure = lambda quick: [bp.row("prefetch", "apply", 1.0, 1.1, "M upd/s", "")]
    monkeypatch.setitem(sys.modules, "bench.kernel_techniques", fake)
    import bench

    monkeypatch.setattr(bench, "kernel_techniques", fake, raising=False)
    assert bp.kernel_technique_rows(True)[0]["technique"] == "prefetch"
