"""The capacity scenarios of `make bench`: paced terminals following the real payment sequence, healthy and degraded
upstream, and many long-polls held open at once on one node.

A payment is what a checkout lane does: POST /api/terminal/v1/payments, then, while the answer is not `is_final`,
GET payments/{out_trade_no}?wait=10 until it is. Payments arrive at an offered rate (a Poisson process, or one every
1/rate s; random phase) for the scenario's seconds, each on an idle terminal (device); the scenario ends when every
payment has its final answer (or FINAL_WITHIN_SECONDS passed). Password users (the sandbox's amount code 101:
USERPAYING, paid SANDBOX_SETTLE_SECONDS later) wait for the worker's query to find the payment made. In a degraded
scenario a share of upstream calls is answered only after the product's read timeout (bench.views.set_upstream): the
product has to query or reverse to learn their outcome.

The load generator is asyncio (aiohttp on uvloop) in spawned processes: a waiting terminal costs it a coroutine and a
connection, not a thread. (httpx's AsyncClient was measured first and is not fit for this: with a thousand connections
open it cost the generator ~16 ms of CPU per request, aiohttp 0.7 ms; with httpx the generator, not the server, made
the long-polls late.) While the load runs, this process samples PostgreSQL's client connections and the web
tier's memory, and a signed-in console session loads the dashboard every DASHBOARD_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import random
import re
import resource
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from bench.measure import SERVER_PARTS, children_cpu, percentile
from payments.terminal_client import authorization_header

PAYMENTS_PATH = "/api/terminal/v1/payments"
PASSWORD_CODE = 101  # the sandbox's USERPAYING_THEN_SUCCESS: the user enters a password and pays a little later
POLL_WAIT_SECONDS = 10  # a terminal's GET payments/{no}?wait= while its payment is not final
# A terminal gives up on one request after this long: the longest legitimate answer is a payment call that ran into
# its 10 s timeout followed by POST's 5 s wait for an outcome, or a 10 s long-poll.
REQUEST_TIMEOUT_SECONDS = 30
# A payment without a final answer this long after its POST counts as not final: the product settles every payment
# within its query window and reverse (~45 s with the defaults, a reverse refused while the user pays included).
FINAL_WITHIN_SECONDS = 90
# A long-poll not answered within its wait plus this long counts as timed out.
LONG_POLL_GRACE_SECONDS = 10
SPAWN_LEAD_SECONDS = 3  # the load processes start (imports, client) before the scenario's clock starts
SAMPLE_SECONDS = 0.5
DASHBOARD_SECONDS = 0.5  # the console session loads the dashboard this often during a scenario
CONSOLE_USER = "demo-provider"  # seed_demo's provider admin, signed in with the demo's published password
# Client connections by process (the cluster's processes set PGAPPNAME), without the sampling connection itself.
CONNECTIONS_SQL = (
    "SELECT application_name, count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY application_name"
)


@dataclass(frozen=True)
class Scenario:
    rate: float  # payments per second offered
    password_share: float = 0.0  # of the payments: users who confirm with a password (amount code 101)
    timeout_share: float = 0.0  # of the upstream calls: answered only after the product's read timeout

    @property
    def key(self) -> str:
        kind = "degraded" if self.timeout_share else "healthy"
        return f"{kind}_{self.rate:g}ps_password{self.password_share * 100:g}"

    @property
    def label(self) -> str:
        text = f"{self.rate:g}/s, {self.password_share * 100:g} % password"
        if self.timeout_share:
            text += f", degraded: {self.timeout_share * 100:g} % of upstream calls time out"
        return text


def plan(rates: list[float], password_share: float, timeout_share: float) -> list[Scenario]:
    """One round's scenarios, interleaved at each rate: healthy, with password users, degraded upstream."""
    return [
        scenario
        for rate in rates
        for scenario in (
            Scenario(rate),
            Scenario(rate, password_share=password_share),
            Scenario(rate, timeout_share=timeout_share),
        )
    ]


def arrivals(rate: float, seconds: float, rng: random.Random, *, poisson: bool) -> list[float]:
    """When payments start, in seconds from the scenario's start (within [0, seconds)), at `rate` per second: a
    Poisson process (many independent lanes: exponential gaps) or one every 1/rate s; a random phase either way."""
    if rate <= 0:
        return []
    if poisson:
        times, at = [], rng.expovariate(rate)
        while at < seconds:
            times.append(at)
            at += rng.expovariate(rate)
        return times
    gap = 1 / rate
    first = rng.uniform(0, gap)
    return [first + n * gap for n in range(math.ceil((seconds - first) / gap))]


