"""The metrics' cost part of the benchmark (bench/metrics_overhead.py) without a cluster: the order of the modes, the
scraper, how rounds become the on / off ratios, the report, and its options."""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import bench, metrics_overhead


def test_each_round_pair_starts_with_the_other_mode():
    assert [metrics_overhead.mode_order(pair) for pair in range(3)] == [("on", "off"), ("off", "on"), ("on", "off")]


def test_the_scraper_asks_like_prometheus_on_a_schedule_until_the_block_ends():
    seen = []

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Authorization"], self.headers["Accept"]))
            body = b"# EOF\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        scraper = metrics_overhead.Scraper(f"http://127.0.0.1:{server.server_port}", "t0ken", 0.1, random.Random(1))
        assert 0 <= scraper.first < 0.1
        with scraper:
            time.sleep(0.55)
        count = len(seen)
        time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()

    assert 4 <= count <= 6 and len(seen) == count  # nothing after the block
    assert set(seen) == {("/metrics", "Bearer t0ken", metrics_overhead.PROMETHEUS_ACCEPT)}
    summary = scraper.summary()
    assert (summary["scrapes"], summary["failed"], summary["bytes_max"]) == (count, 0, 6)


def one_round(payments: int, server_cpu_seconds: float, p_ms: float, moved: int, mode: str) -> dict:
    """A round as capacity.run_scenario returns it, with this part's additions."""
    records = [
        {"seconds": p_ms / 1000, "status": "SUCCESS", "password": False, "errors": [], "requests": 1,
         "shared_terminal": False, "number": f"CAP{n}"}
        for n in range(payments)
    ]  # fmt: skip
    share = server_cpu_seconds / 4
    check = (
        {"status": 200, "files": 12, "settled": payments + 10, "outcomes_counted": payments + 10.0, "ok": True}
        if mode == "on"
        else {"status": 404, "files": 0, "settled": payments + 10, "ok": True}
    )
    return {
        "records": records, "seconds": 30, "wall_seconds": 31.0, "dashboard_ms": [], "dashboard_errors": {},
        "pg_connections_max": 20, "pg_web_connections_max": 18, "pg_web_busy_max": 2, "web_rss_max_mib": 300.0,
        "cpu_seconds": {"app": share, "postgresql": share, "redis": share, "celery": share, "sandbox": 5.0},
        "load_generator_cpu_seconds": 4.0, "last_seen_moved": moved,
        "scrapes": {"scrapes": 2, "failed": 0, "ms": [20.0, 30.0], "bytes_max": 9000} if mode == "on" else None,
        "check": check,
    }  # fmt: skip


def test_rounds_become_the_on_off_ratios_and_the_report():
    measured = {
        "on": [one_round(750, 7.65, 150, 300, "on"), one_round(750, 7.8, 152, 290, "on")],
        "off": [one_round(750, 7.5, 149, 300, "off"), one_round(750, 7.5, 150, 295, "off")],
    }
    summary = metrics_overhead.summarize(
        measured, write_seconds=60, rounds=2, rate=25, seconds=30, scrape_seconds=15, latency_ms=100, devices=300
    )

    assert summary["rounds_cpu_ratio"] == pytest.approx([1.02, 1.04])
    assert summary["cpu_ratio"] == pytest.approx(1.03)  # the median of the pairs
    assert summary["pooled_cpu_ratio"] == pytest.approx(15.45 / 15.0)
    assert summary["on"]["server_cpu_ms_per_payment"] == pytest.approx(10.3)
    assert summary["on"]["last_seen_moved"] == [300, 290]
    assert summary["on"]["scrapes"] == 4 and summary["off"]["scrapes"] == 0
    assert summary["order"] == [["on", "off"], ["off", "on"]]

    text = "\n".join(metrics_overhead.markdown(summary) + metrics_overhead.headline(summary))

    assert "**on / off server CPU per payment: 1.030 ×** (median of the round pairs: 1.020 / 1.040" in text
    assert "| on: METRICS_ENABLED=true, scraped | 1500 | 150 | 152 |" in text
    assert "HTTP 200, 12 files, 760 / 760" in text and "HTTP 404, 0 files" in text
    assert "- Metrics: server CPU per payment on / off 1.030 × (target ≤ 1.05" in text
    assert "switch check failed" not in text

    measured["off"][1]["check"] = {"status": 200, "files": 3, "settled": 760, "ok": False}
    failed = metrics_overhead.summarize(
        measured, write_seconds=60, rounds=2, rate=25, seconds=30, scrape_seconds=15, latency_ms=100, devices=300
    )
    text = "\n".join(metrics_overhead.markdown(failed) + metrics_overhead.headline(failed))
    assert "**HTTP 200, 3 files: wrong**" in text and "**switch check failed**" in text


def test_the_part_has_its_options_and_its_own_results_name():
    args = bench.parse_args(["--metrics-only", "--metrics-rounds", "1"])
    assert (args.name, args.metrics_rounds, args.metrics_payment_rate, args.metrics_scrape_seconds) == (
        "metrics", 1, 25, 15
    )  # fmt: skip
    assert bench.parse_args([]).name == "bench"
    with pytest.raises(SystemExit):
        bench.parse_args(["--metrics-only", "--capacity-only"])
