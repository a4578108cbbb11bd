"""The command line, end to end, as a user runs it."""

import subprocess
import sys

import orjson
import pytest


def _hftbook(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "hftbook.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_demo_json_summary_books_live_and_clean_exit():
    r = _hftbook("demo", "--duration", "3", "--books", "200", "--rate", "50000", "--json")
    assert r.returncode == 0, r.stderr
    s = orjson.loads(r.stdout)
    assert s["books"] == 200 and s["books_live"] == 200 and s["books_stale"] == 0
    assert s["level_updates"] > 40_000 and s["dropped_messages"] == 0
    assert s["latency_ns"]["count"] > 0


def test_bench_engine_json_has_the_documented_keys():
    r = _hftbook("bench", "engine", "--json", "--quick", timeout=600)
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)
    assert set(res["apply_mups"]) == {"20", "200", "1000"}
    assert all(v > 0 for v in res["apply_mups"].values())
    assert res["dict_baseline_mups"] > 0
    assert {"numba_top_of_book", "numba_top20_copy", "python_best_bid", "python_top20"} <= set(
        res["read_ns"])
    assert set(res["latency_ns"]) == {"100000", "500000", "1000000"}
    for v in res["latency_ns"].values():
        assert 0 < v["p50"] <= v["p99"] <= v["p999"] and v["messages"] > 0
    assert res["torn_reads"] == 0


def test_bad_arguments_are_clear_errors():
    r = _hftbook("demo", "--books", "2", "--duration", "1")
    assert r.returncode != 0 and "--books must be >= 6" in r.stderr
    r = _hftbook("bench", "nothing")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_replay_verify_json_and_dump(tmp_path):
    from tests.connectors.reference import need_recordings

    rec = need_recordings()
    out = tmp_path / "books.json"
    r = _hftbook("replay", str(rec / "BINANCE.ws.1.0"), str(rec / "BINANCE_FUTURES.0"),
                 "--verify", "--json", "--dump-books", str(out))
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)
    assert res["ok"] and res["failed"] == []
    names = [x["recording"] for x in res["recordings"]]
    assert names == ["BINANCE", "BINANCE_FUTURES"]
    for x in res["recordings"]:
        assert x["books_live"] == x["books"] == 4 and x["gaps"] == 0
        assert x["level_updates"] > 1000 and x["levels_per_s"] > 0
    books = orjson.loads(out.read_bytes())
    assert set(books) == {"binance", "binance_futures"}
    assert books["binance"]["NKNUSDT"]["status"] == "live"
    assert len(books["binance"]["NKNUSDT"]["bids"]) > 100


def test_replay_rejects_unknown_files(tmp_path):
    bogus = tmp_path / "NOTANEXCHANGE.ws.1.0"
    bogus.write_text("x")
    r = _hftbook("replay", str(bogus))
    assert r.returncode == 2 and "not a recording of a supported exchange" in r.stderr
    r = _hftbook("replay", str(tmp_path / "missing.0"))
    assert r.returncode == 2 and "no such recording" in r.stderr


def test_replay_exit_status_is_nonzero_when_a_book_ends_wrong(tmp_path):
    """A recording whose REST snapshot is damaged: the book cannot sync, exit 1."""
    from tests.connectors.reference import need_recordings

    rec = need_recordings()
    for f in rec.glob("BINANCE.*"):
        text = f.read_text()
        if ".http." in f.name:
            text = text.replace('"lastUpdateId":', '"lastUpdateIdX":', 1)
        (tmp_path / f.name).write_text(text)
    r = _hftbook("replay", str(tmp_path / "BINANCE.ws.1.0"), "--json")
    assert r.returncode == 1
    res = orjson.loads(r.stdout)
    assert res["failed"] == ["BINANCE"]
    assert res["recordings"][0]["books_live"] == 3 and res["recordings"][0]["malformed"] >= 1


CONFIG = """
mode = "simulated"
[simulator]
symbols_per_exchange = 6
rate = 40.0
[exchanges.binance]
symbols = ["*"]
[exchanges.binance_futures]
symbols = ["*"]
max_symbols = 4
"""


def test_run_simulated_feed_json_summary(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    r = _hftbook("run", "--config", str(cfg), "--duration", "4", "--json")
    assert r.returncode == 0, r.stderr
    s = orjson.loads(r.stdout)
    assert s["mode"] == "simulated"
    assert s["exchanges"]["binance"]["books"] == 6
    assert s["exchanges"]["binance_futures"]["books"] == 4
    t = s["totals"]
    assert t["books_live"] == 10 and t["books_stale"] == 0
    assert t["messages"] > 50 and t["level_updates"] > 100
    assert t["gaps"] == 0 and t["resyncs"] == 0 and t["malformed"] == 0
    assert s["latency_ns"]["count"] > 0


def test_run_exchanges_flag_selects_a_subset(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    r = _hftbook("run", "--config", str(cfg), "--duration", "2", "--json",
                 "--exchanges", "binance_futures")
    assert r.returncode == 0, r.stderr
    assert list(orjson.loads(r.stdout)["exchanges"]) == ["binance_futures"]
    r = _hftbook("run", "--config", str(cfg), "--exchanges", "kraken,nope")
    assert r.returncode == 2 and "not in the config" in r.stderr


@pytest.mark.parametrize("text,message", [
    ('mode = "paper"\n[exchanges.binance]\n', "mode = 'paper': must be 'simulated' or 'live'"),
    ('[book]\ndepth = 0\n[exchanges.binance]\n', "book.depth = 0: must be an integer in"),
    ('[book]\ndeep = 5\n[exchanges.binance]\n', "unknown key book.deep"),
    ('[engine]\nring_capacity = 1000\n[exchanges.binance]\n', "power of two"),
    ('[exchanges.nasdaq]\n', "unknown exchange exchanges.nasdaq"),
    ('[exchanges.binance]\nsymbol = ["X"]\n', "unknown key exchanges.binance.symbol"),
    ('[exchanges.binance]\nsymbols = "BTCUSDT"\n', "exchanges.binance.symbols"),
    ('colour = "red"\n[exchanges.binance]\n', "unknown key colour"),
    ('[logging]\nlevel = "loud"\n[exchanges.binance]\n', "logging.level"),
    ('duration = -1\n[exchanges.binance]\n', "duration = -1"),
    ('mode = "simulated"\n', "[exchanges] must list at least one exchange"),
    ('this is not toml', "not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, text, message):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = _hftbook("run", "--config", str(cfg), "--duration", "1")
    assert r.returncode == 2
    assert message in r.stderr, r.stderr


def test_shipped_config_is_valid():
    from connectors import PROTOCOLS
    from hftbook.config import DEFAULT_PATH, load

    cfg = load(DEFAULT_PATH, set(PROTOCOLS))
    assert cfg["mode"] == "simulated" and cfg["exchanges"]