def payment_amount(rng: random.Random, *, password: bool) -> int:
    """Whole yuan (the sandbox answers SUCCESS at once), or ending in the password code."""
    return rng.randint(1, 300) * 1000 + (PASSWORD_CODE if password else 0)


def raise_open_files(needed: int) -> None:
    """Every open request holds a socket: lift the soft descriptor limit to `needed` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


# --- the load generator (runs in spawned processes) ------------------------------------------------------------


def _client(app_url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> aiohttp.ClientSession:
    # No connection limit: each waiting terminal holds a connection of its own, as a real one does.
    return aiohttp.ClientSession(
        base_url=app_url,
        connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    )


async def _call(
    client: aiohttp.ClientSession, device: dict[str, str], method: str, path: str, query: dict | None, body: bytes,
    errors: list[str],
) -> tuple[int, dict | None, float]:  # fmt: skip
    """One device-signed request: (HTTP status, or 0 without an answer; the JSON answer when 2xx; the Retry-After
    seconds of a refusal, else 0). A failure's kind is appended to `errors` (an error answer's code with it)."""
    path_with_query = path + ("?" + urlencode(query) if query else "")
    headers = {
        "Content-Type": "application/json",
        "Authorization": authorization_header(
            device_id=device["device_id"], secret=device["secret"], method=method, path_with_query=path_with_query,
            body=body,
        ),
    }  # fmt: skip
    try:
        async with client.request(method, path_with_query, data=body or None, headers=headers) as response:
            status, content = response.status, await response.read()
            retry_after = response.headers.get("Retry-After", 0)
    except TimeoutError:
        errors.append("timeout")
        return 0, None, 0.0
    except aiohttp.ClientError as exc:
        errors.append(f"connection: {type(exc).__name__}")
        return 0, None, 0.0
    try:
        answer = json.loads(content)
    except ValueError:
        answer = None
    if not 200 <= status < 300:
        code = answer.get("code", "") if isinstance(answer, dict) else ""
        errors.append(f"HTTP {status} {code}".strip())
        return status, None, float(retry_after)
    if answer is None:
        errors.append("unreadable answer")
    return status, answer, 0.0


async def payment_sequence(client: aiohttp.ClientSession, device: dict[str, str], amount: int) -> dict[str, Any]:
    """POST payments, then GET payments/{no}?wait= while the answer is not final. `seconds`: from the POST sent to
    the final answer read (None without one); `status`: the final status, or NOT_CREATED / NO_FINAL_ANSWER."""
    from payments.simulator import random_payment_code

    # The terminal numbers the order itself, so it can still ask for it after a POST whose answer it did not get.
    number = "CAP" + secrets.token_hex(12)
    body = json.dumps(
        {"out_trade_no": number, "total_fee": amount, "body": "capacity", "auth_code": random_payment_code(),
         "method": "CODE"}
    ).encode()  # fmt: skip
    errors: list[str] = []
    started = time.perf_counter()
    status, answer, retry_after = await _call(client, device, "POST", PAYMENTS_PATH, None, body, errors)
    requests = 1
    while retry_after and time.perf_counter() - started < FINAL_WITHIN_SECONDS:
        # Refused before anything was created (503 CHANNEL_BUSY): the terminal sends it again when it was told to.
        await asyncio.sleep(retry_after)
        status, answer, retry_after = await _call(client, device, "POST", PAYMENTS_PATH, None, body, errors)
        requests += 1
    while answer is None or not answer["is_final"]:
        if status == 404:  # the POST failed before the order existed
            return {"seconds": None, "status": "NOT_CREATED", "errors": errors, "requests": requests, "number": number}
        if time.perf_counter() - started > FINAL_WITHIN_SECONDS:
            return {
                "seconds": None, "status": "NO_FINAL_ANSWER", "errors": errors, "requests": requests, "number": number
            }  # fmt: skip
        if answer is None:
            await asyncio.sleep(1)  # a failed request: the terminal asks again after a moment
        query = {"wait": str(POLL_WAIT_SECONDS)}
        status, answer, _ = await _call(client, device, "GET", f"{PAYMENTS_PATH}/{number}", query, b"", errors)
        requests += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "status": answer["status"], "errors": errors, "requests": requests, "number": number}


async def _terminal(
    client: aiohttp.ClientSession, idle: deque, devices: list[dict[str, str]], rng: random.Random, password: bool
) -> dict[str, Any]:
    """One payment on an idle terminal."""
    shared = not idle  # every terminal is busy: sized so that this stays 0 (counted in case it does not)
    device = rng.choice(devices) if shared else idle.popleft()
    try:
        record = await payment_sequence(client, device, payment_amount(rng, password=password))
    finally:
        if not shared:
            idle.append(device)
    return {**record, "password": password, "shared_terminal": shared}


async def _terminals(
    *, app_url: str, devices: list[dict[str, str]], rate: float, password_share: float, seconds: float,
    start_at: float, seed: int, poisson: bool,
) -> list[dict[str, Any]]:  # fmt: skip
    rng = random.Random(seed)
    idle = deque(devices)  # a terminal makes one payment at a time
    schedule = arrivals(rate, seconds, rng, poisson=poisson)
    async with _client(app_url) as client:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        begun = time.perf_counter()
        tasks = []
        for at in schedule:
            await asyncio.sleep(max(0.0, begun + at - time.perf_counter()))
            password = rng.random() < password_share
            tasks.append(asyncio.create_task(_terminal(client, idle, devices, rng, password)))
        return list(await asyncio.gather(*tasks))


def terminals_process(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One load process's share of a scenario: a record per payment."""
    import uvloop

    return uvloop.run(_terminals(**job))


