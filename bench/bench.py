"""`make bench`: throughput and latency of the terminal API on gunicorn + PostgreSQL + Redis, against a baseline,
with the upstream played by the sandbox in its own gunicorn (added latency configurable); PostgreSQL's own insert
rate and commits per payment from the same run; protocol CPU cost against wechatpy / wechatpayv3; a pyinstrument
profile of the slowest path. Writes bench/results/bench.json and bench/results/bench.md.

    python -m bench.bench [--terminals 100] [--rounds 3] [--seconds 15] [--warmup 4] [--latency-ms 0]

The scenarios run in interleaved rounds and the ratios to the baseline are taken within each round: this kind of
machine drifts by tens of per cent within minutes.

The load generator runs on the same machine (its own processes): on 2 cores it takes CPU from the server, so the
absolute numbers are lower bounds; the ratios to the baseline are measured under the same handicap.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import ssl
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import ROOT, Cluster, django_setup
from bench.faults import machine

SCENARIOS = ("a_baseline", "b_payment_success", "c_authinfo_cache_hit", "d_payment_get")
LABELS = {
    "a_baseline": "(a) baseline: authenticate + 1 INSERT",
    "b_payment_success": "(b) POST payments → SUCCESS",
    "c_authinfo_cache_hit": "(c) POST face/authinfo (cache hit)",
    "d_payment_get": "(d) GET payments/{no}",
}
PACED = "b_paced_"  # + the interval: "b_paced_5s", each terminal starts one payment every 5 s


def paced_scenario(interval: float) -> str:
    return f"{PACED}{interval:g}s"


def paced_interval(scenario: str) -> float:
    """The interval of a paced scenario; 0 for a closed-loop one."""
    return float(scenario[len(PACED) : -1]) if scenario.startswith(PACED) else 0.0


def label(scenario: str) -> str:
    if scenario.startswith(PACED):
        return f"(b′) POST payments, one every {paced_interval(scenario):g} s per terminal"
    return LABELS[scenario]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[index]


def _worker(args: tuple) -> list[tuple[float, float, int, str]]:
    """One load process: threads, one per terminal; returns (start, seconds, status, out_trade_no) per request."""
    scenario, app_url, terminals, stop_at, interval = args
    import random

    from bench.badinput import signed_request
    from payments.simulator import random_payment_code

    records: list[tuple[float, float, int, str]] = []
    lock = threading.Lock()
    # One TLS context for every terminal's client: httpx builds a new one (loading the CA bundle, ~50 ms of CPU) for
    # each client otherwise, and 100 of those at a scenario's start ate the cores the server was being measured on.
    tls = ssl.create_default_context()

    def terminal(spec: dict[str, str]) -> None:
        client = httpx.Client(base_url=app_url, timeout=60, verify=tls)
        local = []
        next_at = time.time() + random.uniform(0, interval)  # paced: one request per interval, random phase
        while time.time() < stop_at:
            if interval:
                if next_at >= stop_at:
                    break
                time.sleep(max(0.0, next_at - time.time()))
                next_at += interval
            if scenario == "a_baseline":
                method, path, body = "POST", "/bench/baseline", b"{}"
            elif scenario.startswith("b_"):
                payload = {"total_fee": 1000, "body": "bench", "auth_code": random_payment_code(), "method": "CODE"}
                method, path, body = "POST", "/api/terminal/v1/payments", json.dumps(payload).encode()
            elif scenario == "c_authinfo_cache_hit":
                method, path = "POST", "/api/terminal/v1/face/authinfo"
                body = json.dumps({"rawdata": spec["rawdata"]}).encode()
            else:
                method, path, body = "GET", f"/api/terminal/v1/payments/{spec['out_trade_no']}", b""
            request = signed_request(
                client, device_id=spec["device_id"], secret=spec["secret"], method=method, path=path, query=None,
                body=body,
            )  # fmt: skip
            started = time.time()
            t0 = time.perf_counter()
            try:
                response = client.send(request)
                status = response.status_code
                number = response.json().get("out_trade_no", "") if scenario.startswith("b_") else ""
            except (httpx.HTTPError, ValueError):
                status, number = 0, ""
            local.append((started, time.perf_counter() - t0, status, number))
        client.close()
        with lock:
            records.extend(local)

    threads = [threading.Thread(target=terminal, args=(spec,)) for spec in terminals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records


def drive(
    scenario: str, app_url: str, terminals: list[dict], seconds: float, warmup: float, processes: int,
    interval: float = 0.0,
):  # fmt: skip
    """Closed loop (each terminal sends its next request as soon as the last is answered), or paced with
    `interval`: each terminal starts one request every `interval` seconds."""
    start = time.time()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    chunks = [terminals[i::processes] for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map(_worker, [(scenario, app_url, chunk, stop_at, interval) for chunk in chunks])
    everything = [r for part in parts for r in part]
    records = [r for r in everything if measure_from <= r[0] and r[0] + r[1] <= stop_at]
    ok = [r for r in records if 200 <= r[2] < 300]
    latencies = [r[1] * 1000 for r in ok]
    return (
        {
            "requests": len(ok),
            "requests_total": len(everything),
            "errors": len(records) - len(ok),
            "error_statuses": sorted({r[2] for r in records if not 200 <= r[2] < 300}),
            "rps": len(ok) / seconds,
            **latency_summary(latencies),
        },
        [(r[3], r[0], r[1]) for r in ok if r[3]],
        latencies,
    )


# Where a payment's time goes, from the load generator's clock and the order's own events (same machine, same
# clock): the request sent → the order about to be inserted (the "created" event's timestamp); → the answer back
# (the "micropay" event), less the upstream call itself; the upstream call; → the response read by the terminal.
SEGMENTS = ("before the call", "around the call", "upstream call", "after the answer")
SEGMENT_COLUMNS = (*SEGMENTS, "added by our code")  # the segments, then the whole less the upstream call


def payment_segments(payments: list[tuple[str, float, float]]) -> dict[str, list[float]]:
    """`payments`: (out_trade_no, request start as a Unix time, seconds until answered). Milliseconds per segment,
    plus "added by our code": the whole less the upstream call."""
    from payments.models import PaymentEvent

    events = {
        (number, action): (at.timestamp(), latency)
        for number, action, at, latency in PaymentEvent.objects.filter(
            action__in=("created", "micropay"), payment__out_trade_no__in=[p[0] for p in payments]
        ).values_list("payment__out_trade_no", "action", "created_at", "latency_ms")
    }
    out: dict[str, list[float]] = {name: [] for name in SEGMENT_COLUMNS}
    for number, started, seconds in payments:
        created, answered = events.get((number, "created")), events.get((number, "micropay"))
        if created is None or answered is None:
            continue
        upstream = answered[1]
        for name, value in zip(
            SEGMENT_COLUMNS,
            (
                (created[0] - started) * 1000,
                (answered[0] - created[0]) * 1000 - upstream,
                upstream,
                (started + seconds - answered[0]) * 1000,
                seconds * 1000 - upstream,
            ),
            strict=True,
        ):
            out[name].append(value)
    return out


def latency_summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies) if latencies else float("nan"),
    }


def combine_rounds(
    rounds: list[dict[str, Any]], latencies: list[float], baseline_rps: list[float] | None
) -> dict[str, Any]:
    """One scenario over its rounds: throughput is the median round's; latency percentiles pool every round's
    requests; CPU per request is weighted by requests; the ratio to (a) is the median of the per-round ratios,
    each taken against the baseline measured minutes before it in the same round (the machine drifts). Without
    `baseline_rps` (a paced scenario, whose throughput is the offered load) there is no ratio."""
    total = sum(r["requests_total"] for r in rounds)
    cpu_parts = rounds[0]["cpu_ms_per_request"].keys()
    ratios = [r["rps"] / a for r, a in zip(rounds, baseline_rps, strict=True) if a] if baseline_rps else []
    return {
        "rounds_rps": [r["rps"] for r in rounds],
        "rps": statistics.median(r["rps"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "requests_total": total,
        "errors": sum(r["errors"] for r in rounds),
        "error_statuses": sorted({code for r in rounds for code in r["error_statuses"]}),
        **latency_summary(latencies),
        "commits": sum(r["commits"] for r in rounds),
        "cpu_ms_per_request": {
            part: sum(r["cpu_ms_per_request"][part] * r["requests_total"] for r in rounds) / max(1, total)
            for part in cpu_parts
        },
        "rounds_ratio_to_baseline": ratios,
        "ratio_to_baseline": statistics.median(ratios) if ratios else float("nan"),
    }


def _children_cpu() -> float:
    """CPU seconds of this process's finished children: the load generator's pool processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


