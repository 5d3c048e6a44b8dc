"""The fault run: drive payments through a chaotic sandbox while Celery workers are killed, then check that no money
was lost. `make faults` (10,000 payments) / `make faults-small` (CI). Exit status 1 if any invariant count is not 0.

    python -m bench.faults --payments 600 --terminals 24 --chaos 0.15 --name faults-small

What runs (all on loopback): a throwaway PostgreSQL and Redis; the processes of deploy/Procfile (bench/cluster.py):
the web tier serving the product (DEBUG off), the same web line serving the sandbox (SANDBOX_ENABLED=force,
SANDBOX_CHAOS on), Celery workers + beat. Terminals are
threads running `payments.simulator.run_payment` (FACE and CODE, WeChat direct and UMF merchants, ordinary amounts
and the sandbox's scenario amounts), some sending the same payment twice at once, some cancelling; a refunder issues
full, partial and over-the-limit refunds; a killer SIGKILLs workers (and now and then beat) and restarts them; the
outages thread restarts PostgreSQL (immediate stop, a few seconds down), pauses Redis (SIGSTOP/SIGCONT) and restarts
it, `--outages` times each. Terminals treat 503 as "try again": they repeat the same request (a payment with the
same out_trade_no, which is idempotent) after Retry-After, as a real terminal does; every response they get must be
JSON, and none may be a 5xx other than 503. After the load: the bad-input fuzzing, then a resolution window, then
the invariants.

Both merchants have a webhook endpoint (every payment and refund event) on a chaotic receiver (bench/chaos_receiver.py:
2xx, 5xx, a timeout or a reset at random; it verifies every signature and logs every request). Once the resolution
window is over it recovers (2xx always) and the run waits until no delivery is pending; deliveries waiting out a retry
delay are made due at once meanwhile (WeChat's schedule waits up to hours), leases of killed workers run out on their
own. Then the webhook invariants (bench/invariants.py, check_webhooks): every event delivered, every payment's and
refund's final state sent, nothing sent again after a 2xx we recorded, signatures valid, a refund's event never before
its payment's. The beat evaluates the alert rules throughout (alerts app); at the end they are evaluated once more and
the alert invariants (check_alerts) count ATTENTION payments and refunds not alerted or alerted twice, and alerts for
ones that were never in ATTENTION.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import badinput
from bench.cluster import PYTHON, ROOT, Cluster, Process, django_setup, free_port, wait_for_port
from payments.terminal_client import TerminalClient

WECHAT_CODES = list(range(101, 112))
UMF_CODES = list(range(201, 206))

# Short timings so a run resolves in minutes (every one is an ordinary setting of the product / sandbox).
TIMINGS = {
    "PAYMENT_CALL_TIMEOUT": "3",
    "UPSTREAM_READ_TIMEOUT": "3",
    "UPSTREAM_CONNECT_TIMEOUT": "2",
    "PAYMENT_WAIT_SECONDS": "3",
    "PAYMENT_QUERY_FIRST_DELAY": "1",
    "PAYMENT_QUERY_INTERVAL": "1",
    "PAYMENT_QUERY_WINDOW": "8",
    "PAYMENT_REVERSE_NOT_BEFORE": "5",
    "PAYMENT_LONG_POLL_MAX_SECONDS": "10",
    "REFUND_RETRY_MAX_SECONDS": "20",
    # The rotation of the v3 merchant's platform certificate mid-run (rotator) is picked up by the product alone.
    "PLATFORM_CERTIFICATE_REFRESH_SECONDS": "20",
    "PLATFORM_CERTIFICATE_CHECK_SECONDS": "10",
    "SANDBOX_SETTLE_SECONDS": "3",
    "SANDBOX_REFUND_SECONDS": "1",
    "SANDBOX_TIMEOUT_SLEEP_SECONDS": "4",
    "SANDBOX_CHAOS_DELAY_SECONDS": "1.5",
    "TERMINAL_THROTTLE_RATE": "100000/min",
    "WEBHOOK_TIMEOUT": "2",
    "LOG_LEVEL": "INFO",
}
# The webhook receiver is local (loopback, plain HTTP), as in a development deployment.
WEBHOOK_ENV = {"WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", "WEBHOOK_REQUIRE_HTTPS": "false"}
WEBHOOK_EVENT_PREFIXES = ("payment.", "refund.")
LOG = None


def say(line: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
    print(f"[{stamp}] {line}", flush=True)
    if LOG is not None:
        with open(LOG, "a", encoding="utf-8") as handle:
            handle.write(f"[{stamp}] {line}\n")


@dataclass
class Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: int = 0
    finished: int = 0
    outcomes: Counter = field(default_factory=Counter)
    driver_errors: Counter = field(default_factory=Counter)
    duplicate_pairs: int = 0
    duplicate_anomalies: list[str] = field(default_factory=list)
    cancels: int = 0
    refunds_created: int = 0
    refunds_refused: Counter = field(default_factory=Counter)
    kills: Counter = field(default_factory=Counter)
    exited: Counter = field(default_factory=Counter)  # workers / beat that exited by themselves (supervise())
    # What the terminals were answered (OutageAwareTerminal), and the outages (outages()).
    responses: Counter = field(default_factory=Counter)
    not_json: list[str] = field(default_factory=list)
    other_5xx: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, "status METHOD endpoint")
    retries_503: Counter = field(default_factory=Counter)  # by the answer's code
    gave_up_503: int = 0
    outages: Counter = field(default_factory=Counter)
    outage_windows: list[tuple[float, float]] = field(default_factory=list)
    duplicate_pairs_after_503: int = 0
    unavailable: list[tuple[float, float]] = field(default_factory=list)  # SERVICE_UNAVAILABLE: (sent, answered)

    def take(self, total: int, deadline: float) -> bool:
        with self.lock:
            if self.started >= total or time.monotonic() > deadline:
                return False
            self.started += 1
            return True

    def add(self, counter: str, key: str, n: int = 1) -> None:
        with self.lock:
            getattr(self, counter)[key] += n


class OutageAwareTerminal(TerminalClient):
    """A terminal as the fault run's outages need it: a 503 means "try again" — the same request is sent again
    (signed anew) after Retry-After, for up to `patience` seconds — and a payment always carries its own
    out_trade_no, so sending it again cannot make a second order. Every answer is checked: JSON, and no 5xx other
    than 503."""

    def __init__(self, *args, stats: Stats, patience: float = 120.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.stats = stats
        self.patience = patience
        self.retried = 0  # 503 answers this client has repeated a request after

    def request(self, method, endpoint, payload=None, *, params=None, nonce=None):
        if (
            method == "POST"
            and endpoint == "payments"
            and isinstance(payload, dict)
            and not payload.get("out_trade_no")
        ):
            payload = {**payload, "out_trade_no": "FLT" + secrets.token_hex(12).upper()}
        deadline = time.monotonic() + self.patience
        while True:
            sent = time.monotonic()
            response = super().request(method, endpoint, payload, params=params, nonce=nonce)
            self._check(method, endpoint, response)
            if response.status_code == 503 and self._code(response) == "SERVICE_UNAVAILABLE":
                with self.stats.lock:
                    self.stats.unavailable.append((sent, time.monotonic()))
            if response.status_code != 503:
                return response
            if time.monotonic() > deadline:
                with self.stats.lock:
                    self.stats.gave_up_503 += 1
                return response
            self.retried += 1
            self.stats.add("retries_503", self._code(response))
            try:
                wait = float(response.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.2), 5.0))

    @staticmethod
    def _code(response) -> str:
        try:
            return str(response.json().get("code", "?"))
        except ValueError:
            return "not JSON"

    def _check(self, method: str, endpoint: str, response) -> None:
        what = f"{response.status_code} {method} {endpoint.split('/')[0]}"
        with self.stats.lock:
            self.stats.responses[response.status_code] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.stats.other_5xx.append((time.monotonic(), what))
        try:
            response.json()
            json_ok = response.headers.get("Content-Type", "").startswith("application/json")
        except ValueError:
            json_ok = False
        if not json_ok:
            with self.stats.lock:
                self.stats.not_json.append(f"{what}: {response.headers.get('Content-Type', '')} {response.text[:80]!r}")


class PatientSandbox(httpx.Client):
    """The terminal SDK's stand-ins on the sandbox (rawdata, face_code) share the cluster's PostgreSQL and Redis, so
    an outage makes them fail too: asked again until they answer, as the SDK's local calls would not fail."""

    def post(self, url, *args, **kwargs):
        deadline = time.monotonic() + 120
        while True:
            try:
                response = super().post(url, *args, **kwargs)
                if response.status_code < 500 or time.monotonic() > deadline:
                    return response
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)