async def _long_polls(
    *, app_url: str, polls: list[tuple[dict, str]], wait: float, start_at: float, ramp: float, until: float
) -> list[dict]:
    """Each terminal starts at a random moment of the first `ramp` seconds, then long-polls its order again as soon as
    it is answered (as a terminal whose payment is not final does), until `until`."""

    async def one(device: dict[str, str], number: str) -> dict[str, Any]:
        errors: list[str] = []
        sent = time.time() - start_at
        try:
            _, answer, _ = await asyncio.wait_for(
                _call(client, device, "GET", f"{PAYMENTS_PATH}/{number}", {"wait": f"{wait:g}"}, b"", errors),
                wait + LONG_POLL_GRACE_SECONDS,
            )
        except TimeoutError:
            errors.append("timeout")
            answer = None
        answered = time.time() - start_at if answer is not None else None
        return {"sent": sent, "answered": answered, "final": bool(answer and answer["is_final"]), "errors": errors}

    async def terminal(device: dict[str, str], number: str, offset: float) -> list[dict[str, Any]]:
        await asyncio.sleep(max(0.0, start_at + offset - time.time()))
        records = []
        while time.time() < until:
            records.append(await one(device, number))
            if records[-1]["answered"] is None:
                await asyncio.sleep(1)  # a failed request: the terminal asks again after a moment
        return records

    rng = random.Random(len(polls))
    # The client's own timeout is longer than the one asyncio.wait_for enforces, which counts from the request's start.
    async with _client(app_url, timeout=wait + 2 * LONG_POLL_GRACE_SECONDS) as client:
        parts = await asyncio.gather(*(terminal(device, number, rng.uniform(0, ramp)) for device, number in polls))
    return [record for part in parts for record in part]


def long_polls_process(job: dict[str, Any]) -> list[dict[str, Any]]:
    """One load process's share of the long-polling terminals: a record per request."""
    import uvloop

    return uvloop.run(_long_polls(**job))


