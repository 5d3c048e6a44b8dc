"""Webhooks in `make bench` (bench/bench.py runs both parts; `--webhook-deliveries 0` skips the first):

(a) Throughput of one delivery process. In a database of its own on the cluster's PostgreSQL server
    (`bench_webhooks`): merchants with one endpoint each, all pointing at one local receiver, and a backlog of N
    payment.succeeded events written by the product's `event_emit` (a payment's data, a distinct order key each),
    then ANALYZE. ONE fresh process then calls `webhooks.delivery.drain()` again and again until nothing is pending —
    what a Celery worker's `webhooks.tasks.deliver` does — while the cluster's own Celery worker and beat are
    stopped (so PostgreSQL's CPU is the delivery's). Measured per round: deliveries/s over the backlog (the first
    drain's start to the last delivery recorded), CPU seconds of the delivery process, of the receiver and of
    PostgreSQL, and that the receiver got every event exactly once.

(b) Payments while some merchants' endpoints are down. Merchants of this part only (WeChat service-provider mode
    under the demo provider, connected to the sandbox), each with an endpoint subscribed to the payment events; the
    capacity scenario of bench/capacity.py (paced terminals, the real payment sequence) runs in interleaved rounds:
    A, every endpoint answers 200 (the receiver); B, a tenth of the endpoints are down — half refuse connections (a
    port nobody listens on), half are a black hole (accepts, never answers: each attempt runs into WEBHOOK_TIMEOUT).
    The cluster's Celery worker sends, as in production. A B round's deliveries still pending to the down endpoints
    are set aside (FAILED) when it ends, so the next A round does not deliver B's backlog. For reference, a third
    mode with every endpoint switched off (no events at all).

The receiver is `receiver` below, an ASGI app served by uvicorn (httptools, uvloop) in a process of its own: it reads
each request's body, takes the event id from the JSON, answers 200, and counts event ids (GET /count).

    python -m bench.webhooks emit --events N --merchants M --receiver URL     (a)'s backlog, in its database
    python -m bench.webhooks deliver                                          (a)'s delivery process
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from typing import Any

from bench.cluster import PYTHON, ROOT, Process, free_port, group_cpu_seconds, wait_for_port

DATABASE = "bench_webhooks"
PAYMENT_EVENT_TYPES = ["payment.succeeded", "payment.failed", "payment.reversed", "payment.attention"]
EMIT_BATCH = 500  # events written per transaction while the backlog is made
SETTLE_SECONDS = 3.0  # after a round of (b): the last events' deliveries (a kick, then a drain) finish
# (b)'s modes, one after the other in every round (each round starting with the next one): every endpoint up; a
# tenth down; for reference, every endpoint switched off (no events at all).
MODES = ("A", "B", "off")
MODE_LABELS = {"A": "A: every endpoint up", "B": "B: a tenth down", "off": "off: no webhooks (reference)"}


# --- the receiver (its own process: `python -m uvicorn bench.webhooks:receiver`) -----------------------------------

_received: Counter[str] = Counter()
_body_bytes = 0


async def _answer(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def receiver(scope, receive, send) -> None:
    """POST: read the whole body, count its event id, answer 200. GET /count: what was received."""
    global _body_bytes
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        duplicates = sum(n - 1 for n in _received.values() if n > 1)
        counts = {"requests": sum(_received.values()), "events": len(_received), "duplicates": duplicates}
        await _answer(send, 200, json.dumps({**counts, "body_bytes": _body_bytes}).encode())
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        event_id = json.loads(body)["id"]
    except (ValueError, KeyError, TypeError):
        await _answer(send, 400, b'{"ok":false}')
        return
    _received[event_id] += 1
    _body_bytes += len(body)
    await _answer(send, 200, b'{"ok":true}')


def receiver_process(port: int, log) -> Process:
    command = [
        PYTHON, "-m", "uvicorn", "bench.webhooks:receiver", "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--lifespan", "off", "--no-access-log", "--log-level", "warning",
        "--timeout-keep-alive", "75",
    ]  # fmt: skip
    return Process("webhook-receiver", command, dict(os.environ), log)


class BlackHole:
    """A port that accepts connections and never reads or answers: a request sent there waits for its timeout.
    Connections are closed from this side a minute after they were accepted."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._held: deque[tuple[float, socket.socket]] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
                self._held.append((time.monotonic(), connection))
                self.accepted += 1
            except TimeoutError:
                pass
            except OSError:
                return
            while self._held and time.monotonic() - self._held[0][0] > 60:
                self._held.popleft()[1].close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        while self._held:
            self._held.popleft()[1].close()


