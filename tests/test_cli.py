"""The command line, end to end, as a user runs it."""

import signal
import subprocess
import sys
import time

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
    assert any("tsc_clock" in line for line in res["platform"])  # measured as shipped
    ctl = res["latency_cached_books_ns"]["500000"]
    assert 0 < ctl["p50"] <= ctl["p99"] and ctl["messages"] > 0
    floor = res["handoff_floor_ns"]
    assert 0 < floor["p50"] <= floor["p99"] <= floor["p999"] and floor["handoffs"] > 0
    assert set(res["baselines_mups"]) == {"dict_bare", "dict_touch", "dict_best",
                                          "sortedcontainers", "order_book"}
    null = res["latency_null_path_ns"]["500000"]
    assert 0 < null["p50"] <= null["p99"] <= null["p999"] and null["messages"] > 0
    stalls = res["machine_stalls"]
    assert stalls["seconds"] > 0 and stalls["chunk_ns"] > 0 and stalls["time_lost_pct"] >= 0
    full = res["full_side_new_best_ns"]
    assert set(full) == {"200", "1000", "5000"}
    assert all(v["full"] > 0 and v["room"] > 0 for v in full.values())


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
[monitoring]
prometheus_port = 0
interval = 1.0
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
    mon = s["monitoring"]
    tiers = mon["tiers"].values()
    assert sum(t["books"] for t in tiers) == 10
    assert sum(t["workers"] for t in tiers) >= 1
    # the monitor's last report is taken just before the summary: it may miss a few
    seen = sum(t["latency_total"]["count"] for t in tiers)
    assert 0.9 * s["latency_ns"]["count"] <= seen <= s["latency_ns"]["count"]
    assert len(mon["cpu_percent"]) >= 1 and mon["warnings_total"] == 0