# --- aggregation (pure) --------------------------------------------------------------------------------------------


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Payments' records → per kind of user (ordinary, password) the time to the final answer (ms, POST sent → final
    answer read) of those that got one; request errors by kind; outcomes. In a degraded scenario, "healthy" are the
    ordinary payments whose own payment call was answered in time: whether the slow calls of others delay them is
    what a degraded channel must not do (a payment whose own call timed out takes the timeout and a query anyway)."""
    out: dict[str, Any] = {"payments": len(records)}
    kinds = (
        ("ordinary", lambda r: not r["password"]),
        ("healthy", lambda r: not r["password"] and not r.get("own_call_timed_out")),
        ("password", lambda r: r["password"]),
    )
    out["own_call_timed_out"] = sum(1 for r in records if r.get("own_call_timed_out"))
    for kind, belongs in kinds:
        mine = [r for r in records if belongs(r)]
        times = [r["seconds"] * 1000 for r in mine if r["seconds"] is not None]
        out[kind] = {
            "payments": len(mine),
            "final": len(times),
            "p50_ms": percentile(times, 50),
            "p90_ms": percentile(times, 90),
            "p99_ms": percentile(times, 99),
            "max_ms": max(times, default=float("nan")),
        }
    out["not_final"] = sum(1 for r in records if r["seconds"] is None)
    out["outcomes"] = dict(Counter(r["status"] for r in records).most_common())
    out["requests"] = sum(r["requests"] for r in records)
    out["errors"] = dict(Counter(error for r in records for error in r["errors"]).most_common())
    out["shared_terminal"] = sum(1 for r in records if r["shared_terminal"])
    return out


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """The most (start, end) intervals open at one instant; one ending when another starts does not overlap it."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = current = 0
    for _, step in events:  # at equal times -1 sorts before +1
        current += step
        peak = max(peak, current)
    return peak


def summarize_long_polls(records: list[dict[str, Any]], wait: float) -> dict[str, Any]:
    """Long-polls on orders that stay unsettled: each should be answered (not final) once its wait is over, within
    wait + LONG_POLL_GRACE_SECONDS of being sent. An answer read later counts as a timeout: on saturated cores the
    generator's own timer fires late, and a few such answers still arrive."""
    limit = wait + LONG_POLL_GRACE_SECONDS
    answered = [r for r in records if r["answered"] is not None]
    seconds = [r["answered"] - r["sent"] for r in answered]
    on_time = sum(1 for value in seconds if value <= limit)
    # An answer after (about) the whole wait was held by the server for the wait just before it.
    held = [(r["answered"] - wait, r["answered"]) for r in answered if r["answered"] - r["sent"] >= wait - 0.5]
    failed = [r for r in records if r["answered"] is None]
    errors = Counter(error for r in failed if "timeout" not in r["errors"] for error in r["errors"])
    return {
        "requests": len(records),
        "answered": on_time,
        "answered_final": sum(1 for r in answered if r["final"]),
        "held_full_wait": len(held),
        "timeouts": len(answered) - on_time + sum(1 for r in failed if "timeout" in r["errors"]),
        "answered_late": len(answered) - on_time,
        "errors": dict(errors.most_common()),
        "last_sent_s": max((r["sent"] for r in records), default=float("nan")),
        "answer_p50_s": percentile(seconds, 50),
        "answer_p99_s": percentile(seconds, 99),
        "answer_max_s": max(seconds, default=float("nan")),
        # A request never answered was open until the client gave up on it.
        "peak_open_client": peak_concurrency(
            [(r["sent"], r["sent"] + limit if r["answered"] is None else r["answered"]) for r in records]
        ),
        "peak_held_server": peak_concurrency(held),
    }


# --- the console and the samplers ------------------------------------------------------------------------------


