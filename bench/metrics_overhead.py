"""What the metrics cost per payment (docs/metrics.md), in `make bench` (bench/bench.py runs it; `--metrics-only`
alone, `--metrics-rounds 0` skips it).

The capacity scenario's paced payments (bench/capacity.py: POST payments, then long-polls until the answer is final;
Poisson arrivals on the capacity part's terminals) at the webhooks part (b)'s load, in rounds of two modes, with
the cluster's processes (web tiers, Celery worker and beat) started afresh for every round:

- on: METRICS_ENABLED=true, as in production, on a metrics directory of the round's own (a node whose processes all
  started anew: empty files), while a Prometheus-like scraper in this process fetches /metrics with the bearer token
  every `scrape_seconds` (first at a random moment of the first interval) — the scrapes are part of the cost;
- off: METRICS_ENABLED=false: nothing recorded, nothing scraped.

Round pairs alternate which mode goes first (on off, off on, on off, …); both modes of a pair get the same arrivals.
After each restart, WARMUP_SECONDS of payments, not measured, take the fresh processes' first requests (imports,
pool connections). Measured per round, with the capacity scenario's accounting: server CPU per payment (app +
PostgreSQL + Redis + Celery, from the first payment to the last final answer), time to final; the terminals whose
last_seen_at moved (device health writes it at most once per device per DEVICE_SEEN_WRITE_SECONDS, in both modes);
then, outside the measurement, a check of the switch: in on, a scrape's facepay_payment_outcomes_total equals the
payments settled since the restart; in off, /metrics answers 404 and the metrics directory holds no file. The
result: on / off server CPU per payment, per round pair and their median (target ≤ 1.05).
"""

from __future__ import annotations

import random
import secrets
import statistics
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx

from bench import capacity
from bench.measure import SERVER_PARTS, percentile

MODES = ("on", "off")
MODE_LABELS = {"on": "on: METRICS_ENABLED=true, scraped", "off": "off: METRICS_ENABLED=false"}
WARMUP_SECONDS = 5  # of payments after each restart, before the measured round
WORKER_READY_SECONDS = 60  # a restarted Celery worker must answer a ping within this long
# What Prometheus asks for (OpenMetrics first).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
SETTINGS = ("METRICS_ENABLED", "METRICS_DIR", "METRICS_TOKEN")  # what this part sets in the cluster's environment


def mode_order(pair: int) -> tuple[str, str]:
    """The modes of round pair `pair` (from 0), in the order they run: each pair starts with the other mode."""
    return MODES if pair % 2 == 0 else MODES[::-1]


class Scraper:
    """Prometheus, in this process: GET /metrics with the bearer token every `interval` s on a fixed schedule (the
    first at a random moment of the first interval), from entering the block until leaving it."""

    def __init__(self, app_url: str, token: str, interval: float, rng: random.Random) -> None:
        self.app_url, self.token, self.interval = app_url, token, interval
        self.first = rng.uniform(0, interval)
        self.scrapes: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": PROMETHEUS_ACCEPT}
        with httpx.Client(base_url=self.app_url, headers=headers, timeout=10) as client:
            due = time.monotonic() + self.first
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                started = time.perf_counter()
                try:
                    response = client.get("/metrics")
                    status, size = str(response.status_code), len(response.content)
                except httpx.HTTPError as exc:
                    status, size = type(exc).__name__, 0
                self.scrapes.append({"status": status, "ms": (time.perf_counter() - started) * 1000, "bytes": size})
                due += self.interval

    def summary(self) -> dict[str, Any]:
        answered = [scrape for scrape in self.scrapes if scrape["status"] == "200"]
        return {
            "scrapes": len(self.scrapes),
            "failed": len(self.scrapes) - len(answered),
            "ms": [scrape["ms"] for scrape in answered],
            "bytes_max": max((scrape["bytes"] for scrape in answered), default=0),
        }


def wait_for_worker() -> None:
    """Until the restarted Celery worker answers a ping (its pool is up)."""
    from portal.celery import app

    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if app.control.ping(timeout=1):
            return
    raise RuntimeError(f"the Celery worker did not answer a ping within {WORKER_READY_SECONDS} s of its start")