def pick_amount(channel: str, rng: random.Random, scenario_share: float) -> int:
    base = rng.randint(1, 300) * 1000
    if rng.random() < scenario_share:
        return base + rng.choice(UMF_CODES if channel == "UMPAY" else WECHAT_CODES)
    return base + rng.choice([0, 1, 88, 500, 999])


def prepare_devices(terminals: int) -> list[dict[str, str]]:
    """The demo merchants registered with the sandbox and one device per terminal: half the terminals UMF, the
    other half WeChat Pay, of which half pay over API v2 (the direct merchant) and half over API v3 (the provider's
    sub-merchant)."""
    import io

    from django.core.management import call_command

    from portal import services
    from portal.models import Store

    call_command("seed_demo", "--allow-in-production", stdout=io.StringIO())  # output names demo secrets: never printed
    stores = [Store.objects.get(store_id=store_id) for store_id in ("SZ-NS-001", "BJ-HD-001", "SZ-FT-001", "BJ-HD-001")]
    devices = []
    for index in range(terminals):
        store = stores[index % 4]
        device, secret = services.device_register(
            store=store, device_id=f"FAULT-{index:04d}", actor=None, actor_label="faults"
        )
        devices.append({"device_id": device.device_id, "secret": secret, "channel": store.merchant.channel})
    return devices


def drive_terminal(
    device: dict[str, str],
    *,
    cluster: Cluster,
    stats: Stats,
    total: int,
    deadline: float,
    seed: int,
    scenario_share: float,
) -> None:
    from payments.simulator import random_payment_code, run_payment

    rng = random.Random(seed)
    terminal = OutageAwareTerminal(
        cluster.app_url, device_id=device["device_id"], secret=device["secret"], timeout=40, stats=stats
    )
    sandbox = PatientSandbox(base_url=cluster.sandbox_url, timeout=40)
    try:
        while stats.take(total, deadline):
            amount = pick_amount(device["channel"], rng, scenario_share)
            method = rng.choice(["FACE", "CODE"])
            roll = rng.random()
            try:
                if roll < 0.04:
                    duplicate_submission(terminal, stats, amount, random_payment_code())
                    continue
                result = run_payment(terminal, sandbox=sandbox, amount=amount, method=method, poll_seconds=4)
                stats.add("outcomes", result.status or ("error" if result.error else "none"))
                if result.error and not result.out_trade_no:
                    stats.add("driver_errors", result.error.split(":")[0])
                if roll > 0.96 and result.out_trade_no and result.status in ("SUCCESS", "PAYING"):
                    terminal.post(f"payments/{result.out_trade_no}/cancel")
                    with stats.lock:
                        stats.cancels += 1
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                stats.add("driver_errors", type(exc).__name__)
            finally:
                with stats.lock:
                    stats.finished += 1
    finally:
        terminal.close()
        sandbox.close()


def duplicate_submission(terminal, stats: Stats, amount: int, code: str) -> None:
    """The same payment sent twice at once (a terminal retrying on a flaky network): one order, one charge."""
    payload = {
        "out_trade_no": "DUP" + secrets.token_hex(10),
        "total_fee": amount,
        "body": "重复提交测试",
        "auth_code": code,
        "method": "CODE",
    }
    retried_before = terminal.retried
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: terminal.post("payments", payload), range(2)))
    statuses = sorted(a.status_code for a in answers)
    # A 503 after the order was inserted (the database lost before the answer) is repeated, and the repeat finds
    # the order: then both answers are 200. The double-charge check still counts its charges.
    after_503 = terminal.retried > retried_before and statuses == [200, 200]
    with stats.lock:
        stats.duplicate_pairs += 1
        stats.outcomes["duplicate pair"] += 1
        if after_503:
            stats.duplicate_pairs_after_503 += 1
        elif statuses != [200, 201]:
            stats.duplicate_anomalies.append(f"{payload['out_trade_no']}: {statuses}")


