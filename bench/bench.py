"""`make bench`: the terminal API on the production shape — deploy/Procfile's processes (gunicorn + uvicorn ASGI
workers, Celery) on PostgreSQL + Redis, with the upstream played by the sandbox on the same web line (its latency and
timeouts switchable at run time). In one invocation, interleaved rounds of:

- closed-loop and paced scenarios against a baseline request: latency, and server CPU per request as a ratio to the
  baseline's (measured in the same round: this kind of machine drifts by tens of per cent within minutes);
- the capacity scenarios (bench/capacity.py): paced terminals following the real payment sequence at offered rates,
  with and without password users, with a healthy and a degraded upstream;

then payments while a tenth of the merchants' webhook endpoints are down, what the metrics cost per payment (rounds
with METRICS_ENABLED on, scraped, and off: bench/metrics_overhead.py), many long-polls held open at once on one
node, PostgreSQL's own insert rate and commits per payment, one webhook delivery process's throughput
(bench/webhooks.py), protocol CPU cost against wechatpy / wechatpayv3, and a pyinstrument profile of the payment
path. Writes bench/results/<name>.json and .md.

    python -m bench.bench [--rounds 3] [--seconds 15] [--latency-ms 0] [--capacity-only] …   (--help lists all)

The load generator runs on the same machine (its own processes): on 2 cores it takes CPU from the server, so the
absolute numbers are lower bounds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import ssl
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import capacity, metrics_overhead
from bench import webhooks as webhook_bench
from bench.cluster import ROOT, Cluster, django_setup
from bench.faults import machine
from bench.measure import SERVER_PARTS, children_cpu, percentile

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


def _worker(args: tuple) -> list[tuple[float, float, int, str]]:
    """One load process: threads, one per terminal; returns (start, seconds, status, out_trade_no) per request — or,
    for an error answer, its error code in place of the number."""
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
                method, path, body = "POST", "/api/terminal/v1/bench/baseline", b"{}"
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
            retry_after = 0.0
            try:
                response = client.send(request)
                status = response.status_code
                if not 200 <= status < 300:
                    number = response.json().get("code", "")
                    # A refusal the terminal may retry (CHANNEL_BUSY, 503): a well-behaved one waits as told first.
                    retry_after = float(response.headers.get("Retry-After", 0))
                else:
                    number = response.json().get("out_trade_no", "") if scenario.startswith("b_") else ""
            except (httpx.HTTPError, ValueError):
                status, number = 0, ""
            local.append((started, time.perf_counter() - t0, status, number))
            if retry_after:
                time.sleep(retry_after)
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
            # Answered 2xx over the whole scenario, warm-up included, as the CPU and commit counters are.
            "answered_total": sum(1 for r in everything if 200 <= r[2] < 300),
            "errors": len(records) - len(ok),
            "error_statuses": sorted({f"{r[2]} {r[3]}".strip() for r in records if not 200 <= r[2] < 300}),
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


SERVER_CPU = "server (app + postgresql + redis + celery)"
CPU_PARTS = ("app", "sandbox", "postgresql", "redis", "celery", "load generator")


def combine_rounds(
    rounds: list[dict[str, Any]], latencies: list[float], baseline_server_cpu: list[float]
) -> dict[str, Any]:
    """One scenario over its rounds: throughput is the median round's; latency percentiles pool every round's
    requests; CPU per request is weighted by answered requests. The server CPU per request's ratio to the baseline
    request's (this scenario's / the baseline's) is the median of the per-round ratios, each taken against the
    baseline measured minutes before it in the same round (the machine drifts)."""
    answered = sum(r["answered_total"] for r in rounds)
    cpu_parts = rounds[0]["cpu_ms_per_request"].keys()
    ratios = [
        r["cpu_ms_per_request"][SERVER_CPU] / baseline
        for r, baseline in zip(rounds, baseline_server_cpu, strict=True)
        if baseline
    ]
    return {
        "rounds_rps": [r["rps"] for r in rounds],
        "rps": statistics.median(r["rps"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "requests_total": sum(r["requests_total"] for r in rounds),
        "answered_total": answered,
        "errors": sum(r["errors"] for r in rounds),
        "error_statuses": sorted({code for r in rounds for code in r["error_statuses"]}),
        **latency_summary(latencies),
        "commits": sum(r["commits"] for r in rounds),
        "cpu_ms_per_request": {
            part: sum(r["cpu_ms_per_request"][part] * r["answered_total"] for r in rounds) / max(1, answered)
            for part in cpu_parts
        },
        "rounds_server_cpu_ratio_to_baseline": ratios,
        "server_cpu_ratio_to_baseline": statistics.median(ratios) if ratios else float("nan"),
    }


def cpu_per_request(before: dict[str, float], after: dict[str, float], load: float, stats: dict) -> dict[str, float]:
    """CPU milliseconds per answered (2xx) request, by part, over the whole scenario (warm-up included: the CPU
    counters cannot be cut at the warm-up's end, so requests are counted over the same span). Refused requests
    (503 CHANNEL_BUSY in the closed loop) are not payments: their CPU is charged to the ones that were made."""
    answered = max(1, stats["answered_total"])
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
    import secrets

    from bench.views import ensure_table
    from payments.terminal_client import TerminalClient
    from portal import services
    from portal.models import Store

    # The baseline's table, before the servers' first baseline requests: two web workers creating it at once collide
    # in PostgreSQL's catalogue (a 500 for one of them).
    ensure_table()
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
    from portal import wakeup
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
    # Waiting requests served here started this process's wake-up listener; it would go on reconnecting, and
    # logging it, once the cluster's PostgreSQL is stopped.
    wakeup.hub.stop_listener()
    text = profiler.output_text(unicode=True, color=False, show_all=False)
    out.write_text(text)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    numbers = lambda text: [float(v) for v in text.split(",") if v]  # noqa: E731 - a comma-separated list option
    parser.add_argument("--terminals", type=int, default=100, help="terminals of the closed-loop and paced scenarios")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per scenario and round")
    parser.add_argument("--warmup", type=float, default=4, help="of the closed-loop and paced scenarios")
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="every scenario runs this many times, interleaved (a b c d b′ capacity…, a b c d b′ capacity…, …)",
    )  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=0, help="upstream latency of (a)-(d) and (b′)")
    parser.add_argument("--load-processes", type=int, default=2)
    parser.add_argument(
        "--paced-intervals", type=numbers, default=[20.0, 5.0],
        help="(b′), one scenario per value: seconds between one terminal's payments (a busy checkout lane takes a "
        "payment every 20-60 s); comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--app-workers", type=int, default=os.cpu_count() or 2,
        help="WEB_WORKERS of the product's web tier (production's default: one per core)",
    )  # fmt: skip
    parser.add_argument("--capacity-only", action="store_true", help="only the capacity scenarios and the long-polls")
    parser.add_argument("--capacity-rates", type=numbers, default=[10.0, 25.0], help="payments/s offered")
    parser.add_argument("--password-share", type=float, default=0.15, help="of the payments (amount code 101)")
    parser.add_argument("--degraded-share", type=float, default=0.05, help="upstream calls that time out (degraded)")
    parser.add_argument("--capacity-latency-ms", type=float, default=100, help="upstream latency of the capacity part")
    parser.add_argument("--capacity-devices", type=int, default=300, help="terminals of the capacity scenarios")
    parser.add_argument("--arrivals", choices=("poisson", "fixed"), default="poisson")
    parser.add_argument("--long-polls", type=int, default=2000, help="terminals long-polling at once (0: none)")
    parser.add_argument("--long-poll-wait", type=float, default=20, help="their ?wait= seconds")
    parser.add_argument("--long-poll-ramp", type=float, default=20, help="seconds over which they start")
    parser.add_argument("--long-poll-seconds", type=float, default=60, help="how long they keep long-polling")
    parser.add_argument("--protocol-rounds", type=int, default=10000)
    parser.add_argument(
        "--reconcile-rows", type=int, default=200_000, help="rows of the reconciliation bill (0: not measured)"
    )
    parser.add_argument("--profile-payments", type=int, default=300)
    parser.add_argument(
        "--webhook-deliveries", type=int, default=20_000,
        help="events in the backlog of the webhook throughput rounds (0: not measured)",
    )  # fmt: skip
    parser.add_argument("--webhook-rounds", type=int, default=3, help="rounds of the webhook throughput")
    parser.add_argument(
        "--webhook-outage-rounds", type=int, default=3,
        help="rounds of each of A (every endpoint up) and B (a tenth down), interleaved (0: not measured)",
    )  # fmt: skip
    parser.add_argument("--webhook-payment-rate", type=float, default=25, help="payments/s offered in A and B")
    parser.add_argument(
        "--webhook-outage-seconds", type=float, default=30,
        help="seconds of arrivals per round of A and B (their p99 needs more payments than a capacity round's)",
    )  # fmt: skip
    parser.add_argument("--webhook-merchants", type=int, default=20, help="merchants (endpoints) of A and B")
    parser.add_argument("--webhooks-only", action="store_true", help="only the two webhook parts")
    parser.add_argument(
        "--metrics-rounds", type=int, default=3,
        help="round pairs of the metrics' cost: METRICS_ENABLED on (scraped) and off, each pair starting with the "
        "other mode (0: not measured)",
    )  # fmt: skip
    parser.add_argument("--metrics-payment-rate", type=float, default=25, help="payments/s offered in on and off")
    parser.add_argument("--metrics-seconds", type=float, default=30, help="seconds of arrivals per round of on / off")
    parser.add_argument("--metrics-scrape-seconds", type=float, default=15, help="scrape interval in on")
    parser.add_argument("--metrics-only", action="store_true", help="only the metrics' cost")
    parser.add_argument(
        "--protocol-only", action="store_true", help="only the protocol work against the SDKs (in this process)"
    )
    parser.add_argument(
        "--name",
        help="results file name (default: bench; capacity with --capacity-only, webhooks with --webhooks-only, "
        "metrics with --metrics-only)",
    )
    args = parser.parse_args(argv)
    if sum((args.capacity_only, args.webhooks_only, args.metrics_only, args.protocol_only)) > 1:
        parser.error("--capacity-only, --webhooks-only, --metrics-only and --protocol-only exclude each other")
    only = {
        "capacity": args.capacity_only,
        "webhooks": args.webhooks_only,
        "metrics": args.metrics_only,
        "protocol": args.protocol_only,
    }
    args.name = args.name or next((name for name, chosen in only.items() if chosen), "bench")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.bench", *(sys.argv[1:] if argv is None else argv)])
    if args.protocol_only:
        return protocol_only(args, command)
    # Every open request holds a descriptor in the load generator and in a web worker (both inherit this limit).
    capacity.raise_open_files(args.long_polls + 1024)
    run_dir = ROOT / "var" / "bench" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    own_environment = dict(os.environ)  # before django_setup makes this process a client of the cluster
    cluster = Cluster(
        run_dir,
        settings_module="bench.settings",
        # The webhook receivers are local (loopback, plain HTTP), as in a development deployment; WEBHOOK_TIMEOUT is
        # the default, written out because the endpoints-down part times out on it.
        extra_env={
            "TERMINAL_THROTTLE_RATE": "10000000/min",
            "LOG_LEVEL": "WARNING",
            "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
            "WEBHOOK_REQUIRE_HTTPS": "false",
            "WEBHOOK_TIMEOUT": "5",
        },  # fmt: skip
        sandbox_env={"BENCH_SANDBOX_LATENCY_MS": str(args.latency_ms)},
        app_workers=args.app_workers,
        sandbox_workers=2,
        celery_workers=1,
    )
    print(f"bench: {args.rounds} rounds of {args.seconds:g} s per scenario; run directory "
          f"{run_dir.relative_to(ROOT)}", flush=True)  # fmt: skip
    started_at = datetime.now(UTC)
    results: dict[str, Any] = {
        "args": vars(args),
        "command": command,
        "machine": machine(),
        "started_at": started_at.isoformat(timespec="seconds"),
    }
    with cluster:
        cluster.start()
        django_setup(cluster)
        import io

        from django.core.management import call_command

        from sandbox.management.commands.seed_demo import DEMO_PASSWORD

        call_command("seed_demo", "--allow-in-production", stdout=io.StringIO())  # output names secrets: not printed
        others = not args.webhooks_only and not args.metrics_only
        webhooks = not args.capacity_only and not args.metrics_only
        specs = prepare(cluster, args.terminals) if others and not args.capacity_only else []
        devices = capacity.register_devices(args.capacity_devices) if others or args.metrics_only else []
        console = capacity.Console(cluster.app_url, capacity.CONSOLE_USER, DEMO_PASSWORD)
        run = (*SCENARIOS, *(paced_scenario(i) for i in args.paced_intervals)) if specs else ()
        plan = capacity.plan(args.capacity_rates, args.password_share, args.degraded_share) if others else []
        rounds: dict[str, list[dict[str, Any]]] = {scenario: [] for scenario in run}
        pooled: dict[str, list[float]] = {scenario: [] for scenario in run}
        segments: dict[str, dict[str, list[float]]] = {scenario: {} for scenario in run}
        capacity_rounds: dict[str, list[dict[str, Any]]] = {scenario.key: [] for scenario in plan}
        webhook_results: dict[str, Any] = {}
        for round_index in range(args.rounds):
            for scenario in run:
                run_scenario(cluster, args, specs, scenario, rounds, pooled, segments)
                print(f"  round {round_index + 1}/{args.rounds} {label(scenario):<55} "
                      f"{rounds[scenario][-1]['rps']:8.1f} req/s  p50 {rounds[scenario][-1]['p50_ms']:7.1f} ms  "
                      f"errors {rounds[scenario][-1]['errors']}", flush=True)  # fmt: skip
            for index, scenario in enumerate(plan):
                one = capacity.run_scenario(
                    cluster, scenario, devices=devices, seconds=args.seconds, processes=args.load_processes,
                    poisson=args.arrivals == "poisson", latency_ms=args.capacity_latency_ms, console=console,
                    seed=round_index * 100 + index,
                )  # fmt: skip
                capacity_rounds[scenario.key].append(one)
                brief = capacity.summarize(one["records"])
                print(f"  round {round_index + 1}/{args.rounds} {scenario.label:<55} {brief['payments']:5d} payments  "
                      f"ordinary p50/p99 {brief['ordinary']['p50_ms']:7.0f} / {brief['ordinary']['p99_ms']:7.0f} ms  "
                      f"not final {brief['not_final']}  errors {sum(brief['errors'].values())}  "
                      f"{one['wall_seconds']:.0f} s", flush=True)  # fmt: skip
        console.close()
        if run:
            results.update(combine_scenarios(run, rounds, pooled, segments))
        if plan:
            results["capacity"] = {
                "settings": {
                    "rounds": args.rounds, "seconds": args.seconds, "arrivals": args.arrivals,
                    "latency_ms": args.capacity_latency_ms, "devices": args.capacity_devices,
                    "processes": args.load_processes,
                },
                "scenarios": {
                    scenario.key: {"label": scenario.label, **capacity.combine(capacity_rounds[scenario.key])}
                    for scenario in plan
                },
            }  # fmt: skip
        if webhooks and args.webhook_outage_rounds:
            print("webhooks: payments while a tenth of the endpoints are down", flush=True)
            webhook_results["outage"] = webhook_bench.outage_rounds(
                cluster, rounds=args.webhook_outage_rounds, rate=args.webhook_payment_rate,
                seconds=args.webhook_outage_seconds,
                processes=args.load_processes, poisson=args.arrivals == "poisson",
                latency_ms=args.capacity_latency_ms, merchants=args.webhook_merchants,
            )  # fmt: skip
        if (args.metrics_only or others and not args.capacity_only) and args.metrics_rounds:
            print("metrics: payments with METRICS_ENABLED on (scraped) and off, the processes restarted for each",
                  flush=True)  # fmt: skip
            results["metrics"] = metrics_overhead.run(
                cluster, devices=devices, rounds=args.metrics_rounds, rate=args.metrics_payment_rate,
                seconds=args.metrics_seconds, scrape_seconds=args.metrics_scrape_seconds,
                processes=args.load_processes, poisson=args.arrivals == "poisson",
                latency_ms=args.capacity_latency_ms,
            )  # fmt: skip
        if args.long_polls and others:
            results["long_polls"] = capacity.run_long_polls(
                cluster, devices, count=args.long_polls, wait=args.long_poll_wait, ramp=args.long_poll_ramp,
                seconds=args.long_poll_seconds, processes=args.load_processes,
            )  # fmt: skip
            polls = results["long_polls"]
            print(f"  {polls['terminals']} terminals long-polling, {polls['requests']} requests: answered "
                  f"{polls['answered']}, most held at once {polls['peak_held_server']}, timeouts {polls['timeouts']}, "
                  f"errors {sum(polls['errors'].values())}", flush=True)  # fmt: skip
        if webhooks and args.webhook_deliveries:
            print(f"webhooks: {args.webhook_rounds} rounds of one delivery process, {args.webhook_deliveries} events",
                  flush=True)  # fmt: skip
            webhook_results["throughput"] = webhook_bench.throughput(
                cluster, events=args.webhook_deliveries, rounds=args.webhook_rounds
            )
        if webhook_results:
            results["webhooks"] = webhook_results
        if others and not args.capacity_only:
            results["pgbench"] = pgbench_insert_rate(cluster, clients=16, seconds=10)
            if args.profile_payments:
                try:
                    profile = profile_payments(
                        cluster, specs[0], args.profile_payments, ROOT / "bench/results/profile.txt"
                    )
                    results["profile_top"] = profile.splitlines()[:60]
                except Exception as exc:  # the profile is a help, not a measurement
                    results["profile_error"] = repr(exc)
        if others and not args.capacity_only and args.reconcile_rows:
            results["reconcile"] = reconcile_bill(cluster, args.reconcile_rows, own_environment)
    if others and not args.capacity_only and args.protocol_rounds:
        from bench import protocol

        results["protocol"] = protocol.run(args.protocol_rounds)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    (out / f"{args.name}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def reconcile_bill(cluster: Cluster, rows: int, environment: dict[str, str]) -> dict[str, Any]:
    """One day's WeChat bill of `rows` rows imported and matched (bench/reconcile.py, in fresh processes, after the
    load), on the cluster's PostgreSQL server (a database of its own) and on SQLite (the embedded default)."""
    import psycopg

    with psycopg.connect(cluster.database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS bench_reconcile")
        admin.execute("CREATE DATABASE bench_reconcile")
    measured: dict[str, Any] = {"rows": rows}
    postgresql = cluster.database_url.rsplit("/", 1)[0] + "/bench_reconcile"
    for label, url in (("postgresql", postgresql), ("sqlite", None)):
        env = {key: value for key, value in environment.items() if key != "DATABASE_URL"}
        env.update({"DJANGO_SETTINGS_MODULE": "portal.settings", **({"DATABASE_URL": url} if url else {})})
        print(f"reconciliation: a {rows}-row bill on {label}", flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "bench.reconcile", "--rows", str(rows)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        measured[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {measured[label]}", flush=True)
    return measured


def run_scenario(
    cluster: Cluster, args: argparse.Namespace, specs: list[dict[str, str]], scenario: str,
    rounds: dict[str, list], pooled: dict[str, list[float]], segments: dict[str, dict[str, list[float]]],
) -> None:  # fmt: skip
    """One round of a closed-loop or paced scenario, appended to `rounds`, `pooled` (latencies), `segments`."""
    from bench.views import set_upstream

    set_upstream(latency_ms=args.latency_ms)  # the capacity scenarios set another
    before = pg_commits(cluster)
    cpu_before, load_before = cluster.cpu_seconds(), children_cpu()
    stats, numbers, latencies = drive(
        scenario, cluster.app_url, specs, args.seconds, args.warmup, args.load_processes, paced_interval(scenario)
    )
    stats["commits"] = pg_commits(cluster) - before
    stats["cpu_ms_per_request"] = cpu_per_request(
        cpu_before, cluster.cpu_seconds(), children_cpu() - load_before, stats
    )
    if scenario.startswith("b_"):
        for name, values in payment_segments(numbers).items():
            segments[scenario].setdefault(name, []).extend(values)
    rounds[scenario].append(stats)
    pooled[scenario] += latencies


def combine_scenarios(
    run: tuple[str, ...], rounds: dict[str, list], pooled: dict[str, list[float]],
    segments: dict[str, dict[str, list[float]]],
) -> dict[str, Any]:  # fmt: skip
    baseline_cpu = [r["cpu_ms_per_request"][SERVER_CPU] for r in rounds["a_baseline"]]
    scenarios: dict[str, Any] = {}
    for scenario in run:
        stats = combine_rounds(rounds[scenario], pooled[scenario], baseline_cpu)
        if scenario.startswith("b_"):
            stats["segments_ms"] = {
                name: {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99)}
                for name, values in segments[scenario].items()
            }
            stats["upstream_call_p50_ms"] = stats["segments_ms"]["upstream call"]["p50"]
            stats["added_by_our_code_p50_ms"] = stats["segments_ms"]["added by our code"]["p50"]
            stats["added_by_our_code_p99_ms"] = stats["segments_ms"]["added by our code"]["p99"]
        scenarios[scenario] = stats
    # Commits are counted over the whole scenario (warm-up included), so divide by every request answered in it; the
    # sandbox shares the database, so its own commits for the micropay are included.
    per_request = {key: stats["commits"] / max(1, stats["answered_total"]) for key, stats in scenarios.items()}
    return {
        "scenarios": scenarios,
        "commits_per_payment_incl_sandbox": per_request["b_payment_success"],
        "commits_per_baseline_request": per_request["a_baseline"],
    }


def _ratio(value: float) -> str:
    return "—" if value != value else f"{value:.2f}"  # NaN: not applicable


def _spread(values: list[float]) -> str:
    values = [v for v in values if v == v]
    return f" [{min(values):.2f}–{max(values):.2f}]" if len(values) > 1 else ""


def headline(results: dict[str, Any]) -> list[str]:
    lines = []
    if "scenarios" in results:
        scenarios = results["scenarios"]
        b = scenarios["b_payment_success"]
        base = scenarios["a_baseline"]["cpu_ms_per_request"][SERVER_CPU]
        paced = "; ".join(
            f"paced one every {paced_interval(key):g} s per terminal {stats['cpu_ms_per_request'][SERVER_CPU]:.1f} ms "
            f"= {_ratio(stats['server_cpu_ratio_to_baseline'])} ×"
            + _spread(stats["rounds_server_cpu_ratio_to_baseline"])
            for key, stats in scenarios.items()
            if key.startswith(PACED)
        )
        lines.append(
            f"- **Server CPU per payment** (app + PostgreSQL + Redis + Celery; without the sandbox and the load "
            f"generator), (b) POST payments → SUCCESS: {b['cpu_ms_per_request'][SERVER_CPU]:.1f} ms = "
            f"**{_ratio(b['server_cpu_ratio_to_baseline'])} × the baseline request's** ({base:.1f} ms; median of "
            f"the per-round ratios{_spread(b['rounds_server_cpu_ratio_to_baseline'])}). (b′) {paced} (their idle "
            "processes' fixed costs spread over fewer payments)."
        )
    for stats in results.get("capacity", {}).get("scenarios", {}).values():
        ordinary, healthy = stats["ordinary"], stats["healthy"]
        password = f"; password p50 {stats['password']['p50_ms'] / 1000:.1f} s" if stats["password"]["payments"] else ""
        own = (
            f" (healthy: {healthy['p50_ms']:.0f} / {healthy['p99_ms']:.0f} ms; own call timed out: "
            f"{stats['own_call_timed_out']})"
            if stats["own_call_timed_out"]
            else ""
        )
        lines.append(
            f"- {stats['label']}: ordinary time to final p50 / p99 {ordinary['p50_ms']:.0f} / "
            f"{ordinary['p99_ms']:.0f} ms{own}{password}; not final {stats['not_final']}, request errors "
            f"{sum(stats['errors'].values())}; dashboard p99 {stats['dashboard']['p99_ms']:.0f} ms."
        )
    lines += webhook_bench.headline(results.get("webhooks", {}))
    lines += metrics_overhead.headline(results.get("metrics", {}))
    if polls := results.get("long_polls"):
        lines.append(
            f"- {polls['terminals']:,} terminals long-polling at once: {polls['requests']:,} requests, answered "
            f"{polls['answered']:,}, most held by the server at once {polls['peak_held_server']:,}, timeouts "
            f"{polls['timeouts']}, errors {sum(polls['errors'].values())}; web tier RSS "
            f"{polls['web_rss_before_mib']:.0f} → {polls['web_rss_max_mib']:.0f} MiB."
        )
    return ["## Headline", "", *lines, ""] if lines else []


def markdown(results: dict[str, Any]) -> str:
    args = results["args"]
    lines = [
        f"# Benchmark — {results['started_at']} to {results['finished_at']}",
        "",
        f"Machine: {results['machine']}.",
        "",
        f"Command: `{results['command']}`. Production's processes (deploy/Procfile: gunicorn + uvicorn ASGI "
        f"workers, WEB_WORKERS={args['app_workers']}; Celery worker and beat) on PostgreSQL and Redis; the sandbox "
        "as the upstream on the same web line; load generator on the same machine.",
        "",
        *headline(results),
    ]
    if "scenarios" in results:
        lines += scenario_markdown(results)
    if "capacity" in results:
        lines += capacity.markdown(results["capacity"])
    if "webhooks" in results:
        lines += webhook_bench.markdown(results["webhooks"])
    if "metrics" in results:
        lines += metrics_overhead.markdown(results["metrics"])
    if "long_polls" in results:
        lines += capacity.long_poll_markdown(results["long_polls"])
    if "pgbench" in results:
        lines += [
            f"PostgreSQL single-row INSERT (pgbench, {results['pgbench']['clients']} clients, same server): "
            f"{results['pgbench']['inserts_per_second']:.0f}/s ({results['pgbench']['latency']}). Committed "
            "transactions (pg_stat_database.xact_commit, which also counts each autocommit SELECT) per payment, "
            f"product and sandbox together (one database): {results['commits_per_payment_incl_sandbox']:.1f}; per "
            f"baseline request: {results['commits_per_baseline_request']:.1f}.",
            "",
        ]
    if "reconcile" in results:
        lines += reconcile_markdown(results["reconcile"])
    if results.get("protocol"):
        lines += protocol_markdown(results["protocol"])
    return "\n".join(lines) + "\n"


def protocol_markdown(measured: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| protocol work (CPU per call) | ours µs | SDK | SDK µs | ours / SDK |",
        "|---|---:|---|---:|---:|",
    ]
    for name, row in measured.items():
        lines.append(
            f"| {name} | {row['ours_us']:.1f} | {row['sdk']} | {row['sdk_us']:.1f} | {row['ours_vs_sdk']:.2f} |"
        )
    return lines


def protocol_only(args: argparse.Namespace, command: str) -> int:
    """The protocol section alone: in this process, no cluster (the work is CPU in the client, not the server)."""
    import django

    from bench import protocol

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    measured = protocol.run(args.protocol_rounds)
    results = {
        "args": vars(args),
        "command": command,
        "machine": machine(),
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "protocol": measured,
    }
    text = "\n".join(
        [
            f"# Protocol work — {results['started_at']} to {results['finished_at']}",
            "",
            f"Machine: {results['machine']}.",
            "",
            f"Command: `{command}`. CPU time of this process per call, ours and the SDK's doing the same work, the "
            "best of five passes each, passes alternating (bench/protocol.py). The v3 calls go through each client's "
            "HTTP library to an in-process answer signed once with a platform public key: request JSON, RSA signature, "
            "sending, answer signature verified, answer read.",
            "",
            *protocol_markdown(measured),
        ]
    )
    out = ROOT / "bench" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    (out / f"{args.name}.md").write_text(text + "\n")
    print(text)
    return 0


def reconcile_markdown(measured: dict[str, Any]) -> list[str]:
    lines = [
        f"## Reconciliation: one day's WeChat bill of {measured['rows']:,} rows",
        "",
        "Import (gzip-compressed and hashed), parse, match every row and every order of ours, record the day "
        "(one row in a thousand planted as a difference), in a fresh process after the load; target 30 s and 300 MB.",
        "",
        "| database | bill MB | seconds | peak memory MB | matched | differences |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label in ("postgresql", "sqlite"):
        row = measured[label]
        lines.append(
            f"| {label} | {row['bill_mb']} | {row['seconds']} | {row['peak_rss_mb']} | {row['matched']} | "
            f"{row['differences']} |"
        )
    return [*lines, ""]


def scenario_markdown(results: dict[str, Any]) -> list[str]:
    """The closed-loop and paced scenarios against the baseline."""
    args = results["args"]
    lines = [
        "## Against the baseline: closed-loop and paced terminals",
        "",
        f"{args['terminals']} concurrent device-signed terminals (a thread each); {args['rounds']} interleaved rounds "
        f"of every scenario, {args['seconds']:g} s each after {args['warmup']:g} s warm-up; upstream (sandbox) added "
        f"latency {args['latency_ms']:g} ms. req/s: the median round; latency percentiles: every round's requests "
        "together. A terminal refused with Retry-After (503 CHANNEL_BUSY: the web process's places for calls to the "
        "channel are taken) waits that long before its next request.",
        "",
        "| scenario | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, stats in results["scenarios"].items():
        kinds = f" ({', '.join(stats['error_statuses'])})" if stats["errors"] else ""
        lines.append(
            f"| {label(key)} | {stats['rps']:.1f} | {stats['p50_ms']:.1f} | {stats['p95_ms']:.1f} | "
            f"{stats['p99_ms']:.1f} | {stats['errors']}{kinds} |"
        )
    lines += [
        "",
        "CPU milliseconds per answered (2xx) request, by process (/proc counters over the whole scenario, warm-up "
        "included; the sandbox plays the upstream and the load generator the terminals, both on the same cores; "
        "refused requests' CPU is charged to the answered ones). Ratio to (a): this "
        "scenario's server CPU per request / the baseline request's, median of the per-round ratios (range in "
        "brackets) — above 1 costs more than the baseline:",
        "",
        "| scenario | " + " | ".join(CPU_PARTS) + " | server: app + postgresql + redis + celery | ratio to (a) |",
        "|---|" + "---:|" * (len(CPU_PARTS) + 2),
    ]
    for key, stats in results["scenarios"].items():
        cpu = stats["cpu_ms_per_request"]
        spread = "" if key == "a_baseline" else _spread(stats["rounds_server_cpu_ratio_to_baseline"])
        lines.append(
            f"| {label(key)} | "
            + " | ".join(f"{cpu[name]:.2f}" for name in CPU_PARTS)
            + f" | {cpu[SERVER_CPU]:.2f} | {_ratio(stats['server_cpu_ratio_to_baseline'])}{spread} |"
        )
    b = results["scenarios"]["b_payment_success"]
    lines += [
        "",
        f"(b) upstream micropay call p50 {b['upstream_call_p50_ms']:.1f} ms; latency added by our code (client "
        f"latency − upstream call) p50 {b['added_by_our_code_p50_ms']:.1f} ms, p99 {b['added_by_our_code_p99_ms']:.1f} "
        "ms (closed loop: the server is saturated, so this is mostly queueing).",
        "",
    ]
    for key, paced in results["scenarios"].items():
        if key.startswith(PACED):
            interval = paced_interval(key)
            lines += [
                f"(b′) the same {args['terminals']} terminals paced at one payment every {interval:g} s each "
                f"({args['terminals'] / interval:g} payments/s offered, {paced['requests']} payments measured): "
                f"upstream call p50 {paced['upstream_call_p50_ms']:.1f} ms; latency added by our code p50 "
                f"{paced['added_by_our_code_p50_ms']:.1f} ms, p99 {paced['added_by_our_code_p99_ms']:.1f} ms.",
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
    return [*lines, ""]


if __name__ == "__main__":
    raise SystemExit(main())