class Console:
    """A console user signed in through the login form, as a person would. Production marks the session and CSRF
    cookies Secure, which httpx rightly does not send over the cluster's plain HTTP: this client keeps them itself."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS)
        self.cookies: dict[str, str] = {}
        form = self.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        data = {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1) if token else ""}
        answer = self.request("POST", "/login/", data=data)
        if answer.status_code != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"console sign-in as {username} failed: HTTP {answer.status_code}")
        home = self.get("/")
        if "two-factor" in home.headers.get("location", ""):
            # The demo's logins have an authenticator enrolled with the published demo key: the second step.
            from django_otp.oath import totp

            from sandbox.management.commands.seed_demo import DEMO_TOTP_KEY

            step_path = home.headers["location"]
            step = self.get(step_path)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', step.text)
            code = f"{totp(bytes.fromhex(DEMO_TOTP_KEY)):06d}"
            data = {"code": code, "csrfmiddlewaretoken": token.group(1) if token else ""}
            answer = self.request("POST", step_path, data=data)
            if answer.status_code != 302 or "two-factor" in answer.headers.get("location", ""):
                raise RuntimeError(f"console second factor for {username} failed: HTTP {answer.status_code}")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}
        response = self.client.request(method, path, headers=headers, **kwargs)
        self.client.cookies.clear()  # they are kept (and sent) here instead, see above
        for header in response.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def close(self) -> None:
        self.client.close()


class Sampler:
    """From `start` to `until` (Unix times): every SAMPLE_SECONDS, PostgreSQL's client connections by process and
    the web tier's memory (the app's process group); with a console session, the dashboard (`/`) every
    DASHBOARD_SECONDS."""

    def __init__(self, cluster, console: Console | None, start: float, until: float) -> None:
        self.cluster, self.console, self.start, self.until = cluster, console, start, until
        self.connections: list[int] = []  # every server process's (the harness's own excluded)
        self.web_connections: list[int] = []
        self.web_busy: list[int] = []  # of those, not idle: in a query or a transaction
        self.web_rss: list[int] = []
        self.dashboard_ms: list[float] = []
        self.dashboard_errors: Counter = Counter()
        targets = [self._server] + ([self._dashboard] if console is not None else [])
        self.threads = [threading.Thread(target=target, daemon=True) for target in targets]

    def __enter__(self) -> Sampler:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        for thread in self.threads:
            thread.join()

    def _server(self) -> None:
        import psycopg

        from bench.cluster import HARNESS

        with psycopg.connect(self.cluster.database_url, autocommit=True) as connection:
            time.sleep(max(0.0, self.start - time.time()))
            while time.time() < self.until:
                rows = {name: (count, busy) for name, count, busy in connection.execute(CONNECTIONS_SQL)}
                self.connections.append(sum(count for name, (count, _) in rows.items() if name != HARNESS))
                self.web_connections.append(rows.get("app", (0, 0))[0])
                self.web_busy.append(rows.get("app", (0, 0))[1])
                self.web_rss.append(self.cluster.rss_bytes("app"))
                time.sleep(SAMPLE_SECONDS)

    def _dashboard(self) -> None:
        at = self.start
        while at < self.until:
            time.sleep(max(0.0, at - time.time()))
            started = time.perf_counter()
            try:
                status = str(self.console.get("/").status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            if status == "200":
                self.dashboard_ms.append((time.perf_counter() - started) * 1000)
            else:
                self.dashboard_errors[status] += 1
            at += DASHBOARD_SECONDS  # a slow answer delays the next fetch only by what it ran over

    def summary(self) -> dict[str, Any]:
        return {
            "pg_connections_max": max(self.connections, default=0),
            "pg_web_connections_max": max(self.web_connections, default=0),
            "pg_web_busy_max": max(self.web_busy, default=0),
            "web_rss_max_mib": max(self.web_rss, default=0) / 2**20,
            "dashboard_ms": self.dashboard_ms,
            "dashboard_errors": dict(self.dashboard_errors),
        }


# --- running them ------------------------------------------------------------------------------------------------


def register_devices(count: int) -> list[dict[str, str]]:
    """`count` devices in the demo's WeChat direct store: one per terminal that may be paying at the same time."""
    from portal import services
    from portal.models import Store

    store = Store.objects.get(store_id="SZ-NS-001")
    devices = []
    for index in range(count):
        device, secret = services.device_register(
            store=store, device_id=f"CAP-{index:04d}", actor=None, actor_label="bench"
        )
        devices.append({"device_id": device.device_id, "secret": secret})
    return devices