def refunder(stop: threading.Event, stats: Stats, interval: float, seed: int) -> None:
    """Staff refunds while the run goes on: full (a reverse), partial, and pairs that together exceed the amount."""
    from django.db import InterfaceError, OperationalError, close_old_connections

    from payments import services
    from payments.models import Payment
    from portal.errors import DomainError

    rng = random.Random(seed)
    while not stop.wait(interval):
        close_old_connections()
        try:
            ids = list(
                Payment.objects.filter(status__in=["SUCCESS", "PARTIALLY_REFUNDED"]).values_list("pk", flat=True)[:400]
            )
            if not ids:
                continue
            payment = Payment.objects.get(pk=rng.choice(ids))
        except (OperationalError, InterfaceError):
            stats.add("refunds_refused", "database unavailable")  # PostgreSQL restarting: staff try again later
            continue
        left = payment.total_fee - payment.reserved_refund_fee
        roll = rng.random()
        if roll < 0.35:
            fees = [left]
        elif roll < 0.8:
            fees = [max(1, rng.randint(1, max(1, left - 1)))]
        else:
            fees = [max(1, (payment.total_fee * 6) // 10)] * 2  # together 120 %: one must be refused

        def one(fee: int, payment: Payment = payment) -> None:
            try:
                services.refund_create(
                    payment=payment, refund_fee=fee, reason="fault run", user=None, actor_label="faults"
                )
                with stats.lock:
                    stats.refunds_created += 1
            except DomainError as exc:
                stats.add("refunds_refused", exc.code)
            except (OperationalError, InterfaceError):
                stats.add("refunds_refused", "database unavailable")  # rolled back: nothing was reserved
            finally:
                close_old_connections()

        if len(fees) == 1:
            one(fees[0])
        else:
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(one, fees))


V3_PROVIDER_MCH_ID = "1900000100"  # the demo provider: its sub-merchant 演示书店 pays over API v3


@dataclass
class Rotation:
    """The v3 signer's platform certificate replaced mid-run, with nobody touching the product's credentials."""

    old_serial: str = ""
    new_serial: str = ""
    switch_in: float = 0.0
    new_stored_after: float | None = None  # seconds from the rotation until the product's refresh stored it
    old_dropped_after: float | None = None  # seconds from the rotation until the expired one was dropped
    rotated: bool = False


def rotator(stop: threading.Event, stats: Stats, total: int, rotation: Rotation) -> None:
    """At a third of the load: WeChat (the sandbox) publishes a new platform certificate for the v3 provider, signs
    with it 60 s later and lets the old one expire 60 s after that. The product's scheduled refresh must have the new
    one before the switch and drop the old one once expired; no v3 answer may be refused for an unknown serial."""
    from django.db import close_old_connections

    from portal.models import ChannelCredentials
    from sandbox.services import sandbox_platform_certificates, sandbox_rotate_platform_certificate

    while not stop.is_set() and stats.finished < total // 3:
        stop.wait(1)
    if stop.is_set():
        return
    try:
        now = datetime.now(UTC)
        rotation.switch_in = 60.0
        rotation.old_serial = sandbox_platform_certificates(V3_PROVIDER_MCH_ID)[-1].serial_no
        new = sandbox_rotate_platform_certificate(
            V3_PROVIDER_MCH_ID,
            switch_at=now + timedelta(seconds=rotation.switch_in),
            old_expire_at=now + timedelta(seconds=2 * rotation.switch_in),
        )
        rotation.new_serial, rotation.rotated = new.serial_no, True
        say(f"rotator: new platform certificate {new.serial_no[:8]}… published, signing in 60 s, old expires in 120 s")
        started = time.monotonic()
        while time.monotonic() - started < 300:  # watched past the load's end: the run waits for it before reporting
            close_old_connections()
            try:
                stored = ChannelCredentials.objects.get(provider__wechat_mch_id=V3_PROVIDER_MCH_ID)
                serials = set(channels_platform_serials(stored))
            except Exception:  # noqa: BLE001 - the database may be restarting (outages): look again
                time.sleep(1)
                continue
            elapsed = time.monotonic() - started
            if rotation.new_stored_after is None and rotation.new_serial in serials:
                rotation.new_stored_after = elapsed
                say(f"rotator: the product stored the new certificate after {elapsed:.0f} s")
            if rotation.old_dropped_after is None and rotation.old_serial not in serials:
                rotation.old_dropped_after = elapsed
                say(f"rotator: the product dropped the expired certificate after {elapsed:.0f} s")
            if rotation.new_stored_after is not None and rotation.old_dropped_after is not None:
                return
            time.sleep(1)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal to the run
        say(f"rotator: failed: {type(exc).__name__}: {exc}")


def channels_platform_serials(credentials) -> list[str]:
    from portal.credentials import certificate_serial, load_certificates

    if not credentials.wechat_platform_certificates:
        return []
    return [certificate_serial(c) for c in load_certificates("certs", credentials.wechat_platform_certificates)]


def rotation_failures(rotation: Rotation) -> int:
    """0 when the rotation happened and the product took it up alone: the new certificate stored before WeChat
    signed with it, the expired one dropped. A run too short to rotate in counts as a failure: it proved nothing."""
    if not rotation.rotated:
        return 1
    stored_in_time = rotation.new_stored_after is not None and rotation.new_stored_after < rotation.switch_in
    return int(not stored_in_time) + int(rotation.old_dropped_after is None)


def rotation_text(rotation: Rotation) -> str:
    if not rotation.rotated:
        return "not rotated"
    stored = "never" if rotation.new_stored_after is None else f"after {rotation.new_stored_after:.0f} s"
    dropped = "never" if rotation.old_dropped_after is None else f"after {rotation.old_dropped_after:.0f} s"
    return (
        f"new certificate published, signing {rotation.switch_in:.0f} s later; stored by the product {stored}; "
        f"old one (expired at {2 * rotation.switch_in:.0f} s) dropped {dropped}"
    )


def payments_by_api() -> str:
    from django.db.models import Count

    from payments.models import Payment

    rows = Payment.objects.values("merchant__channel", "merchant__wechat_api").annotate(n=Count("pk"))
    counts = Counter()
    for row in rows:
        key = "UMPAY" if row["merchant__channel"] == "UMPAY" else row["merchant__wechat_api"]
        counts[key] += row["n"]
    return f"{counts['V2']} / {counts['V3']} / {counts['UMPAY']}"


def unknown_serial_refusals() -> int:
    """Upstream answers the product refused because it did not know the signing serial (chaos spoils signatures, it
    never changes the serial: any of these is a platform key the product failed to keep current)."""
    from payments.gateways.wechatpay_v3 import UNKNOWN_SERIAL
    from payments.models import PaymentEvent

    return PaymentEvent.objects.filter(code="BAD_SIGNATURE", message=UNKNOWN_SERIAL).count()


def supervise(cluster: Cluster, stats: Stats) -> None:
    """Start again a worker or beat that exited by itself, as the process manager does in production (a Celery
    worker can exit on a broker connection lost mid-restore: kombu's 'Unrecoverable error')."""
    for name, process in cluster.processes.items():
        if name.startswith(("worker", "beat")) and process.popen is not None and not process.alive:
            stats.add("exited", name)
            say(f"{name} exited by itself (status {process.popen.returncode}); starting it again")
            process.start()


def killer(stop: threading.Event, cluster: Cluster, stats: Stats, every: tuple[float, float], seed: int) -> None:
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(*every)):
        supervise(cluster, stats)
        names = [n for n in cluster.processes if n.startswith("worker")]
        victim = "beat" if rng.random() < 0.15 else rng.choice(names)
        process = cluster.processes[victim]
        process.kill()
        stats.add("kills", victim)
        stop.wait(rng.uniform(0.5, 3.0))
        process.start()