# --- (a): the backlog and the delivery process (fresh processes on the `bench_webhooks` database) ------------------


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def emit(events: int, merchants: int, receiver_url: str) -> dict[str, Any]:
    """The merchants and their endpoints (made once, pointed at `receiver_url`), the webhook tables emptied, then
    `events` payment.succeeded events through `event_emit` round-robin over the merchants, EMIT_BATCH per
    transaction; ANALYZE."""
    _django()
    from django.db import connection, transaction
    from django.utils import timezone

    from payments.models import Payment
    from payments.representation import payment_output
    from portal.models import Device, Merchant, Store
    from webhooks import services
    from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

    services.kick = lambda: None  # no worker to wake: the benchmark starts the delivery process itself
    shops = []
    for index in range(merchants):
        merchant, _ = Merchant.objects.get_or_create(
            name=f"Webhook throughput {index:02d}",
            defaults={"channel": Merchant.Channel.WECHAT_DIRECT, "mch_id": f"18{index:08d}", "appid": "wxbench"},
        )
        url = f"{receiver_url}/hook/{index}"
        if not WebhookEndpoint.objects.filter(merchant=merchant).exists():
            services.endpoint_create(merchant=merchant, url=url, events=PAYMENT_EVENT_TYPES, user=None)
        WebhookEndpoint.objects.filter(merchant=merchant).update(url=url)
        merchant.refresh_from_db()
        store, _ = Store.objects.get_or_create(
            merchant=merchant, store_id=f"WT-{index:02d}", defaults={"name": "bench"}
        )
        shops.append((merchant, store, Device(store=store, device_id=f"WT-{index:02d}-001")))
    tables = [model._meta.db_table for model in (WebhookAttempt, WebhookDelivery, WebhookEvent)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)}")
    started = time.monotonic()
    now = timezone.now()
    sizes = []
    for first in range(0, events, EMIT_BATCH):
        with transaction.atomic():
            for number in range(first, min(events, first + EMIT_BATCH)):
                merchant, store, device = shops[number % len(shops)]
                # A payment as the terminal API and the event show it (built in memory: only its event is written).
                payment = Payment(
                    merchant=merchant, store=store, device=device, channel=merchant.channel, method="FACE",
                    wallet="WECHAT", out_trade_no=f"WT{number:014d}", total_fee=1000 + number % 30000, body="bench",
                    openid=f"oBench{number:022d}", status="SUCCESS", transaction_id=f"42{number:026d}",
                    paid_at=now, created_at=now,
                )  # fmt: skip
                data = payment_output(payment)
                event = services.event_emit(
                    merchant=merchant, type="payment.succeeded", data=lambda data=data: data,
                    order_key=f"payment:{number}",
                )  # fmt: skip
                sizes.append(len(event.body))
    emitted = time.monotonic() - started
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")
    return {"events": events, "emit_seconds": round(emitted, 1), "body_bytes_mean": round(statistics.fmean(sizes))}