def restart(cluster, mode: str, directory: Path, token: str) -> None:
    """The cluster's processes started again in `mode` on metrics directory `directory`."""
    cluster.extra_env.update(
        {"METRICS_ENABLED": "true" if mode == "on" else "false", "METRICS_DIR": str(directory), "METRICS_TOKEN": token}
    )
    cluster.restart_servers()
    wait_for_worker()


def last_seen(devices: list[dict[str, str]]) -> dict[str, Any]:
    from portal.models import Device

    return dict(
        Device.objects.filter(device_id__in=[device["device_id"] for device in devices]).values_list(
            "device_id", "last_seen_at"
        )
    )


def switch_check(app_url: str, mode: str, directory: Path, token: str, settled: int) -> dict[str, Any]:
    """After a round: what /metrics answers and which files the metrics directory holds. In on, the payments' outcomes
    counted must be the `settled` payments made since the restart; in off, a 404 and no file."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{app_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    files = len([path for path in directory.iterdir() if path.name != ".lock"]) if directory.exists() else 0
    check: dict[str, Any] = {"status": response.status_code, "files": files, "settled": settled}
    if mode == "off":
        check["ok"] = response.status_code == 404 and files == 0
        return check
    counted = sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "facepay_payment_outcomes_total"
    ) if response.status_code == 200 else float("nan")  # fmt: skip
    check["outcomes_counted"] = counted
    check["ok"] = response.status_code == 200 and files > 0 and counted == settled
    return check


def settled(records: list[dict[str, Any]]) -> int:
    return sum(1 for record in records if record["seconds"] is not None)


def server_cpu_ms(one: dict[str, Any]) -> float:
    """A round's server CPU milliseconds per payment (app + PostgreSQL + Redis + Celery)."""
    return sum(one["cpu_seconds"][part] for part in SERVER_PARTS) * 1000 / max(1, len(one["records"]))


def run(
    cluster, *, devices: list[dict[str, str]], rounds: int, rate: float, seconds: float, scrape_seconds: float,
    processes: int, poisson: bool, latency_ms: float,
) -> dict[str, Any]:  # fmt: skip
    """`rounds` pairs of on and off rounds; the cluster is left running with its environment as it found it."""
    from django.conf import settings

    saved = {key: cluster.extra_env[key] for key in SETTINGS if key in cluster.extra_env}
    token = secrets.token_urlsafe(24)
    scenario = capacity.Scenario(rate)
    measured: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for pair in range(rounds):
        for mode in mode_order(pair):
            directory = cluster.run_dir / "metrics" / f"{pair + 1}-{mode}"
            restart(cluster, mode, directory, token)
            common = {
                "devices": devices, "processes": processes, "poisson": poisson, "latency_ms": latency_ms,
                "console": None,
            }  # fmt: skip
            warm = capacity.run_scenario(cluster, scenario, seconds=WARMUP_SECONDS, seed=9500 + pair, **common)
            before = last_seen(devices)
            scraper = Scraper(cluster.app_url, token, scrape_seconds, random.Random(pair)) if mode == "on" else None
            with scraper or nullcontext():
                # The same arrivals in both modes of a pair.
                one = capacity.run_scenario(cluster, scenario, seconds=seconds, seed=9000 + pair, **common)
            after = last_seen(devices)
            one["last_seen_moved"] = sum(1 for device, at in after.items() if at != before.get(device))
            one["scrapes"] = scraper.summary() if scraper else None
            one["check"] = switch_check(
                cluster.app_url, mode, directory, token, settled(warm["records"]) + settled(one["records"])
            )
            measured[mode].append(one)
            brief = capacity.summarize(one["records"])
            print(f"  metrics round {pair + 1}/{rounds} {mode:<3}: {brief['payments']} payments, p50/p99 "
                  f"{brief['ordinary']['p50_ms']:.0f} / {brief['ordinary']['p99_ms']:.0f} ms, server CPU "
                  f"{server_cpu_ms(one):.1f} ms / payment, last_seen moved {one['last_seen_moved']}, scrapes "
                  f"{one['scrapes']['scrapes'] if one['scrapes'] else 0}, switch check "
                  f"{'ok' if one['check']['ok'] else one['check']}", flush=True)  # fmt: skip
    for key in SETTINGS:
        cluster.extra_env.pop(key, None)
    cluster.extra_env.update(saved)
    cluster.restart_servers()  # the parts after this one run on the processes as configured
    wait_for_worker()
    return summarize(
        measured,
        rounds=rounds, rate=rate, seconds=seconds, scrape_seconds=scrape_seconds, latency_ms=latency_ms,
        devices=len(devices), write_seconds=settings.DEVICE_SEEN_WRITE_SECONDS,
    )  # fmt: skip