def test_run_serves_prometheus_metrics_and_monitor_lines(tmp_path):
    import urllib.request

    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    p = subprocess.Popen([sys.executable, "-m", "hftbook.cli", "run", "--config", str(cfg),
                          "--duration", "20", "--exchanges", "binance"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            lines.append(line)
            if "Prometheus metrics at " in line:
                url = line.split("Prometheus metrics at ")[1].strip()
            if url and line.startswith("monitor: "):
                break
        assert url and url.startswith("http://127.0.0.1:"), lines
        assert " books/" in lines[-1] and "cpu% " in lines[-1], lines[-1]
        deadline = time.monotonic() + 20
        while True:  # books go live within seconds of the start
            with urllib.request.urlopen(url, timeout=5) as r:
                text = r.read().decode()
            if 'hftbook_books{exchange="binance",state="live"} 6.0' in text or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert 'hftbook_books{exchange="binance",state="live"} 6.0' in text, text
        assert 'hftbook_receive_to_visible_ns{quantile="0.99",tier="cold",window="total"}' \
            in text
        assert 'hftbook_tier_books{tier="hot"}' in text
        assert "hftbook_worker_steals_total" in text
        assert "hftbook_cpu_percent" in text and "hftbook_context_switches_total" in text
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "stopped cleanly" in out


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
    ('[monitoring]\nsaturation = 2\n[exchanges.binance]\n', "monitoring.saturation = 2"),
    ('[monitoring]\nport = 1\n[exchanges.binance]\n', "unknown key monitoring.port"),
    ('[monitoring]\nprometheus_port = 70000\n[exchanges.binance]\n',
     "monitoring.prometheus_port = 70000"),
    ('[simulator]\nsource = "tape"\n[exchanges.binance]\n',
     "simulator.source = 'tape': must be 'synthetic', 'recorded' or 'both'"),
    ('[simulator]\nrecorded_speed = -1\n[exchanges.binance]\n', "simulator.recorded_speed"),
    ('[simulator]\nsource = "recorded"\nrecordings = "/nonexistent"\n[exchanges.binance]\n',
     "simulator.source = 'recorded': binance:"),
    ('[simulator]\nsource = "recorded"\n[exchanges.binance]\nsymbols = ["BTCUSDT"]\n',
     "no recorded book for BTCUSDT"),
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


FAULT_CONFIG = """
[simulator]
symbols_per_exchange = 4
rate = 40.0
[exchanges.binance]
symbols = ["*"]
[exchanges.okx]
symbols = ["*"]
[exchanges.kraken]
symbols = ["*"]
"""


def test_run_with_injected_faults_ends_equal_to_the_simulators_truth(tmp_path):
    """End to end: faults injected into the embedded simulator are detected and counted
    one for one, and every book ends equal to the simulator's own book."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAULT_CONFIG)
    r = _hftbook("run", "--config", str(cfg), "--duration", "10", "--json", "--verify",
                 "--fault", "4:gap:binance:BTCUSDT", "--fault", "5:checksum:okx:ETH-USDT",
                 "--fault", "5.5:checksum:kraken:SOL/USD", "--fault", "6:disconnect:binance",
                 "--fault", "6.5:garbage:okx")
    assert r.returncode == 0, r.stderr
    s = orjson.loads(r.stdout)
    ex = s["exchanges"]
    assert ex["binance"]["gaps"] == 1 and ex["okx"]["gaps"] == 0
    assert ex["okx"]["checksum_failures"] == 1 and ex["kraken"]["checksum_failures"] == 1
    assert ex["okx"]["malformed"] == 1
    assert ex["binance"]["connects"] >= 2
    faults = s["simulator_faults"]
    assert faults["binance"]["dropped"] == 1 and faults["binance"]["disconnects"] == 1
    assert faults["okx"]["corrupted"] == 1 and faults["kraken"]["corrupted"] == 1
    assert s["totals"]["books_live"] == 12
    for name, t in s["truth_check"].items():
        assert t["equal_to_truth"] == t["books"] == 4, name


def test_simulate_serves_a_feed_in_another_process(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAULT_CONFIG)
    urls = tmp_path / "sim.json"
    sim = subprocess.Popen([sys.executable, "-m", "hftbook.cli", "simulate", "--config",
                            str(cfg), "--duration", "40", "--urls-file", str(urls)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not urls.exists():
            assert sim.poll() is None, sim.stderr.read()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.1)
        described = orjson.loads(urls.read_bytes())
        assert set(described) == {"binance", "okx", "kraken"}
        assert all(d["ws_url"].startswith("ws://127.0.0.1:") for d in described.values())
        r = _hftbook("run", "--config", str(cfg), "--duration", "3", "--json",
                     "--simulator", str(urls))
        assert r.returncode == 0, r.stderr
        s = orjson.loads(r.stdout)
        assert s["totals"]["books"] == 12 and s["totals"]["books_live"] == 12
        assert "simulator_faults" not in s  # not our simulator to report on
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(20)
    assert sim.returncode == 0
    assert not urls.exists()  # removed on a clean stop


def test_bad_fault_specs_are_clear_errors(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAULT_CONFIG)
    for spec, msg in (("x:gap:binance:BTCUSDT", "not a time"), ("1:melt:binance", "kind"),
                      ("1:gap:binance", "needs a symbol"), ("1:gap:nasdaq:X", "no simulated"),
                      ("1:gap:binance:NOPE", "unknown symbol")):
        r = _hftbook("run", "--config", str(cfg), "--duration", "2", "--fault", spec)
        assert r.returncode == 2 and msg in r.stderr, (spec, r.stderr)


def test_record_then_replay_reproduces_the_books(tmp_path):
    """hftbook record writes every frame and REST answer; hftbook replay of those files
    ends with the same books, checksums verified, every book live."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(FAULT_CONFIG)
    out = tmp_path / "rec"
    r = _hftbook("record", "--config", str(cfg), "--out", str(out), "--duration", "4",
                 "--json")
    assert r.returncode == 0, r.stderr
    recorded = orjson.loads(r.stdout)["totals"]
    assert recorded["books_live"] == 12
    files = sorted(str(p) for p in out.glob("*.hfr"))
    assert [p.rsplit("/", 1)[1] for p in files] == ["binance.hfr", "kraken.hfr", "okx.hfr"]
    r = _hftbook("replay", *files, "--verify", "--json")
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)
    assert res["ok"] and all(x["books_live"] == x["books"] == 4 for x in res["recordings"])
    by = {x["recording"]: x for x in res["recordings"]}
    assert by["kraken.hfr"]["checksums_verified"] > 0
    assert by["okx.hfr"]["checksum_mismatches"] == 0
    assert sum(x["frames"] for x in res["recordings"]) > 100


def test_replay_reads_tardis_csv_with_pacing(tmp_path):
    csv = tmp_path / "book.csv"
    rows = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount",
            "binance,BTCUSDT,1000,1000,true,bid,100.5,1",
            "binance,BTCUSDT,1000,1000,true,ask,101,2",
            "binance,BTCUSDT,2000,101000,false,bid,100.5,0",
            "binance,BTCUSDT,2000,101000,false,bid,100.25,3",
            "binance,BTCUSDT,3000,201000,false,ask,oops,1"]
    csv.write_text("\n".join(rows) + "\n")
    dump = tmp_path / "books.json"
    t0 = time.monotonic()
    r = _hftbook("replay", str(csv), "--speed", "2", "--json", "--dump-books", str(dump))
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)["recordings"][0]
    assert res["books_live"] == 1 and res["malformed"] == 1
    book = orjson.loads(dump.read_bytes())[str(csv)]["binance:BTCUSDT"]
    assert book["bids"] == [["100.25", "3"]] and book["asks"] == [["101", "2"]]
    assert time.monotonic() - t0 >= 0.1  # 0.2 s of recorded time at speed 2


def test_replay_speed_paces_recorded_sessions():
    """The BINANCE recording spans ~30 s; at --speed 100 replay takes >= 0.25 s."""
    from tests.connectors.reference import need_recordings

    rec = need_recordings()
    t0 = time.monotonic()
    r = _hftbook("replay", str(rec / "BINANCE.0"), "--speed", "100", "--json")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 0.25
    assert orjson.loads(r.stdout)["ok"]