def deliver() -> dict[str, Any]:
    """`drain()` until nothing is pending; then what the database says of every delivery."""
    _django()
    from django.conf import settings
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from webhooks import delivery
    from webhooks.models import WebhookAttempt, WebhookDelivery

    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started_at = timezone.now()
    clock = time.monotonic()
    drains, by_status = 0, Counter()
    while pending.exists():
        result = delivery.drain(budget=settings.WEBHOOK_DRAIN_SECONDS)
        drains += 1
        by_status.update({str(key): n for key, n in result.by_status.items()})
    seconds = time.monotonic() - clock
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    span = WebhookDelivery.objects.aggregate(first=Min("last_attempt_at"), last=Max("delivered_at"))
    statuses = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("pk")))
    backlog = (span["last"] - started_at).total_seconds() if span["last"] else float("nan")
    return {
        "drains": drains,
        "seconds": round(seconds, 2),
        "backlog_seconds": round(backlog, 2),
        "cpu_seconds": round(cpu, 2),
        "deliveries": sum(statuses.values()),
        "delivered": statuses.get(WebhookDelivery.Status.DELIVERED, 0),
        "statuses": statuses,
        "sent_more_than_once": WebhookDelivery.objects.filter(attempts__gt=1).count(),
        "attempts_logged": WebhookAttempt.objects.count(),
        "answers": dict(by_status),
        "send_threads": settings.WEBHOOK_SEND_THREADS,
        "endpoint_concurrency": settings.WEBHOOK_ENDPOINT_CONCURRENCY,
    }


def _json_run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A fresh `python <args>` process whose last line of output is JSON."""
    done = subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} exited with {done.returncode}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def throughput(cluster, *, events: int, rounds: int, merchants: int = 10) -> dict[str, Any]:
    """(a), `rounds` times: a fresh backlog of `events`, a fresh receiver, one delivery process."""
    import httpx
    import psycopg

    with psycopg.connect(cluster.database_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.execute(f"CREATE DATABASE {DATABASE}")
    env = {
        **cluster.environment(),
        "DATABASE_URL": cluster.database_url.rsplit("/", 1)[0] + f"/{DATABASE}",
        "PGAPPNAME": "webhook-bench",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The cluster's own worker and beat would poll their (empty) outbox on the same PostgreSQL server meanwhile.
    celery = [process for name, process in cluster.processes.items() if name.startswith(("worker", "beat"))]
    for process in celery:
        process.stop()
    measured = []
    try:
        for index in range(rounds):
            made = _json_run(
                ["-m", "bench.webhooks", "emit", "--events", str(events), "--merchants", str(merchants), "--receiver",
                 url], env,
            )  # fmt: skip
            receiving = receiver_process(port, cluster.logs / "webhook-receiver.log")
            receiving.start()
            try:
                wait_for_port(port)
                postgresql, receiver_cpu = cluster.cpu_seconds()["postgresql"], group_cpu_seconds(receiving.popen.pid)
                done = _json_run(["-m", "bench.webhooks", "deliver"], env)
                postgresql = cluster.cpu_seconds()["postgresql"] - postgresql
                receiver_cpu = group_cpu_seconds(receiving.popen.pid) - receiver_cpu
                received = httpx.get(f"{url}/count", timeout=10).json()
            finally:
                receiving.stop()
            one = {
                **made,
                **done,
                "deliveries_per_second": done["delivered"] / done["backlog_seconds"],
                "receiver_cpu_seconds": round(receiver_cpu, 2),
                "postgresql_cpu_seconds": round(postgresql, 2),
                "received": received,
                "not_received": events - received["events"],
                "not_delivered": events - done["delivered"],
            }
            measured.append(one)
            print(f"  webhooks (a) round {index + 1}/{rounds}: {one['deliveries_per_second']:,.0f} deliveries/s "
                  f"({done['delivered']} in {done['backlog_seconds']:.1f} s), CPU s: delivery {done['cpu_seconds']}, "
                  f"receiver {one['receiver_cpu_seconds']}, postgresql {one['postgresql_cpu_seconds']}; received "
                  f"{received['events']} events, duplicates {received['duplicates']}", flush=True)  # fmt: skip
    finally:
        for process in celery:
            process.start()
    return {
        "events": events,
        "merchants": merchants,
        "rounds": measured,
        "deliveries_per_second": statistics.median(r["deliveries_per_second"] for r in measured),
        "send_threads": measured[0]["send_threads"],
        "endpoint_concurrency": measured[0]["endpoint_concurrency"],
        "body_bytes_mean": measured[0]["body_bytes_mean"],
    }


# --- (b): payments while endpoints are down --------------------------------------------------------------------------


def prepare_merchants(count: int, devices_per_merchant: int, receiver_url: str) -> list[dict[str, Any]]:
    """`count` service-provider merchants of the demo provider, connected to the sandbox, each with a store, its
    terminals and an endpoint subscribed to the payment events at `receiver_url`."""
    from portal import services as portal_services
    from portal.models import Merchant, ServiceProvider, Store
    from sandbox.connect import sandbox_connect_merchant
    from webhooks import services

    provider = ServiceProvider.objects.get(code="demo-sp")
    shops = []
    for index in range(count):
        merchant = Merchant.objects.create(
            provider=provider, channel=Merchant.Channel.WECHAT_PROVIDER, name=f"Webhook merchant {index:02d}",
            sub_mch_id=f"17{index:08d}",
        )  # fmt: skip
        sandbox_connect_merchant(merchant)
        store = Store.objects.create(merchant=merchant, store_id=f"WH-{index:02d}", name=f"Webhook store {index:02d}")
        devices = []
        for number in range(devices_per_merchant):
            device, secret = portal_services.device_register(
                store=store, device_id=f"WH-{index:02d}-{number:03d}", actor=None, actor_label="bench"
            )
            devices.append({"device_id": device.device_id, "secret": secret})
        endpoint, _ = services.endpoint_create(
            merchant=merchant, url=f"{receiver_url}/hook/{index}", events=PAYMENT_EVENT_TYPES, user=None
        )
        shops.append({"merchant": merchant.pk, "endpoint": endpoint, "devices": devices, "index": index})
    return shops


def _point(shop: dict[str, Any], url: str, *, active: bool = True) -> None:
    """The shop's endpoint at `url`, switched on or off (off: the merchant's payments make no events at all)."""
    from webhooks import services

    endpoint = shop["endpoint"]
    if (endpoint.url, endpoint.is_active) != (url, active):
        shop["endpoint"] = services.endpoint_update(
            endpoint=endpoint, url=url, events=endpoint.events, description=endpoint.description, is_active=active,
            user=None,
        )  # fmt: skip


def attempt_outcome(status_code: int | None, error: str) -> str:
    """An attempt's answer in one word: 2xx, HTTP <code>, timeout, refused, or other (a network error)."""
    if status_code is not None:
        return "2xx" if 200 <= status_code < 300 else f"HTTP {status_code}"
    if error == "timeout":
        return "timeout"
    if "refused" in error.lower() or error.startswith("NewConnectionError"):
        return "refused"
    return "other"


