"""`hftbook bench engine` prints the platform report lines as text: their brackets
("[on ]", "THP mode [madvise]") must not be eaten as Rich markup."""

import io

from rich.console import Console

from bench import engine as be


def test_platform_lines_print_verbatim():
    lat = {"p50": 1, "p99": 2, "p999": 3, "max": 4, "achieved_ups": 5, "ring_full": 0,
           "writer_preempted": 0, "writer_parks": 0}
    res = {"apply_mups": {"1000": 1.0}, "apply_deep_mups": {}, "apply_wall_mups": {"1000": 1.0},
           "apply_5000_books": 500, "books": 5000, "baselines_mups": {},
           "apply_vs_baselines_at_1000": {}, "read_ns": {}, "latency_ns": {"500000": lat},
           "latency_cached_books_ns": {"books": 50, "500000": lat},
           "handoff_floor_ns": {"p50": 1, "p99": 2, "p999": 3, "handoffs": 4, "max": 5},
           "latency_null_path_ns": {"500000": {"p50": 1, "p99": 2, "p999": 3}},
           "machine_stalls": {"stalls_per_s": 12000, "over_2us_per_s": 9000,
                              "median_stall_ns": 2500, "time_lost_pct": 4.5},
           "platform": ["[on ] huge_pages: transparent (THP mode [madvise])  [asked: auto]"],
           "full_side_new_best_ns": {"1000": {"full": 2.0, "room": 1.0}},
           "torn_reads": 0, "torture": {"reads": 1, "states_seen": 1},
           "load_average": [1.0, 1.0, 1.0]}
    out = io.StringIO()
    be.print_table(res, Console(file=out, width=250))
    text = out.getvalue()
    assert "[on ] huge_pages: transparent (THP mode [madvise])  [asked: auto]" in text
    assert "12000/s (9000/s over 2 us), median 2.5 us, 4.50 % of the time" in text