SERVER_PARTS = ("app", "postgresql", "redis", "celery")
SERVER_CPU = "server (app + postgresql + redis + celery)"
CPU_PARTS = ("app", "sandbox", "postgresql", "redis", "celery", "load generator")


def cpu_per_request(before: dict[str, float], after: dict[str, float], load: float, stats: dict) -> dict[str, float]:
    """CPU milliseconds per answered request, by part, over the whole scenario (warm-up included: the CPU counters
    cannot be cut at the warm-up's end, so requests are counted over the same span)."""
    answered = max(1, stats["requests_total"])
    parts = {name: (after[name] - before[name]) * 1000 / answered for name in after}
    parts["load generator"] = load * 1000 / answered
    parts[SERVER_CPU] = sum(parts[name] for name in SERVER_PARTS)
    return parts


def pg_commits(cluster: Cluster) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def pgbench_insert_rate(cluster: Cluster, clients: int, seconds: int) -> dict[str, Any]:
    """PostgreSQL's own single-row INSERT rate (one commit each), measured with pgbench on the same server."""
    import shutil

    pgbench = shutil.which("pgbench") or str(cluster.pg_binaries / "pgbench")
    script = cluster.run_dir / "insert.sql"
    script.write_text("INSERT INTO bench_pgbench_row (device_id) VALUES (1);\n")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_pgbench_row "
            "(id bigserial PRIMARY KEY, device_id bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
    result = subprocess.run(
        [pgbench, "-h", "127.0.0.1", "-p", str(cluster.pg_port), "-U", "facepay", "-n", "-c", str(clients),
         "-j", "2", "-T", str(seconds), "-f", str(script), "postgres"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    tps = next(float(line.split("=")[1].split()[0]) for line in result.stdout.splitlines() if line.startswith("tps"))
    latency = next((line for line in result.stdout.splitlines() if line.startswith("latency average")), "")
    return {"clients": clients, "seconds": seconds, "inserts_per_second": tps, "latency": latency.strip()}


def prepare(cluster: Cluster, terminals: int) -> list[dict[str, str]]:
    import io
    import secrets

    from django.core.management import call_command

    from payments.terminal_client import TerminalClient
    from portal import services
    from portal.models import Store

    call_command("seed_demo", stdout=io.StringIO())
    store = Store.objects.get(store_id="SZ-NS-001")  # WeChat direct
    specs = []
    for index in range(terminals):
        device, secret = services.device_register(
            store=store, device_id=f"BENCH-{index:04d}", actor=None, actor_label="bench"
        )
        specs.append({"device_id": device.device_id, "secret": secret, "rawdata": secrets.token_urlsafe(192)})
    # Warm the caches (c) and make one payment per device to read in (d).
    from payments.simulator import random_payment_code

    for spec in specs:
        terminal = TerminalClient(cluster.app_url, device_id=spec["device_id"], secret=spec["secret"])
        assert terminal.post("face/authinfo", {"rawdata": spec["rawdata"]}).status_code == 200
        order = terminal.post(
            "payments", {"total_fee": 1000, "body": "bench", "auth_code": random_payment_code(), "method": "CODE"}
        ).json()
        assert order["status"] == "SUCCESS", order
        spec["out_trade_no"] = order["out_trade_no"]
        terminal.close()
    return specs


def profile_payments(cluster: Cluster, spec: dict[str, str], count: int, out: Path) -> str:
    """pyinstrument over `count` POST payments served in this process (upstream: the sandbox server)."""
    from pyinstrument import Profiler

    from payments.simulator import random_payment_code
    from payments.terminal_client import TerminalClient
    from portal.wsgi import application

    terminal = TerminalClient(
        "http://127.0.0.1", device_id=spec["device_id"], secret=spec["secret"],
        transport=httpx.WSGITransport(app=application),
    )  # fmt: skip

    def pay() -> None:
        payload = {"total_fee": 1000, "body": "b", "auth_code": random_payment_code(), "method": "CODE"}
        terminal.post("payments", payload)

    for _ in range(10):
        pay()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(count):
        pay()
    profiler.stop()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per scenario and round")
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="the scenarios run this many times, interleaved (a b c d b′ a b c d b′ …); medians are reported",
    )  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=0, help="added upstream latency (sandbox)")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--paced-intervals", type=lambda text: [float(v) for v in text.split(",")], default=[20.0, 5.0],
        help="(b′), one scenario per value: seconds between one terminal's payments (a busy checkout lane takes a "
        "payment every 20-60 s); comma-separated",
    )  # fmt: skip
    parser.add_argument("--app-workers", type=int, default=3)
    parser.add_argument("--app-threads", type=int, default=8)
    parser.add_argument("--protocol-rounds", type=int, default=10000)
    parser.add_argument("--profile-payments", type=int, default=300)
    parser.add_argument("--name", default="bench")
    args = parser.parse_args(argv)

    run_dir = ROOT / "var" / "bench" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    cluster = Cluster(
        run_dir,
        settings_module="bench.settings",
        extra_env={"TERMINAL_THROTTLE_RATE": "10000000/min", "LOG_LEVEL": "WARNING"},
        sandbox_env={"BENCH_SANDBOX_LATENCY_MS": str(args.latency_ms)},
        app_workers=args.app_workers,
        app_threads=args.app_threads,
        sandbox_workers=2,
        sandbox_threads=16,
        celery_workers=1,
        celery_concurrency=4,
    )
    print(
        f"bench: {args.terminals} terminals, {args.rounds} rounds of {args.seconds:.0f} s per scenario after "
        f"{args.warmup:.0f} s warm-up, "
        f"upstream latency {args.latency_ms:.0f} ms; run directory {run_dir.relative_to(ROOT)}",
        flush=True,
    )
    results: dict[str, Any] = {"args": vars(args), "machine": machine()}
    with cluster:
        cluster.start()
        django_setup(cluster)
        specs = prepare(cluster, args.terminals)
        run = (*SCENARIOS, *(paced_scenario(interval) for interval in args.paced_intervals))
        rounds: dict[str, list[dict[str, Any]]] = {scenario: [] for scenario in run}
        pooled: dict[str, list[float]] = {scenario: [] for scenario in run}
        segments: dict[str, dict[str, list[float]]] = {scenario: {} for scenario in run}
        for round_index in range(args.rounds):
            for scenario in run:
                before = pg_commits(cluster)
                cpu_before, load_before = cluster.cpu_seconds(), _children_cpu()
                stats, numbers, latencies = drive(
                    scenario, cluster.app_url, specs, args.seconds, args.warmup, args.load_processes,
                    paced_interval(scenario),
                )  # fmt: skip
                stats["commits"] = pg_commits(cluster) - before
                stats["cpu_ms_per_request"] = cpu_per_request(
                    cpu_before, cluster.cpu_seconds(), _children_cpu() - load_before, stats
                )
                if scenario.startswith("b_"):
                    for name, values in payment_segments(numbers).items():
                        segments[scenario].setdefault(name, []).extend(values)
                rounds[scenario].append(stats)
                pooled[scenario] += latencies
                print(f"  round {round_index + 1}/{args.rounds} {label(scenario):<50} {stats['rps']:8.1f} req/s  "
                      f"p50 {stats['p50_ms']:6.1f}  p95 {stats['p95_ms']:6.1f}  p99 {stats['p99_ms']:6.1f} ms  "
                      f"errors {stats['errors']}", flush=True)  # fmt: skip
        baseline_rps = [r["rps"] for r in rounds["a_baseline"]]
        scenarios: dict[str, Any] = {}
        for scenario in run:
            # (b′) is paced: its throughput is the offered load, not a capacity, so it has no ratio.
            paced = scenario.startswith(PACED)
            stats = combine_rounds(rounds[scenario], pooled[scenario], None if paced else baseline_rps)
            if scenario.startswith("b_"):
                stats["segments_ms"] = {
                    name: {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99)}
                    for name, values in segments[scenario].items()
                }
                stats["upstream_call_p50_ms"] = stats["segments_ms"]["upstream call"]["p50"]
                stats["added_by_our_code_p50_ms"] = stats["segments_ms"]["added by our code"]["p50"]
                stats["added_by_our_code_p99_ms"] = stats["segments_ms"]["added by our code"]["p99"]
            scenarios[scenario] = stats
        # Commits per payment: every commit in the database during (b), per payment made (the sandbox shares the
        # database, so its own commits for the micropay are included).
        b = scenarios["b_payment_success"]
        # Commits are counted over the whole scenario (warm-up included), so divide by every request made in it.
        total_b = b["commits"] / max(1, b["requests_total"])
        results["commits_per_payment_incl_sandbox"] = total_b
        results["commits_per_baseline_request"] = scenarios["a_baseline"]["commits"] / max(
            1, scenarios["a_baseline"]["requests_total"]
        )
        results["pgbench"] = pgbench_insert_rate(cluster, clients=16, seconds=10)
        print(f"  pgbench single-row INSERT: {results['pgbench']['inserts_per_second']:.0f}/s; commits per payment "
              f"{total_b:.1f} (incl. sandbox)", flush=True)  # fmt: skip
        results["scenarios"] = scenarios
        if args.profile_payments:
            try:
                profile = profile_payments(cluster, specs[0], args.profile_payments, ROOT / "bench/results/profile.txt")
                results["profile_top"] = profile.splitlines()[:60]
            except Exception as exc:  # the profile is a help, not a measurement
                results["profile_error"] = repr(exc)
    from bench import protocol

    results["protocol"] = protocol.run(args.protocol_rounds) if args.protocol_rounds else {}
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    (out / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def _ratio(value: float) -> str:
    return "—" if value != value else f"{value:.2f}"  # NaN: not applicable


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    lines = [
        f"# Benchmark — {results['finished_at']}",
        "",
        f"Machine: {results['machine']}. {args['terminals']} concurrent device-signed terminals; "
        f"{args.get('rounds', 1)} interleaved rounds of every scenario, {args['seconds']:.0f} s each after "
        f"{args['warmup']:.0f} s warm-up; upstream (sandbox) added latency {args['latency_ms']:.0f} ms; gunicorn "
        f"{args['app_workers']} workers × {args['app_threads']} threads; load generator on the same machine. "
        "req/s: the median round; latency percentiles: every round's requests together; ratio to (a): the median "
        "of the per-round ratios (range in brackets).",
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | ratio to (a) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, stats in results["scenarios"].items():
        ratios = [r for r in stats.get("rounds_ratio_to_baseline", []) if r == r]
        spread = f" [{min(ratios):.2f}–{max(ratios):.2f}]" if len(ratios) > 1 and key != "a_baseline" else ""
        lines.append(
            f"| {label(key)} | {stats['rps']:.1f} | {stats['p50_ms']:.1f} | {stats['p95_ms']:.1f} | "
            f"{stats['p99_ms']:.1f} | {_ratio(stats['ratio_to_baseline'])}{spread} | {stats['errors']} |"
        )
    lines += [
        "",
        "CPU milliseconds per request, by process (/proc counters over the whole scenario, warm-up included; the "
        "sandbox plays the upstream and the load generator the terminals, both on the same cores):",
        "",
        "| scenario | " + " | ".join(CPU_PARTS) + " | server: app + postgresql + redis + celery | ratio to (a) |",
        "|---|" + "---:|" * (len(CPU_PARTS) + 2),
    ]
    base_cpu = results["scenarios"]["a_baseline"].get("cpu_ms_per_request", {}).get(SERVER_CPU)
    for key, stats in results["scenarios"].items():
        cpu = stats.get("cpu_ms_per_request")
        if not cpu:
            continue
        ratio = base_cpu / cpu[SERVER_CPU] if base_cpu and cpu[SERVER_CPU] else float("nan")
        lines.append(
            f"| {label(key)} | "
            + " | ".join(f"{cpu[name]:.2f}" for name in CPU_PARTS)
            + f" | {cpu[SERVER_CPU]:.2f} | {_ratio(ratio)} |"
        )
    b = results["scenarios"]["b_payment_success"]
    nan = float("nan")
    lines += [
        "",
        f"(b) upstream micropay call p50 {b.get('upstream_call_p50_ms', nan):.1f} ms; latency added by our "
        f"code (client latency − upstream call) p50 {b.get('added_by_our_code_p50_ms', nan):.1f} ms, "
        f"p99 {b.get('added_by_our_code_p99_ms', nan):.1f} ms (closed loop: the server is saturated, so this is "
        "mostly queueing).",
        "",
    ]
    for key, paced in results["scenarios"].items():
        if key.startswith(PACED):
            interval = paced_interval(key)
            lines += [
                f"(b′) the same {args['terminals']} terminals paced at one payment every {interval:g} s each "
                f"({args['terminals'] / interval:g} payments/s offered, {paced['requests']} payments measured): "
                f"upstream call p50 {paced.get('upstream_call_p50_ms', nan):.1f} ms; latency added by our code p50 "
                f"{paced.get('added_by_our_code_p50_ms', nan):.1f} ms, "
                f"p99 {paced.get('added_by_our_code_p99_ms', nan):.1f} ms.",
                "",
            ]
    lines += [
        "Where a payment's time went, ms (load generator's clock and the order's own events: before the call = "
        "request sent → order about to be inserted; around the call = → answer back, less the upstream call; after "
        "the answer = → response read by the terminal):",
        "",
        "| scenario | " + " | ".join(f"{name} p50 / p99" for name in SEGMENT_COLUMNS) + " |",
        "|---|" + "---:|" * (len(SEGMENTS) + 1),
    ]
    for key, stats in results["scenarios"].items():
        if "segments_ms" in stats:
            cells = [stats["segments_ms"].get(name) for name in SEGMENT_COLUMNS]
            lines.append(
                f"| {label(key)} | "
                + " | ".join(f"{c['p50']:.1f} / {c['p99']:.1f}" if c else "—" for c in cells)
                + " |"
            )
    lines += [
        "",
        f"PostgreSQL single-row INSERT (pgbench, {results['pgbench']['clients']} clients, same server): "
        f"{results['pgbench']['inserts_per_second']:.0f}/s ({results['pgbench']['latency']}). Committed "
        "transactions (pg_stat_database.xact_commit, which also counts each autocommit SELECT) per payment, product "
        f"and sandbox together (one database): {results['commits_per_payment_incl_sandbox']:.1f}; per baseline "
        f"request: {results['commits_per_baseline_request']:.1f}.",
        "",
        "| protocol work (CPU per call) | ours µs | SDK | SDK µs | ours / SDK |",
        "|---|---:|---|---:|---:|",
    ]
    for name, row in results["protocol"].items():
        lines.append(
            f"| {name} | {row['ours_us']:.1f} | {row['sdk']} | {row['sdk_us']:.1f} | {row['ours_vs_sdk']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