RECORDED_CONFIG = """
[simulator]
symbols_per_exchange = 3
source = "both"
recorded_speed = 8.0
[exchanges.binance]
symbols = ["*"]
[exchanges.kraken]
symbols = ["*"]
[exchanges.gemini]
symbols = ["*"]
"""


def test_run_with_recorded_sessions_looped_beside_the_synthetic_flow(tmp_path):
    """source = "both": binance and kraken each get their recording looped (in its
    dialect) beside the synthetic venue; gemini has no looped recording and stays
    synthetic.  A disconnect of the recorded Binance venue resyncs by REST; every book
    ends equal to its venue's truth, with no gap and no checksum failure."""
    from tests.connectors.reference import need_recordings

    need_recordings()
    cfg = tmp_path / "c.toml"
    cfg.write_text(RECORDED_CONFIG)
    r = _hftbook("run", "--config", str(cfg), "--duration", "9", "--json", "--verify",
                 "--fault", "4:disconnect:binance@recorded")
    assert r.returncode == 0, r.stderr
    s = orjson.loads(r.stdout)
    ex = s["exchanges"]
    assert ex["binance"]["books"] == 3 + 4 and ex["kraken"]["books"] == 3 + 5
    assert ex["gemini"]["books"] == 3
    assert s["totals"]["books_live"] == s["totals"]["books"]
    assert s["totals"]["gaps"] == 0 and s["totals"]["checksum_failures"] == 0
    assert ex["kraken"]["checksums_verified"] > 100
    assert s["simulator_faults"]["binance@recorded"]["disconnects"] == 1
    assert ex["binance"]["connects"] >= 3     # synthetic + recorded + the reconnect
    assert set(s["truth_check"]) == {"binance", "binance@recorded", "kraken",
                                     "kraken@recorded", "gemini"}
    for name, t in s["truth_check"].items():
        assert t["equal_to_truth"] == t["books"], name
    r = _hftbook("run", "--config", str(cfg), "--duration", "1", "--source", "tape")
    assert r.returncode == 2 and "--source" in r.stderr
    r = _hftbook("run", "--config", str(cfg), "--duration", "1", "--fault",
                 "1:gap:kraken@recorded:XBT/CHF")
    assert r.returncode == 2 and "only disconnect, garbage and stall" in r.stderr, r.stderr


def test_simulate_serves_a_recorded_session_to_another_process(tmp_path):
    from tests.connectors.reference import need_recordings

    need_recordings()
    cfg = tmp_path / "c.toml"
    cfg.write_text("[exchanges.okx]\nsymbols = [\"*\"]\n")
    urls = tmp_path / "sim.json"
    sim = subprocess.Popen([sys.executable, "-m", "hftbook.cli", "simulate", "--config",
                            str(cfg), "--duration", "40", "--urls-file", str(urls),
                            "--source", "recorded", "--recorded-speed", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not urls.exists():
            assert sim.poll() is None, sim.stderr.read()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.1)
        assert orjson.loads(urls.read_bytes())["okx"]["recording"] == "OKX"
        r = _hftbook("run", "--config", str(cfg), "--duration", "4", "--json",
                     "--simulator", str(urls))
        assert r.returncode == 0, r.stderr
        s = orjson.loads(r.stdout)
        assert s["totals"]["books"] == 2 and s["totals"]["books_live"] == 2
        assert s["exchanges"]["okx"]["checksums_verified"] > 10
        assert s["exchanges"]["okx"]["checksum_failures"] == 0
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(20)
    assert sim.returncode == 0


def test_replay_progress_bars_only_when_forced_or_on_a_terminal(tmp_path):
    """Every format (recorded session, .hfr, tardis CSV) gets a tqdm bar on stderr with
    --progress; stdout stays one JSON document.  Without --progress and with stderr not a
    terminal (a pipe here) there is no bar."""
    from tests.connectors.reference import need_recordings
    from tests.connectors.test_recording import convert

    rec = need_recordings()
    hfr = tmp_path / "binance.hfr"
    convert(rec, "BINANCE", hfr)
    csv = tmp_path / "book.csv"
    csv.write_text("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
                   "binance,BTCUSDT,1000,1000,true,bid,100.5,1\n"
                   "binance,BTCUSDT,1000,1000,true,ask,101,2\n")
    files = (str(rec / "KRAKEN.ws.50.0"), str(hfr), str(csv))
    r = _hftbook("replay", *files, "--json", "--progress")
    assert r.returncode == 0, r.stderr
    assert len(orjson.loads(r.stdout)["recordings"]) == 3     # stdout: JSON only
    assert "KRAKEN:" in r.stderr and "frame" in r.stderr        # recorded session bar
    assert "binance.hfr:" in r.stderr and "record" in r.stderr  # .hfr bar
    assert "tardis replay" in r.stderr                          # CSV bar
    assert "100%" in r.stderr
    r = _hftbook("replay", *files, "--json")
    assert r.returncode == 0, r.stderr
    assert "%|" not in r.stderr and "KRAKEN:" not in r.stderr and r.stderr.strip() == ""