def round_deliveries(shops: list[dict[str, Any]], down: dict[int, str], begun, ended) -> dict[str, Any]:
    """What the webhooks did for the round's payments: events written, delivered by now, attempts by outcome (to
    the endpoints that are down, `down`: endpoint → what it is, by where they went)."""
    from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent

    endpoints = [shop["endpoint"].pk for shop in shops]
    merchants = [shop["merchant"] for shop in shops]
    window = {"created_at__gte": begun, "created_at__lt": ended}
    outcomes = Counter(
        f"{down[endpoint]}: {attempt_outcome(code, error)}" if endpoint in down else attempt_outcome(code, error)
        for endpoint, code, error in WebhookAttempt.objects.filter(
            delivery__endpoint__in=endpoints, started_at__gte=begun, started_at__lt=ended
        ).values_list("delivery__endpoint_id", "status_code", "error")
    )
    return {
        "events": WebhookEvent.objects.filter(merchant__in=merchants, **window).count(),
        "delivered": WebhookDelivery.objects.filter(
            endpoint__in=endpoints,
            status=WebhookDelivery.Status.DELIVERED,
            **{f"event__{key}": value for key, value in window.items()},
        ).count(),  # fmt: skip
        "attempts": dict(outcomes.most_common()),
    }


def set_aside(shops: list[dict[str, Any]]) -> int:
    """The pending deliveries to these endpoints marked FAILED (not to be sent in a later round)."""
    from webhooks.models import WebhookDelivery

    return WebhookDelivery.objects.filter(
        endpoint__in=[shop["endpoint"].pk for shop in shops], status=WebhookDelivery.Status.PENDING
    ).update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None, last_error="set aside by the benchmark")


def _merchant_of(numbers: list[str]) -> dict[str, int]:
    from payments.models import Payment

    return dict(Payment.objects.filter(out_trade_no__in=numbers).values_list("out_trade_no", "merchant_id"))