OUTAGE_KINDS = ("PostgreSQL restarted", "Redis paused", "Redis restarted")


def outages(stop: threading.Event, cluster: Cluster, stats: Stats, rounds: int, gap: float, seed: int) -> None:
    """`rounds` times each: PostgreSQL stopped with `pg_ctl -m immediate stop` and started 2-4 s later; Redis frozen
    with SIGSTOP for 3-5 s; Redis killed and started 2-4 s later; `gap` seconds (±30 %) of normal service before
    each. Runs its whole plan (the load waits for it), so every outage happens while terminals pay."""
    rng = random.Random(seed)
    for _ in range(rounds):
        for kind in OUTAGE_KINDS:
            if stop.wait(gap * rng.uniform(0.7, 1.3)):
                return
            seconds = rng.uniform(3, 5) if kind == "Redis paused" else rng.uniform(2, 4)
            say(f"outage: {kind} ({seconds:.1f} s)")
            started = time.monotonic()
            if kind == "PostgreSQL restarted":
                cluster.restart_database(seconds)
            elif kind == "Redis paused":
                cluster.pause_redis(seconds)
            else:
                cluster.restart_redis(seconds)
            with stats.lock:
                stats.outages[kind] += 1
                stats.outage_windows.append((started, time.monotonic()))


def reconnect_database(attempts: int = 60) -> None:
    """This process's connections after the outages: the pool's idle ones were cut by the PostgreSQL restart, and
    the pool hands each out once more before it sees it is broken. Borrow until one answers."""
    from django.db import InterfaceError, OperationalError, connection, connections

    for _ in range(attempts):
        connections.close_all()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        except (OperationalError, InterfaceError):
            time.sleep(0.5)
    raise RuntimeError("the database did not come back after the outages")


def in_outage(moment: float, windows: list[tuple[float, float]], grace: float = 5.0) -> bool:
    """Within an outage, or `grace` seconds after it (a request sent just before the end may still meet it)."""
    return any(start <= moment <= end + grace for start, end in windows)


def slowest_unavailable(answers: list[tuple[float, float]], windows: list[tuple[float, float]]) -> tuple[float, float]:
    """The slowest SERVICE_UNAVAILABLE answer to a request sent during an outage, and the slowest of all (those
    include requests in flight when the outage began, e.g. a long-poll that had been waiting for seconds)."""
    during = [answered - sent for sent, answered in answers if in_outage(sent, windows, grace=0)]
    return max(during, default=0.0), max((answered - sent for sent, answered in answers), default=0.0)


def unsettled() -> tuple[int, int]:
    from django.db.models import Q

    from payments.models import Payment, Refund

    payments = Payment.objects.filter(Q(status__in=["PAYING", "REVERSING"]) | Q(next_check_at__isnull=False)).count()
    refunds = Refund.objects.filter(Q(status__in=["PENDING", "PROCESSING"]) | Q(next_check_at__isnull=False)).count()
    return payments, refunds


def collect_invariants():
    from django.db.models import Count

    from bench.invariants import PaymentRow, RefundRow, check
    from payments.models import Payment, Refund
    from sandbox.models import SandboxUmpayOrder, SandboxWechatOrder
    from sandbox.services import sandbox_ledger

    payments = [
        PaymentRow(no, status, total, refunded, reserved, next_check is not None)
        for no, status, total, refunded, reserved, next_check in Payment.objects.values_list(
            "out_trade_no", "status", "total_fee", "refunded_fee", "reserved_refund_fee", "next_check_at"
        )
    ]
    refunds = [
        RefundRow(no, fee, status, next_check is not None)
        for no, fee, status, next_check in Refund.objects.values_list(
            "payment__out_trade_no", "refund_fee", "status", "next_check_at"
        )
    ]
    per_number: Counter = Counter()
    for model, number in ((SandboxWechatOrder, "out_trade_no"), (SandboxUmpayOrder, "order_no")):
        for row in model.objects.values(number).annotate(n=Count("pk")):
            per_number[row[number]] += row["n"]
    report = check(payments, refunds, sandbox_ledger(), per_number)
    statuses = Counter(p.status for p in payments)
    refund_statuses = Counter(r.status for r in refunds)
    return report, statuses, refund_statuses


@dataclass
class Reconciliation:
    bills: int = 0
    rows: int = 0
    matched: int = 0
    carried: int = 0
    planted: list[tuple[str, str, str]] = field(default_factory=list)
    unexplained: list[dict[str, Any]] = field(default_factory=list)  # found, not planted
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # planted, not found
    not_reconciled: list[str] = field(default_factory=list)  # bills refused, not ready or unavailable


def reconcile_run(seed: int) -> Reconciliation:
    """The run's days through the channels' bills, as the daily job does: plant a few differences in the sandbox's
    bills (a payment left off, a payment one fen more, a refund one fen more), then reconcile every WeChat merchant's
    days of the run (the bill download over HTTP from the sandbox — v3 tradebill, the demo merchants having APIv3
    keys — which serves today so far: SANDBOX_BILLS_UNTIL_NOW; parse, match). Every difference found must be a
    planted one, and every planted one must be found."""
    from django.db.models import Max, Min
    from django.utils import timezone

    from payments.models import Payment, Refund
    from reconciliation import services as reconciliation
    from sandbox.services import sandbox_plant_bill_difference

    rng = random.Random(seed)
    result = Reconciliation()
    merchants = list(reconciliation.merchants_with_bills())
    ours = Payment.objects.filter(merchant__in=merchants)
    span = ours.aggregate(first=Min("created_at"), last=Max("paid_at"))
    if span["first"] is None:
        return result
    first, last = timezone.localdate(span["first"]), timezone.localdate(span["last"] or span["first"])
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    unrefunded = list(
        ours.filter(status="SUCCESS", refunded_fee=0, reserved_refund_fee=0).values_list("out_trade_no", flat=True)
    )
    refunded = list(
        Refund.objects.filter(payment__merchant__in=merchants, kind="REFUND", status="SUCCESS").values_list(
            "payment__out_trade_no", "out_refund_no"
        )
    )
    chosen = rng.sample(unrefunded, min(2, len(unrefunded)))
    for kind, (out_trade_no, refund_no), difference in zip(
        ("OMIT", "AMOUNT", "REFUND_AMOUNT"),
        [(no, "") for no in chosen] + rng.sample(refunded, min(1, len(refunded))),
        ("MISSING_THERE", "AMOUNT_DIFFERS", "REFUND_AMOUNT_DIFFERS"),
        strict=False,
    ):
        sandbox_plant_bill_difference(order_no=refund_no or out_trade_no, kind=kind)
        result.planted.append((difference, out_trade_no, refund_no))
    found: set[tuple[str, str, str]] = set()
    for merchant in merchants:
        for day in days:
            try:
                report = reconciliation.reconcile_day(merchant=merchant, bill_date=day)
            except reconciliation.BillProblem as exc:
                result.not_reconciled.append(f"{merchant.pk} {day}: {type(exc).__name__}: {exc}")
                continue
            result.bills += 1
            result.rows += report.rows
            result.matched += report.matched
            result.carried += report.carried
            for item in report.differences:
                key = (item["kind"], item["out_trade_no"], item["refund_no"])
                found.add(key)
                if key not in result.planted:
                    result.unexplained.append({"merchant": merchant.pk, "day": str(day), **item})
    result.missed = [key for key in result.planted if key not in found]
    return result