def summarize(measured: dict[str, list[dict[str, Any]]], *, write_seconds: int, **parameters: Any) -> dict[str, Any]:
    """The modes' rounds combined (capacity.combine: latencies pooled, CPU per payment from the totals) and the on /
    off ratios: server CPU per payment of each round pair, their median, and of the totals."""
    summary: dict[str, Any] = {
        **parameters,
        "warmup_seconds": WARMUP_SECONDS,
        "device_seen_write_seconds": write_seconds,
        "order": [list(mode_order(pair)) for pair in range(parameters["rounds"])],
    }
    for mode, rounds in measured.items():
        stats = capacity.combine(rounds)
        scrapes = [one["scrapes"] for one in rounds if one["scrapes"]]
        scrape_ms = [ms for one in scrapes for ms in one["ms"]]
        moved = [one["last_seen_moved"] for one in rounds]
        summary[mode] = {
            **capacity.headline_figures(stats),
            "rounds_server_cpu_ms": [server_cpu_ms(one) for one in rounds],
            "last_seen_moved": moved,
            "last_seen_moved_per_payment": sum(moved) / max(1, stats["payments"]),
            "scrapes": sum(one["scrapes"] for one in scrapes),
            "scrapes_failed": sum(one["failed"] for one in scrapes),
            "scrape_p50_ms": percentile(scrape_ms, 50),
            "scrape_bytes_max": max((one["bytes_max"] for one in scrapes), default=0),
            "checks": [one["check"] for one in rounds],
            "checks_ok": all(one["check"]["ok"] for one in rounds),
        }
    on, off = summary["on"], summary["off"]
    summary["rounds_cpu_ratio"] = [
        a / b for a, b in zip(on["rounds_server_cpu_ms"], off["rounds_server_cpu_ms"], strict=True)
    ]
    summary["cpu_ratio"] = statistics.median(summary["rounds_cpu_ratio"])
    summary["pooled_cpu_ratio"] = on["server_cpu_ms_per_payment"] / off["server_cpu_ms_per_payment"]
    summary["p50_ratio"] = on["p50_ms"] / off["p50_ms"]
    summary["p99_ratio"] = on["p99_ms"] / off["p99_ms"]
    return summary


# --- report ------------------------------------------------------------------------------------------------------


def _check(check: dict[str, Any]) -> str:
    if "outcomes_counted" in check:
        text = f"HTTP {check['status']}, {check['files']} files, {check['outcomes_counted']:.0f} / {check['settled']}"
    else:
        text = f"HTTP {check['status']}, {check['files']} files"
    return text if check["ok"] else f"**{text}: wrong**"