def run_scenario(
    cluster, scenario: Scenario, *, devices: list[dict[str, str]], seconds: float, processes: int, poisson: bool,
    latency_ms: float, console: Console, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One round of `scenario`: the payments' records, the samples, and the CPU each part of the cluster used from
    the first payment to the last final answer."""
    from bench.views import set_upstream

    set_upstream(latency_ms=latency_ms, timeout_share=scenario.timeout_share)
    start_at = time.time() + SPAWN_LEAD_SECONDS
    jobs = [
        {
            "app_url": cluster.app_url,
            "devices": devices[index::processes],
            "rate": scenario.rate / processes,
            "password_share": scenario.password_share,
            "seconds": seconds,
            "start_at": start_at,
            "seed": seed * 10 + index,
            "poisson": poisson,
        }
        for index in range(processes)
    ]
    cpu_before, load_before = cluster.cpu_seconds(), children_cpu()
    with (
        Sampler(cluster, console, start_at, start_at + seconds) as sampler,
        multiprocessing.get_context("spawn").Pool(processes) as pool,
    ):
        parts = pool.map(terminals_process, jobs)
    cpu_after = cluster.cpu_seconds()
    records = [record for part in parts for record in part]
    mark_own_timeouts(records)
    return {
        "records": records,
        "seconds": seconds,
        "wall_seconds": time.time() - start_at,
        **sampler.summary(),
        "cpu_seconds": {part: cpu_after[part] - cpu_before[part] for part in cpu_after},
        "load_generator_cpu_seconds": children_cpu() - load_before,
    }


def mark_own_timeouts(records: list[dict[str, Any]]) -> None:
    """Sets `own_call_timed_out` on each payment whose payment call (micropay) timed out, from its own timeline."""
    from payments.models import PaymentEvent

    timed_out = set(
        PaymentEvent.objects.filter(
            action="micropay", code="TIMEOUT", payment__out_trade_no__in=[r["number"] for r in records]
        ).values_list("payment__out_trade_no", flat=True)
    )
    for record in records:
        record["own_call_timed_out"] = record["number"] in timed_out


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A scenario over its rounds: every payment's and dashboard fetch's latency pooled, the samples' maxima, CPU per
    payment from the totals; the main figures of each round kept for their spread."""
    records = [record for round_ in rounds for record in round_["records"]]
    summary = summarize(records)
    payments = max(1, len(records))
    dashboard = [ms for round_ in rounds for ms in round_["dashboard_ms"]]
    cpu = {part: sum(r["cpu_seconds"][part] for r in rounds) * 1000 / payments for part in rounds[0]["cpu_seconds"]}
    cpu["load generator"] = sum(r["load_generator_cpu_seconds"] for r in rounds) * 1000 / payments
    summary.update(
        {
            "offered_per_second": len(records) / sum(r["seconds"] for r in rounds),
            "dashboard": {
                "fetches": len(dashboard),
                "p50_ms": percentile(dashboard, 50),
                "p99_ms": percentile(dashboard, 99),
                "errors": dict(sum((Counter(r["dashboard_errors"]) for r in rounds), Counter())),
            },
            "pg_connections_max": max(r["pg_connections_max"] for r in rounds),
            "pg_web_connections_max": max(r["pg_web_connections_max"] for r in rounds),
            "pg_web_busy_max": max(r["pg_web_busy_max"] for r in rounds),
            "web_rss_max_mib": max(r["web_rss_max_mib"] for r in rounds),
            "cpu_ms_per_payment": cpu,
            "server_cpu_ms_per_payment": sum(cpu[part] for part in SERVER_PARTS),
            "rounds": [
                {
                    "payments": len(r["records"]),
                    "ordinary_p99_ms": summarize(r["records"])["ordinary"]["p99_ms"],
                    "healthy_p99_ms": summarize(r["records"])["healthy"]["p99_ms"],
                    "dashboard_p99_ms": percentile(r["dashboard_ms"], 99),
                    "wall_seconds": r["wall_seconds"],
                }
                for r in rounds
            ],
        }
    )
    return summary


def headline_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures of a `combine`d scenario that the webhook and metrics benchmarks report for each of their modes."""
    return {
        "payments": stats["payments"],
        "not_final": stats["not_final"],
        "errors": stats["errors"],
        "p50_ms": stats["ordinary"]["p50_ms"],
        "p99_ms": stats["ordinary"]["p99_ms"],
        "rounds_p99_ms": [r["ordinary_p99_ms"] for r in stats["rounds"]],
        "server_cpu_ms_per_payment": stats["server_cpu_ms_per_payment"],
        "cpu_ms_per_payment": stats["cpu_ms_per_payment"],
    }


def hold_unsettled_orders(devices: list[dict[str, str]], count: int) -> list[tuple[dict[str, str], str]]:
    """`count` orders that stay PAYING for the whole long-poll test: inserted by the product's own service as a POST
    would (claimed for sending), never sent upstream, their next check moved an hour out so the sweeper leaves them
    alone. Real never-paid orders (amount code 102) each cost a payment call and a query every few seconds and
    settle within ~45 s: on 2 cores 2,000 of them cannot be made fast enough to be open all at once."""
    from django.db import transaction
    from django.utils import timezone

    from payments import services
    from payments.models import Payment
    from payments.simulator import random_payment_code
    from portal.models import Device

    by_id = {
        device.device_id: device
        for device in Device.objects.select_related("store__merchant").filter(
            device_id__in=[spec["device_id"] for spec in devices]
        )
    }
    held: list[tuple[dict[str, str], str]] = []
    for index in range(count):
        spec = devices[index % len(devices)]
        data = services.PaymentInput(total_fee=1000, body="long-poll", auth_code=random_payment_code(), method="CODE")
        with transaction.atomic():  # its lease would otherwise end (and the sweeper query it) before the test does
            payment, _ = services.payment_create(device=by_id[spec["device_id"]], data=data)
            Payment.objects.filter(pk=payment.pk).update(next_check_at=timezone.now() + timedelta(hours=1))
        held.append((spec, payment.out_trade_no))
    return held


def run_long_polls(
    cluster, devices: list[dict[str, str]], *, count: int, wait: float, ramp: float, seconds: float, processes: int
) -> dict[str, Any]:
    """`count` terminals long-polling (GET payments/{no}?wait=) orders that stay unsettled, starting within the first
    `ramp` seconds and asking again as soon as answered, for `seconds`: once all have started, all `count` are
    open at once. How many requests are answered, time out or fail; the web tier's memory before and during;
    PostgreSQL's connections."""
    held = hold_unsettled_orders(devices, count)
    time.sleep(2)  # what creating them started (pool connections, the sweeper's pass) settles first
    rss_before = cluster.rss_bytes("app")
    start_at = time.time() + SPAWN_LEAD_SECONDS
    until = start_at + seconds
    jobs = [
        {
            "app_url": cluster.app_url, "polls": held[index::processes], "wait": wait, "start_at": start_at,
            "ramp": ramp, "until": until,
        }
        for index in range(processes)
    ]  # fmt: skip
    cpu_before, load_before = cluster.cpu_seconds(), children_cpu()
    with (
        Sampler(cluster, None, start_at, until + wait) as sampler,
        multiprocessing.get_context("spawn").Pool(processes) as pool,
    ):
        parts = pool.map(long_polls_process, jobs)
    app_cpu = cluster.cpu_seconds()["app"] - cpu_before["app"]
    load_cpu = children_cpu() - load_before
    samples = sampler.summary()
    return {
        **summarize_long_polls([record for part in parts for record in part], wait),
        "terminals": count,
        "ramp_seconds": ramp,
        "seconds": seconds,
        "wait_seconds": wait,
        "web_rss_before_mib": rss_before / 2**20,
        "web_rss_max_mib": samples["web_rss_max_mib"],
        "pg_connections_max": samples["pg_connections_max"],
        "pg_web_connections_max": samples["pg_web_connections_max"],
        "pg_web_busy_max": samples["pg_web_busy_max"],
        "app_cpu_seconds": app_cpu,
        "load_generator_cpu_seconds": load_cpu,
    }


# --- report ------------------------------------------------------------------------------------------------------


def _number(value: float, digits: int = 0) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"  # NaN: nothing measured


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counts.items()) or "0"