def start_webhooks(cluster: Cluster, *, shares: str, seed: int) -> tuple[Process, str]:
    """An endpoint for every merchant with a fault-run store (every payment and refund event), all on one chaotic
    receiver in a process of its own, started with their secrets (in its environment: never in a file or a log)."""
    from portal.models import Merchant
    from webhooks import services
    from webhooks.models import SUBSCRIBABLE

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events = [kind for kind in SUBSCRIBABLE if kind.startswith(WEBHOOK_EVENT_PREFIXES)]
    secrets_by_path = {}
    for merchant in Merchant.objects.filter(stores__devices__device_id__startswith="FAULT-").distinct():
        path = f"/hook/{merchant.pk}"
        _, secret = services.endpoint_create(merchant=merchant, url=base + path, events=events, user=None)
        secrets_by_path[path] = secret
    hold = float(TIMINGS["WEBHOOK_TIMEOUT"]) + 1.5  # a "timeout" answer holds the connection past the sender's timeout
    receiver = Process(
        "chaos-receiver",
        [PYTHON, "-m", "bench.chaos_receiver", "--port", str(port), "--log", str(cluster.logs / "chaos-receiver.jsonl"),
         "--shares", shares, "--hold", f"{hold:g}", "--seed", str(seed)],
        {**os.environ, "CHAOS_RECEIVER_SECRETS": json.dumps(secrets_by_path)},
        cluster.logs / "chaos-receiver.log",
    )  # fmt: skip
    receiver.start()
    wait_for_port(port)
    return receiver, base


def drain_webhooks(base: str, budget: float) -> dict[str, Any]:
    """The receiver recovers (2xx from now on); then, every 2 s, the deliveries waiting out a retry delay (their
    last attempt's answer recorded) are made due at once, until no delivery is pending or `budget` seconds passed. A
    delivery whose attempt is out (a lease: its answer not yet recorded, or never to be, its worker killed) is left
    to its worker or to the lease's end."""
    from django.db.models import Exists, OuterRef
    from django.utils import timezone

    from webhooks.models import WebhookAttempt, WebhookDelivery

    httpx.post(f"{base}/_control/recover", timeout=10).raise_for_status()
    started = time.monotonic()
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    answered = WebhookAttempt.objects.filter(delivery=OuterRef("pk"), number=OuterRef("attempts"))
    made_due, reported, left = 0, 0.0, 0
    while True:
        now = timezone.now()
        made_due += pending.filter(Exists(answered), next_attempt_at__gt=now).update(next_attempt_at=now)
        left = pending.count()
        waited = time.monotonic() - started
        if not left or waited > budget:
            break
        if waited - reported >= 15:
            reported = waited
            say(f"webhooks: {left} deliveries pending {waited:.0f} s after the receiver recovered")
        time.sleep(2)
    return {"seconds": time.monotonic() - started, "made_due": made_due, "pending_left": left}


def collect_webhook_invariants(receiver_log: Path):
    """The database's deliveries and attempts, the payments' and refunds' final states and the receiver's log, through
    bench.invariants.check_webhooks."""
    from urllib.parse import urlsplit

    from django.db.models import Count

    from bench.invariants import ReceivedRow, WebhookDeliveryRow, check_webhooks, expected_webhook_events
    from payments.models import Payment, Refund
    from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

    merchants = list(WebhookEndpoint.objects.values_list("merchant_id", flat=True))
    deliveries = []
    for url, event_id, kind, body, status, sequence in WebhookDelivery.objects.values_list(
        "endpoint__url", "event__event_id", "event__type", "event__body", "status", "event_id"
    ).iterator():
        number = json.loads(body)["data"].get("out_trade_no", "")
        deliveries.append(WebhookDeliveryRow(urlsplit(url).path, event_id, kind, number, status, sequence))
    entries = [json.loads(line) for line in receiver_log.read_text("utf-8").splitlines() if line.strip()]
    received = [
        ReceivedRow(e["path"], e["event"], e["attempt"], e["answer"], e["received"], e["answered"], e["signature"])
        for e in entries
    ]
    expected = expected_webhook_events(
        Payment.objects.filter(merchant_id__in=merchants).values_list("out_trade_no", "status"),
        Refund.objects.filter(payment__merchant_id__in=merchants).values_list("payment__out_trade_no", "status"),
    )
    recorded_2xx = {
        (urlsplit(url).path, event_id, number)
        for url, event_id, number in WebhookAttempt.objects.filter(status_code__gte=200, status_code__lt=300)
        .values_list("delivery__endpoint__url", "delivery__event__event_id", "number")
        .iterator()
    }
    report = check_webhooks(deliveries, received, expected, recorded_2xx)
    # By class of answer (2xx, 4xx, 5xx, timeout, reset), before and after the recovery.
    kind = lambda answer: f"{answer[0]}xx" if answer.isdigit() else answer  # noqa: E731
    answers = Counter(("after recovery: " if e["recovered"] else "") + kind(e["answer"]) for e in entries)
    attempts = dict(
        WebhookDelivery.objects.values_list("attempts")
        .annotate(n=Count("pk"))
        .order_by("attempts")
        .values_list("attempts", "n")
    )
    info = {
        "events": len({d.event_id for d in deliveries}),
        "deliveries": len(deliveries),
        "attempts logged": WebhookAttempt.objects.count(),
        "requests received": len(entries),
        "received, by answer": ", ".join(f"{k} {v}" for k, v in sorted(answers.items())),
        "deliveries by attempts made": ", ".join(f"{k}: {v}" for k, v in attempts.items()),
    }
    return report, info