def markdown(metrics: dict[str, Any]) -> list[str]:
    lines = [
        "## Metrics: what recording and scraping them costs per payment",
        "",
        f"The capacity scenario (paced terminals, the real payment sequence; time to final = POST sent → final answer "
        f"read) at {metrics['rate']:g} payments/s offered, {metrics['seconds']:g} s of arrivals per round, upstream "
        f"latency {metrics['latency_ms']:g} ms, {metrics['devices']} terminals. {metrics['rounds']} round pairs of "
        "*on* (METRICS_ENABLED=true, as in production, a fresh metrics directory, and a Prometheus-like scraper "
        f"fetching /metrics with the bearer token every {metrics['scrape_seconds']:g} s, OpenMetrics) and *off* "
        "(METRICS_ENABLED=false), each pair starting with the other mode ("
        + ", ".join(" ".join(order) for order in metrics["order"])
        + "), both with the same arrivals; the cluster's processes are started afresh before every round and warmed "
        f"by {metrics['warmup_seconds']:g} s of payments not measured. Server CPU: app + PostgreSQL + Redis + Celery "
        "per payment, first payment to last final answer. Device health writes last_seen_at in both modes, at most "
        f"once per terminal per {metrics['device_seen_write_seconds']} s: *last_seen writes* are the terminals "
        "whose last_seen_at moved during the round (each wrote once; in a round longer than that, up to once per "
        f"{metrics['device_seen_write_seconds']} s). Switch check, after each round: in on, /metrics answers and its "
        "payment outcomes equal the payments settled since the restart (counted / settled); in off, /metrics is "
        "404 and the metrics directory holds no file. Target: on / off server CPU per payment ≤ 1.05.",
        "",
        "| mode | payments | p50 ms | p99 ms | p99 per round ms | not final | server CPU ms / payment (app, "
        "postgresql, redis, celery) | per round | last_seen writes per round (per payment) | scrapes (failed), "
        "p50 ms, max KB | switch check per round |",
        "|---|---:|---:|---:|---|---:|---:|---|---|---|---|",
    ]
    for mode in MODES:
        stats = metrics[mode]
        cpu = stats["cpu_ms_per_payment"]
        scrapes = (
            f"{stats['scrapes']} ({stats['scrapes_failed']}), {stats['scrape_p50_ms']:.0f}, "
            f"{stats['scrape_bytes_max'] / 1024:.0f}"
            if stats["scrapes"]
            else "—"
        )
        lines.append(
            f"| {MODE_LABELS[mode]} | {stats['payments']} | {stats['p50_ms']:.0f} | {stats['p99_ms']:.0f} | "
            + " / ".join(f"{value:.0f}" for value in stats["rounds_p99_ms"])
            + f" | {stats['not_final']} | {stats['server_cpu_ms_per_payment']:.2f} ("
            + ", ".join(f"{cpu[part]:.2f}" for part in SERVER_PARTS)
            + ") | "
            + " / ".join(f"{value:.2f}" for value in stats["rounds_server_cpu_ms"])
            + " | "
            + " / ".join(str(n) for n in stats["last_seen_moved"])
            + f" ({stats['last_seen_moved_per_payment']:.2f}) | {scrapes} | "
            + "; ".join(_check(check) for check in stats["checks"])
            + " |"
        )
    lines += [
        "",
        f"**on / off server CPU per payment: {metrics['cpu_ratio']:.3f} ×** (median of the round pairs: "
        + " / ".join(f"{ratio:.3f}" for ratio in metrics["rounds_cpu_ratio"])
        + f"; all rounds' totals {metrics['pooled_cpu_ratio']:.3f} ×; target ≤ 1.05). Time to final on / off: p50 "
        f"{metrics['p50_ratio']:.2f} ×, p99 {metrics['p99_ratio']:.2f} ×.",
        "",
    ]
    return lines


def headline(metrics: dict[str, Any]) -> list[str]:
    if not metrics:
        return []
    on, off = metrics["on"], metrics["off"]
    checks = "" if on["checks_ok"] and off["checks_ok"] else "; **switch check failed**"
    return [
        f"- Metrics: server CPU per payment on / off {metrics['cpu_ratio']:.3f} × (target ≤ 1.05; round pairs "
        + " / ".join(f"{ratio:.3f}" for ratio in metrics["rounds_cpu_ratio"])
        + f"; {on['server_cpu_ms_per_payment']:.1f} vs {off['server_cpu_ms_per_payment']:.1f} ms), p99 "
        f"{on['p99_ms']:.0f} vs {off['p99_ms']:.0f} ms; last_seen writes {on['last_seen_moved_per_payment']:.2f} / "
        f"{off['last_seen_moved_per_payment']:.2f} per payment{checks}."
    ]