def markdown(capacity: dict[str, Any]) -> list[str]:
    """The capacity section of bench.md."""
    settings = capacity["settings"]
    fetches = max((stats["dashboard"]["fetches"] for stats in capacity["scenarios"].values()), default=0)
    lines = [
        "## Capacity: paced terminals, the real payment sequence",
        "",
        f"{settings['rounds']} interleaved rounds of {settings['seconds']:g} s of arrivals per scenario "
        f"({settings['arrivals']} arrivals, random phase), then until every payment has its final answer; upstream "
        f"latency {settings['latency_ms']:g} ms; {settings['devices']} terminals (devices), each on one payment at a "
        f"time; load generator: {settings['processes']} asyncio processes on the same cores. A payment: POST payments, "
        f"then GET payments/{{no}}?wait={POLL_WAIT_SECONDS} until `is_final`; time to final = POST sent → final "
        "answer read. Password users: amount code 101 (USERPAYING, paid SANDBOX_SETTLE_SECONDS later). Degraded: that "
        "share of upstream calls is answered only after the product's read timeout. Request errors: non-2xx, "
        "timeouts, connection errors, by kind. Dashboard: a signed-in console session loading `/` every "
        f"{DASHBOARD_SECONDS:g} s during "
        f"the arrivals ({fetches} fetches per scenario over the rounds: the p99 is about their maximum). PostgreSQL: "
        "client connections (pg_stat_activity), max over samples every "
        f"{SAMPLE_SECONDS:g} s — all server processes / the web tier's (busy: not idle). Web RSS: sum over the web "
        "tier's processes (gunicorn master + uvicorn workers). Server CPU: app + PostgreSQL + Redis + Celery per "
        "payment, first payment to last final answer.",
        "",
        "",
        "*Healthy*: the ordinary payments whose own payment call was answered in time (in a degraded scenario the "
        "others took the read timeout themselves: *timed out* counts them).",
        "",
        "| scenario | payments | ordinary: time to final p50 / p99 ms | healthy: p50 / p99 ms (timed out) "
        "| password: p50 s | not final | request errors "
        "| dashboard p50 / p99 ms | PG connections max: all / web (busy) | web RSS max MiB | server CPU ms / payment |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for stats in capacity["scenarios"].values():
        ordinary, password, dashboard = stats["ordinary"], stats["password"], stats["dashboard"]
        healthy = stats["healthy"]
        password_cell = _number(password["p50_ms"] / 1000, 1) if password["payments"] else "—"
        dashboard_errors = f" ({_counts(dashboard['errors'])} failed)" if dashboard["errors"] else ""
        lines.append(
            f"| {stats['label']} | {stats['payments']} | {_number(ordinary['p50_ms'])} / {_number(ordinary['p99_ms'])} "
            f"| {_number(healthy['p50_ms'])} / {_number(healthy['p99_ms'])} ({stats['own_call_timed_out']}) "
            f"| {password_cell} | {stats['not_final']} | {_counts(stats['errors'])} "
            f"| {_number(dashboard['p50_ms'])} / {_number(dashboard['p99_ms'])}{dashboard_errors} "
            f"| {stats['pg_connections_max']} / {stats['pg_web_connections_max']} ({stats['pg_web_busy_max']}) "
            f"| {_number(stats['web_rss_max_mib'])} | {_number(stats['server_cpu_ms_per_payment'], 1)} |"
        )
    lines.append("")
    for stats in capacity["scenarios"].values():
        lines.append(f"- {stats['label']}: outcomes {_counts(stats['outcomes'])}; {stats['requests']} requests.")
    return [*lines, ""]


def long_poll_markdown(polls: dict[str, Any]) -> list[str]:
    wait = polls["wait_seconds"]
    limit = wait + LONG_POLL_GRACE_SECONDS
    rows = [
        ("terminals long-polling", polls["terminals"]),
        (f"requests (GET payments/{{no}}?wait={wait:g})", polls["requests"]),
        (f"answered within {limit:g} s", polls["answered"]),
        ("  of which said final (the orders stay PAYING: 0 expected)", polls["answered_final"]),
        (f"timeouts (no answer within {limit:g} s)", polls["timeouts"]),
        ("  of which answered later", polls["answered_late"]),
        ("errors", _counts(polls["errors"])),
        (f"answers after the whole wait (≥ {wait - 0.5:g} s: the server held them)", polls["held_full_wait"]),
        ("most held by the server at once (those answers' waits overlapping)", polls["peak_held_server"]),
        ("most open at once (client side)", polls["peak_open_client"]),
        ("last request sent after (s)", _number(polls["last_sent_s"], 1)),
        ("answer time p50 / p99 / max (s)", " / ".join(
            _number(polls[key], 1) for key in ("answer_p50_s", "answer_p99_s", "answer_max_s"))),
        ("web tier RSS before / max during (MiB)",
         f"{_number(polls['web_rss_before_mib'])} / {_number(polls['web_rss_max_mib'])}"),
        ("PostgreSQL connections max: all / web (busy)",
         f"{polls['pg_connections_max']} / {polls['pg_web_connections_max']} ({polls['pg_web_busy_max']})"),
        ("web tier CPU for the test (s; per request, ms)",
         f"{_number(polls['app_cpu_seconds'], 1)} ({_number(polls['app_cpu_seconds'] * 1000 / polls['requests'], 1)})"),
        ("load generator CPU (s)", _number(polls["load_generator_cpu_seconds"], 1)),
    ]  # fmt: skip
    return [
        f"## {polls['terminals']:,} terminals long-polling at once on one node",
        "",
        "Orders held PAYING (inserted by the product's service, never sent upstream). Each terminal starts at a random "
        f"moment of the first {polls['ramp_seconds']:g} s and asks again as soon as it is answered, for "
        f"{polls['seconds']:g} s: after the ramp all of them are waiting at once (*most held by the server at once*). "
        "The asyncio load generator runs on the same cores.",
        "",
        "| what | value |",
        "|---|---:|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
    ]