def outage_rounds(
    cluster, *, rounds: int, rate: float, seconds: float, processes: int, poisson: bool, latency_ms: float,
    merchants: int = 20, devices_per_merchant: int = 5, down_share: float = 0.1,
) -> dict[str, Any]:  # fmt: skip
    """(b): A B A B … rounds of the capacity scenario at `rate` payments/s on this part's merchants."""
    from django.conf import settings
    from django.utils import timezone

    from bench import capacity
    from bench.measure import percentile

    port = free_port()
    live = f"http://127.0.0.1:{port}"
    receiving = receiver_process(port, cluster.logs / "webhook-receiver.log")
    receiving.start()
    hole = BlackHole()
    refused_port = free_port()  # nobody listens there
    try:
        wait_for_port(port)
        shops = prepare_merchants(merchants, devices_per_merchant, live)
        down_count = max(2, round(merchants * down_share))
        down = shops[:down_count]
        down_indices = {shop["index"] for shop in down}
        targets = {
            shop["index"]: f"http://127.0.0.1:{refused_port if n < down_count // 2 else hole.port}/hook/{shop['index']}"
            for n, shop in enumerate(down)
        }

        def refused_port_of(shop: dict[str, Any]) -> bool:
            return f":{refused_port}/" in targets[shop["index"]]

        # Terminals interleaved across the merchants: consecutive payments are different merchants'.
        devices = [shop["devices"][n] for n in range(devices_per_merchant) for shop in shops]
        scenario = capacity.Scenario(rate)
        measured: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for round_index in range(rounds):
            # Each round starts with the next mode (A B off, B off A, off A B, …): none always follows another.
            for mode in MODES[round_index % len(MODES) :] + MODES[: round_index % len(MODES)]:
                for shop in shops:
                    is_down = mode == "B" and shop["index"] in down_indices
                    url = targets[shop["index"]] if is_down else f"{live}/hook/{shop['index']}"
                    _point(shop, url, active=mode != "off")
                begun = timezone.now()
                # The same arrivals in each mode of a round: the modes differ only in their webhooks.
                one = capacity.run_scenario(
                    cluster, scenario, devices=devices, seconds=seconds, processes=processes, poisson=poisson,
                    latency_ms=latency_ms, console=None, seed=7000 + round_index,
                )  # fmt: skip
                time.sleep(SETTLE_SECONDS)
                kinds = {
                    shop["endpoint"].pk: "refused port" if refused_port_of(shop) else "black hole"
                    for shop in down
                    if mode == "B"
                }
                one["deliveries"] = round_deliveries(shops, kinds, begun, timezone.now())
                one["set_aside"] = set_aside(down) if mode == "B" else 0
                measured[mode].append(one)
                brief = capacity.summarize(one["records"])
                print(f"  webhooks (b) round {round_index + 1}/{rounds} {mode}: {brief['payments']} payments, p50/p99 "
                      f"{brief['ordinary']['p50_ms']:.0f} / {brief['ordinary']['p99_ms']:.0f} ms, not final "
                      f"{brief['not_final']}; webhooks {one['deliveries']}", flush=True)  # fmt: skip
        combined = {mode: capacity.combine(rounds_) for mode, rounds_ in measured.items()}
        # In B, the payments of the merchants whose endpoint was down, apart.
        down_merchants = {shop["merchant"] for shop in down}
        b_records = [r for one in measured["B"] for r in one["records"]]
        owner = _merchant_of([r["number"] for r in b_records])
        of_down = [
            r["seconds"] * 1000
            for r in b_records
            if r["seconds"] is not None and owner.get(r["number"]) in down_merchants
        ]
        summary: dict[str, Any] = {
            "rounds": rounds,
            "rate": rate,
            "seconds": seconds,
            "latency_ms": latency_ms,
            "merchants": merchants,
            "devices": len(devices),
            "down": {"refused": down_count // 2, "black_hole": down_count - down_count // 2},
            "webhook_timeout": settings.WEBHOOK_TIMEOUT,
            "black_hole_connections": hole.accepted,
        }
        for mode, stats in combined.items():
            summary[mode] = {
                **capacity.headline_figures(stats),
                "deliveries": [one["deliveries"] for one in measured[mode]],
                "set_aside": sum(one["set_aside"] for one in measured[mode]),
            }
        summary["B"]["down_merchants_p50_ms"] = percentile(of_down, 50)
        summary["B"]["down_merchants_p99_ms"] = percentile(of_down, 99)
        summary["B"]["down_merchants_payments"] = len(of_down)
        summary["p99_ratio"] = summary["B"]["p99_ms"] / summary["A"]["p99_ms"]
        summary["p50_ratio"] = summary["B"]["p50_ms"] / summary["A"]["p50_ms"]
        # A and B of one round had the same arrivals: their ratio, round by round.
        summary["rounds_p99_ratio"] = [
            b / a for a, b in zip(summary["A"]["rounds_p99_ms"], summary["B"]["rounds_p99_ms"], strict=True)
        ]
        return summary
    finally:
        hole.close()
        receiving.stop()


# --- report ------------------------------------------------------------------------------------------------------


def _attempts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "0"


def markdown(webhooks: dict[str, Any]) -> list[str]:
    lines = ["## Webhooks", ""]
    if load := webhooks.get("throughput"):
        lines += [
            "### (a) One delivery process against a local receiver",
            "",
            f"{load['events']:,} payment.succeeded events (a payment's data, {load['body_bytes_mean']} bytes of body "
            f"on average, a distinct order key each) for {load['merchants']} merchants with one endpoint each, all on "
            "one local receiver (uvicorn with httptools and uvloop, one process: reads each body, answers 200, counts "
            f"event ids); a database of its own on the cluster's PostgreSQL (`{DATABASE}`), ANALYZEd after the backlog "
            "was written; then one fresh process calling `webhooks.delivery.drain()` until nothing is pending (what "
            f"the Celery task `webhooks.tasks.deliver` does), WEBHOOK_SEND_THREADS={load['send_threads']}, "
            f"WEBHOOK_ENDPOINT_CONCURRENCY={load['endpoint_concurrency']}; the cluster's Celery worker and beat "
            "stopped meanwhile. Deliveries/s: delivered ÷ (the first drain's start → the last delivery recorded). "
            "CPU: the delivery process (its own counters over the drains), the receiver and PostgreSQL (/proc, over "
            "the delivery process's life). Target: 1,000 deliveries/s.",
            "",
            "| round | deliveries/s | seconds | delivery process CPU s (ms / delivery) | receiver CPU s | PostgreSQL "
            "CPU s | delivered | events received | received twice | sent more than once | not delivered |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for index, one in enumerate(load["rounds"], 1):
            per = one["cpu_seconds"] * 1000 / max(1, one["delivered"])
            lines.append(
                f"| {index} | {one['deliveries_per_second']:,.0f} | {one['backlog_seconds']:.1f} | "
                f"{one['cpu_seconds']:.1f} ({per:.2f}) | {one['receiver_cpu_seconds']:.1f} | "
                f"{one['postgresql_cpu_seconds']:.1f} | {one['delivered']:,} | {one['received']['events']:,} | "
                f"{one['received']['duplicates']} | {one['sent_more_than_once']} | {one['not_delivered']} |"
            )
        lines += [f"| **median** | **{load['deliveries_per_second']:,.0f}** | | | | | | | | | |", ""]
    if down := webhooks.get("outage"):
        lines += [
            "### (b) Payments while a tenth of the endpoints are down",
            "",
            f"The capacity scenario (paced terminals, the real payment sequence; time to final = POST sent → final "
            f"answer read) at {down['rate']:g} payments/s offered, {down['seconds']:g} s of arrivals per round, "
            f"upstream latency {down['latency_ms']:g} ms, on {down['merchants']} merchants of this part "
            f"({down['devices']} terminals), each with an endpoint subscribed to the payment events, sent by the "
            f"cluster's Celery worker. {down['rounds']} rounds, each of A, B and the reference in turn (each round "
            "starting with the next of them: A B off, B off A, off A B, …), all three with the same arrivals (the same "
            "random seed within a round): A, every endpoint answers 200 (a local "
            f"receiver); B, {down['down']['refused'] + down['down']['black_hole']} endpoints are down — "
            f"{down['down']['refused']} refusing connections (nobody listens on the port), "
            f"{down['down']['black_hole']} a black hole (accepts, never answers; WEBHOOK_TIMEOUT="
            f"{down['webhook_timeout']:g} s); off, for reference, every endpoint switched off (no events at all). "
            "What a B round left pending to the down endpoints is set aside (FAILED) before the next round. The "
            "capacity scenario rather than the closed loop: its p99 is the payments' own (the closed loop saturates "
            "the 2 cores, its p99 is queueing). Percentiles pool every round's payments. Attempts to the down "
            "endpoints are labelled by where they went, then with the outcome the product recorded. Target: B's p99 "
            "≤ 1.1 × A's.",
            "",
            "| rounds | payments | p50 ms | p99 ms | p99 per round ms | not final | server CPU ms / payment (app, "
            "postgresql, celery) | webhooks per round: events, delivered, attempts by outcome |",
            "|---|---:|---:|---:|---|---:|---:|---|",
        ]
        for mode in MODES:
            stats = down[mode]
            per_round = " / ".join(f"{value:.0f}" for value in stats["rounds_p99_ms"])
            hooks = "; ".join(
                f"{d['events']}, {d['delivered']}, {_attempts(d['attempts'])}" for d in stats["deliveries"]
            )
            lines.append(
                f"| {MODE_LABELS[mode]} | {stats['payments']} | {stats['p50_ms']:.0f} | {stats['p99_ms']:.0f} | "
                f"{per_round} | {stats['not_final']} | {stats['server_cpu_ms_per_payment']:.1f} ("
                + ", ".join(f"{stats['cpu_ms_per_payment'][part]:.1f}" for part in ("app", "postgresql", "celery"))
                + f") | {hooks} |"
            )
        lines += [
            "",
            f"**B / A: p99 {down['p99_ratio']:.2f} ×, p50 {down['p50_ratio']:.2f} ×** (A / off: p99 "
            f"{down['A']['p99_ms'] / down['off']['p99_ms']:.2f} ×, p50 "
            f"{down['A']['p50_ms'] / down['off']['p50_ms']:.2f} ×); B / A p99 round by round (same arrivals): "
            + " / ".join(f"{ratio:.2f}" for ratio in down["rounds_p99_ratio"])
            + f". In B, the payments of the "
            f"merchants whose endpoint was down ({down['B']['down_merchants_payments']}): p50 / p99 "
            f"{down['B']['down_merchants_p50_ms']:.0f} / {down['B']['down_merchants_p99_ms']:.0f} ms. Deliveries set "
            f"aside after the B rounds: {down['B']['set_aside']}; connections the black hole accepted: "
            f"{down['black_hole_connections']}.",
            "",
        ]
    return lines


def headline(webhooks: dict[str, Any]) -> list[str]:
    parts = []
    if load := webhooks.get("throughput"):
        rates = ", ".join(f"{r['deliveries_per_second']:,.0f}" for r in load["rounds"])
        parts.append(
            f"one delivery process {load['deliveries_per_second']:,.0f} deliveries/s (median of {rates}; target 1,000)"
        )
    if down := webhooks.get("outage"):
        parts.append(
            f"payments' p99 with a tenth of the endpoints down {down['B']['p99_ms']:.0f} ms vs "
            f"{down['A']['p99_ms']:.0f} ms all up = {down['p99_ratio']:.2f} × (target ≤ 1.1; round by round, same "
            f"arrivals: {' / '.join(f'{ratio:.2f}' for ratio in down['rounds_p99_ratio'])})"
        )
    return [f"- Webhooks: {'; '.join(parts)}."] if parts else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("emit")
    making.add_argument("--events", type=int, required=True)
    making.add_argument("--merchants", type=int, default=10)
    making.add_argument("--receiver", required=True)
    commands.add_parser("deliver")
    args = parser.parse_args()
    answer = emit(args.events, args.merchants, args.receiver) if args.command == "emit" else deliver()
    print(json.dumps(answer, default=str), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