def collect_alert_invariants():
    """Once more what the beat's alert evaluation does every ALERT_EVALUATE_SECONDS during the run (so the last
    payments to reach ATTENTION are looked at too), then bench.invariants.check_alerts over the ATTENTION alerts."""
    from alerts import rules
    from alerts.models import Alert
    from bench.invariants import check_alerts
    from payments.models import Payment, PaymentEvent, Refund

    rules.evaluate()
    in_attention = [f"payment:{pk}" for pk in Payment.objects.filter(status="ATTENTION").values_list("pk", flat=True)]
    in_attention += [f"refund:{pk}" for pk in Refund.objects.filter(status="ATTENTION").values_list("pk", flat=True)]
    ever = {
        f"payment:{pk}"
        for pk in PaymentEvent.objects.filter(to_status="ATTENTION").values_list("payment_id", flat=True)
    }
    ever |= {subject for subject in in_attention if subject.startswith("refund:")}  # only a person moves them on
    alerted = [
        key.removeprefix("attention:")
        for key in Alert.objects.filter(key__startswith="attention:").values_list("key", flat=True)
    ]
    return check_alerts(in_attention, ever, alerted), Alert.objects.count()


def configured_secrets(cluster: Cluster) -> list[str]:
    """Every secret this deployment holds: all encrypted fields of every model (channel keys, private keys, device
    secrets, the sandbox's own keys) plus SECRET_KEY and FIELD_ENCRYPTION_KEY."""
    from django.apps import apps

    from portal.fields import EncryptedTextField

    values = list(cluster.configured_secrets)
    for model in apps.get_models():
        names = [f.name for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
        for obj in model.objects.all().iterator() if names else []:
            for name in names:
                value = getattr(obj, name)
                if value:
                    values.append(value.reveal() if hasattr(value, "reveal") else str(value))
    return values


def server_errors_in_access_log(path: Path, *, except_503: bool = False) -> int:
    """Access log lines with a 5xx status (the product's server only: the sandbox's 500s are chaos), or with one
    other than 503 (an outage or a busy channel, answered in the API's shape). The status follows the quoted request
    line: uvicorn's lines end with it, gunicorn's own format goes on with the size."""
    if not path.exists():
        return 0
    status = re.compile(r'" (5\d\d)\b')
    return sum(
        1
        for line in path.read_text("utf-8", "replace").splitlines()
        if (match := status.search(line)) and not (except_503 and match.group(1) == "503")
    )


def upstream_trouble_seen() -> str:
    """What the product recorded from its upstream calls: the chaos (and the timeout scenarios) as it saw them."""
    from django.db.models import Count

    from payments.models import PaymentEvent

    codes = ["TIMEOUT", "NETWORK_ERROR", "CONNECT_ERROR", "BAD_SIGNATURE", "UNPARSEABLE", "HTTP_500"]
    rows = PaymentEvent.objects.filter(code__in=codes).values("code").annotate(n=Count("pk")).order_by("code")
    return ", ".join(f"{row['code']} {row['n']}" for row in rows) or "none"


def umpay_samples(limit: int = 20) -> list[dict[str, str]]:
    from urllib.parse import parse_qsl

    from payments.models import Payment, UmpayNotification

    samples = [
        dict(parse_qsl(body))
        for body in UmpayNotification.objects.filter(is_verified=True).values_list("body", flat=True)[:limit]
    ]
    if samples:
        return samples
    return [
        {"acqSpId": "Y471790403", "acqMerId": "41509208", "orderNo": no, "txnAmt": str(fee), "respCode": "00"}
        for no, fee in Payment.objects.filter(channel="UMPAY").values_list("out_trade_no", "total_fee")[:limit]
    ]


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'check'.ljust(width)} | count |", f"|{'-' * (width + 2)}|------:|"]
    lines += [f"| {name.ljust(width)} | {value!s:>5} |" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    global LOG
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--terminals", type=int, default=32)
    parser.add_argument("--chaos", default="0.15", help="SANDBOX_CHAOS for the sandbox: fraction[:kinds]")
    parser.add_argument("--scenario-share", type=float, default=0.3, help="share of payments with scenario amounts")
    parser.add_argument("--celery-workers", type=int, default=2)
    parser.add_argument("--kill-every", default="4,12", help="seconds between worker kills: min,max")
    parser.add_argument("--outages", type=int, default=2, help="times each outage happens during the load")
    parser.add_argument("--outage-gap", type=float, default=30, help="seconds of normal service before each outage")
    parser.add_argument("--refund-every", type=float, default=0.5)
    parser.add_argument("--max-load-seconds", type=float, default=3600)
    parser.add_argument("--resolution-seconds", type=float, default=420, help="longest wait for everything to settle")
    parser.add_argument("--max-examples", type=int, default=60, help="schemathesis examples per operation and mode")
    parser.add_argument("--notifications", type=int, default=120)
    parser.add_argument(
        "--webhook-chaos", default="2xx=0.55,5xx=0.2,timeout=0.1,reset=0.15",
        help="the chaotic receiver's answers until it recovers: shares of 2xx, 5xx, timeout, reset",
    )  # fmt: skip
    parser.add_argument(
        "--webhook-seconds", type=float, default=300, help="longest wait for the webhook backlog after the recovery"
    )
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--name", default="faults")
    args = parser.parse_args(argv)

    run_dir = ROOT / "var" / "faults" / datetime.now().strftime("%Y%m%d-%H%M%S")
    cluster = Cluster(
        run_dir,
        # The fuzzer reads /api/schema/ of this production-settings cluster without signing in.
        extra_env={**TIMINGS, **WEBHOOK_ENV, "API_SCHEMA_PUBLIC": "true"},
        # The sandbox serves the run's own day's bill so far (reconciliation at the end of the run).
        sandbox_env={"SANDBOX_CHAOS": args.chaos, "SANDBOX_BILLS_UNTIL_NOW": "true"},
        celery_workers=args.celery_workers,
    )
    LOG = cluster.logs / "faults.log"
    rng_seed = args.seed
    say(f"fault run {args.name}: {args.payments} payments, {args.terminals} terminals, chaos {args.chaos!r}, "
        f"seed {rng_seed}, run directory {run_dir.relative_to(ROOT)}")  # fmt: skip
    stats = Stats()
    results: dict[str, Any] = {"name": args.name, "args": vars(args), "timings": TIMINGS}
    started = time.monotonic()
    with cluster, contextlib.ExitStack() as running:
        cluster.start()
        django_setup(cluster)
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the report
        devices = prepare_devices(args.terminals)
        receiver, receiver_url = start_webhooks(cluster, shares=args.webhook_chaos, seed=rng_seed + 5)
        running.callback(receiver.stop)
        say(f"cluster up: app {cluster.app_url}, sandbox {cluster.sandbox_url}, {len(devices)} devices; webhooks to "
            f"a chaotic receiver ({args.webhook_chaos})")  # fmt: skip

        stop = threading.Event()
        low, high = (float(x) for x in args.kill_every.split(","))
        rotation = Rotation()
        helpers = [
            threading.Thread(target=killer, args=(stop, cluster, stats, (low, high), rng_seed + 1), daemon=True),
            threading.Thread(target=refunder, args=(stop, stats, args.refund_every, rng_seed + 2), daemon=True),
        ]
        rotator_thread = threading.Thread(target=rotator, args=(stop, stats, args.payments, rotation), daemon=True)
        rotator_thread.start()
        outage_thread = threading.Thread(
            target=outages, args=(stop, cluster, stats, args.outages, args.outage_gap, rng_seed + 3), daemon=True
        )
        for thread in [*helpers, outage_thread]:
            thread.start()
        deadline = time.monotonic() + args.max_load_seconds
        load_started = time.monotonic()
        with ThreadPoolExecutor(len(devices)) as pool:
            futures = [
                pool.submit(
                    drive_terminal,
                    device,
                    cluster=cluster,
                    stats=stats,
                    total=args.payments,
                    deadline=deadline,
                    seed=rng_seed * 1000 + index,
                    scenario_share=args.scenario_share,
                )
                for index, device in enumerate(devices)
            ]
            last = 0.0
            while not all(f.done() for f in futures):
                time.sleep(1)
                if time.monotonic() - last > 15:
                    last = time.monotonic()
                    say(f"load: {stats.finished}/{args.payments} done, kills {sum(stats.kills.values())}, "
                        f"refunds {stats.refunds_created}")  # fmt: skip
            for future in futures:
                future.result()
        load_seconds = time.monotonic() - load_started
        if outage_thread.is_alive():
            say("load done before the outage plan: waiting for the remaining outages")  # shorten --outage-gap
            outage_thread.join()
        stop.set()
        for thread in helpers:
            thread.join(timeout=30)
        for name, process in cluster.processes.items():
            if not process.alive:
                say(f"restarting {name} for the resolution window")
                process.start()
        reconnect_database()
        say(f"load done in {load_seconds:.0f} s: {dict(stats.outcomes)}")

        from sandbox.models import SandboxWechatMerchant

        fuzz_device = devices[0]
        say("bad input: schemathesis against the terminal API (device-signed)")
        terminal_fuzz = badinput.fuzz_terminal_api(
            cluster.app_url,
            device_id=fuzz_device["device_id"],
            secret=fuzz_device["secret"],
            max_examples=args.max_examples,
            seed=rng_seed,
        )
        say(f"  {terminal_fuzz.as_dict()}")
        say("bad input: unsigned and garbled notifications")
        serial = SandboxWechatMerchant.objects.values_list("platform_certificate_serial", flat=True).first() or ""
        notification_fuzz = badinput.fuzz_notifications(
            cluster.app_url,
            umpay_samples=umpay_samples(),
            payscore_serial=serial,
            count=args.notifications,
            seed=rng_seed,
        )
        say(f"  {notification_fuzz.as_dict()}")

        # Resolution: at least the query window + reverse delay + two reverse backoffs, then until settled.
        minimum = float(TIMINGS["PAYMENT_QUERY_WINDOW"]) + float(TIMINGS["PAYMENT_REVERSE_NOT_BEFORE"]) + 15
        resolution_started = time.monotonic()
        while True:
            waited = time.monotonic() - resolution_started
            open_payments, open_refunds = unsettled()
            if (open_payments + open_refunds == 0 and waited >= minimum) or waited > args.resolution_seconds:
                break
            if int(waited) % 15 == 0:
                say(f"resolution: {open_payments} payments and {open_refunds} refunds open after {waited:.0f} s")
            time.sleep(1)
        resolution_seconds = time.monotonic() - resolution_started
        say(f"resolution window: {resolution_seconds:.0f} s")
        rotator_thread.join(timeout=200)  # the rotation is watched until the old certificate has expired
        report, statuses, refund_statuses = collect_invariants()
        say("reconciliation: the run's days through the channels' bills, with planted differences")
        books = reconcile_run(rng_seed + 4)
        say(f"  {books.bills} bills, {books.rows} rows, {books.matched} matched, planted {books.planted}")
        say("webhooks: the receiver recovers; waiting for the backlog")
        hooks_drained = drain_webhooks(receiver_url, args.webhook_seconds)
        say(f"  drained in {hooks_drained['seconds']:.0f} s ({hooks_drained['made_due']} retry waits made due, "
            f"{hooks_drained['pending_left']} pending left)")  # fmt: skip
        hooks, hooks_info = collect_webhook_invariants(cluster.logs / "chaos-receiver.jsonl")
        alerts, alerts_raised = collect_alert_invariants()
        serial_refusals, by_api = unknown_serial_refusals(), payments_by_api()
        trouble = upstream_trouble_seen()
        secret_values = configured_secrets(cluster)
        kills = {name: process.kills for name, process in cluster.processes.items() if process.kills}
    # Everything stopped: the logs are complete.
    from bench.secrets_scan import scan

    leaks = scan(sorted(cluster.logs.iterdir()), secret_values)
    app_5xx = server_errors_in_access_log(cluster.logs / "app-access.log", except_503=True)
    app_503 = server_errors_in_access_log(cluster.logs / "app-access.log") - app_5xx
    other_5xx_in_outages = [what for moment, what in stats.other_5xx if in_outage(moment, stats.outage_windows)]
    slowest_during, slowest_any = slowest_unavailable(stats.unavailable, stats.outage_windows)

    counts = report.counts()
    invariant_rows: list[tuple[str, Any]] = list(counts.items())
    invariant_rows.append(("secrets found in the run's logs", sum(n for _, n in leaks)))
    invariant_rows.append(("terminal API 5xx other than 503 (load + fuzzing)", app_5xx))
    invariant_rows.append(("terminal responses that were not JSON", len(stats.not_json)))
    invariant_rows.append(("5xx other than 503 during outages", len(other_5xx_in_outages)))
    invariant_rows.append(("requests still 503 after 120 s of retrying", stats.gave_up_503))
    invariant_rows.append(("schemathesis: responses 5xx", len(terminal_fuzz.server_errors)))
    invariant_rows.append(("schemathesis: 4xx without {code,message,details}", len(terminal_fuzz.bad_error_shape)))
    invariant_rows.append(("notifications unsigned/garbled accepted", len(notification_fuzz.accepted)))
    invariant_rows.append(("duplicate submissions not answered 201 + 200", len(stats.duplicate_anomalies)))
    invariant_rows.append(("reconciliation: differences not explained by the run", len(books.unexplained)))
    invariant_rows.append(("reconciliation: planted differences not found", len(books.missed)))
    invariant_rows.append(("reconciliation: bills not reconciled (refused, not ready)", len(books.not_reconciled)))
    invariant_rows += list(hooks.counts().items())
    invariant_rows += list(alerts.counts().items())
    invariant_rows.append(("v3 answers refused for an unknown platform key serial", serial_refusals))
    invariant_rows.append(
        (
            "platform certificate rotation not taken up by itself (new not stored before the switch, old kept)",
            rotation_failures(rotation),
        )
    )
    failed = [name for name, value in invariant_rows if not name.startswith("  ") and value != 0]
    info_rows: list[tuple[str, Any]] = [
        ("payments driven", stats.finished),
        ("payments in the database", sum(statuses.values())),
        ("  WeChat Pay over API v2 / over API v3 / UMF", by_api),
        ("platform certificate rotation (v3 provider)", rotation_text(rotation)),
        ("  by status", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))),
        ("refunds issued / refused", f"{stats.refunds_created} / {sum(stats.refunds_refused.values())}"),
        ("  refunds by status", ", ".join(f"{k} {v}" for k, v in sorted(refund_statuses.items()))),
        ("ATTENTION (a person settles; scenario 109 REVERSE_EXPIRE)", len(report.attention)),
        ("alerts raised (every rule)", alerts_raised),
        ("  of which charged upstream", len(report.attention_charged_there)),
        ("duplicate submissions (pairs)", stats.duplicate_pairs),
        ("  answered 200 + 200 after a 503 was repeated", stats.duplicate_pairs_after_503),
        ("cancels by terminals", stats.cancels),
        ("outages", ", ".join(f"{k} {v}" for k, v in stats.outages.items()) or "0"),
        ("terminal answers by status", ", ".join(f"{k} {v}" for k, v in sorted(stats.responses.items()))),
        (
            "  503 repeated by terminals, by code",
            ", ".join(f"{k} {v}" for k, v in sorted(stats.retries_503.items())) or "0",
        ),
        ("  503 in the access log (outages, busy channel)", app_503),
        ("  slowest 503 SERVICE_UNAVAILABLE to a request sent in an outage", f"{slowest_during:.2f} s"),
        ("  slowest 503 SERVICE_UNAVAILABLE, requests in flight included", f"{slowest_any:.2f} s"),
        ("upstream trouble the product met (chaos + scenarios)", trouble),
        ("sandbox answers 5xx (chaos)", server_errors_in_access_log(cluster.logs / "sandbox-access.log")),
        ("SIGKILLs", ", ".join(f"{k} {v}" for k, v in sorted(kills.items())) or "0"),
        ("exited by themselves, started again", ", ".join(f"{k} {v}" for k, v in sorted(stats.exited.items())) or "0"),
        ("driver errors", ", ".join(f"{k} {v}" for k, v in stats.driver_errors.items()) or "0"),
        ("schemathesis requests (operations)", f"{terminal_fuzz.requests} ({terminal_fuzz.operations})"),
        ("notifications sent", notification_fuzz.sent),
        (
            "reconciliation: bills, rows, matched, carried, planted",
            f"{books.bills}, {books.rows}, {books.matched}, {books.carried}, {len(books.planted)}",
        ),
        (
            "webhook events / deliveries / attempts logged",
            f"{hooks_info['events']} / {hooks_info['deliveries']} / {hooks_info['attempts logged']}",
        ),
        *hooks.info().items(),
        ("  deliveries by attempts made", hooks_info["deliveries by attempts made"]),
        ("webhook requests at the chaotic receiver", hooks_info["requests received"]),
        ("  by answer", hooks_info["received, by answer"]),
        (
            "webhook backlog after the recovery: seconds, retry waits made due",
            f"{hooks_drained['seconds']:.0f}, {hooks_drained['made_due']}",
        ),
        ("load seconds / resolution seconds", f"{load_seconds:.0f} / {resolution_seconds:.0f}"),
        ("total seconds", f"{time.monotonic() - started:.0f}"),
    ]
    invariants_md = table(invariant_rows)
    info_md = table(info_rows).replace("| check", "| what ", 1)
    say("\nInvariants (each must be 0):\n" + invariants_md + "\n\nThe run:\n" + info_md)
    details = {
        "not_final": report.not_final[:20],
        "money": (
            report.charged_there_failed_here
            + report.reversed_there_success_here
            + report.amount_differs
            + report.unknown_here_charged_there
        )[:20],
        "double_charges": report.double_charges[:20],
        "refunds_exceeding": report.refunds_exceeding[:20],
        "secret_leaks": leaks,
        "duplicate_anomalies": stats.duplicate_anomalies[:20],
        "not_json": stats.not_json[:20],
        "other_5xx": [what for _, what in stats.other_5xx][:20],
        "reconciliation_unexplained": books.unexplained[:20],
        "reconciliation_missed": books.missed,
        "reconciliation_not_reconciled": books.not_reconciled[:20],
        "webhooks_not_delivered": hooks.not_delivered[:20],
        "webhooks_missing_events": hooks.missing_events[:20],
        "webhooks_2xx_seen_twice": hooks.seen_twice_after_recorded_2xx[:20],
        "webhooks_bad_signatures": hooks.bad_signatures[:20],
        "webhooks_refund_before_payment": hooks.refund_before_payment[:20],
        "webhooks_at_least_once_duplicates": hooks.at_least_once_duplicates[:20],
        "alerts_not_raised": alerts.not_alerted[:20],
        "alerts_raised_twice": alerts.alerted_twice[:20],
        "alerts_never_in_attention": alerts.alerted_never_in_attention[:20],
    }
    if failed:
        say("FAILED: " + "; ".join(failed))
        say(json.dumps(details, ensure_ascii=False, indent=1))
    results.update(
        {
            "finished_at": datetime.now().isoformat(timespec="seconds"),
            "machine": machine(),
            "invariants": dict(invariant_rows),
            "run": dict(info_rows),
            "terminal_fuzz": terminal_fuzz.as_dict(),
            "notification_fuzz": notification_fuzz.as_dict(),
            "details": details,
            "passed": not failed,
            "run_dir": str(run_dir.relative_to(ROOT)),
        }
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str) + "\n")
    (out / f"{args.name}.md").write_text(
        f"# {args.name} — {results['finished_at']}\n\nMachine: {results['machine']}\n\n"
        f"## Invariants (each must be 0)\n\n{invariants_md}\n\n## The run\n\n{info_md}\n"
    )
    say(f"results: bench/results/{args.name}.json and .md; logs in {run_dir.relative_to(ROOT)}/logs")
    return 1 if failed else 0


def machine() -> str:
    import os
    import platform

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {system}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
