"""Dependency outages: PostgreSQL down or failing over, Redis (cache or broker) down or hanging.

The terminal gets JSON 503 SERVICE_UNAVAILABLE with Retry-After (never an HTML 500), the console a styled 503 page;
nothing is half-written; a committed payment whose task could not be queued is still answered and later settled by
the sweeper; the device throttle lets requests through while the cache is unreachable, and nonce replay protection
(in the database) stays strict. The outages are simulated: every SQL statement raising OperationalError as a
stopped server makes psycopg do, the cache pointed at a port that refuses or one that accepts and never answers (a
paused Redis), the broker's publish raising kombu's OperationalError."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import httpx
import kombu.exceptions
import psycopg
import pytest
from django.db import OperationalError, connection
from django.db.backends.utils import CursorWrapper
from django.test import override_settings
from psycopg import connect as _connect  # unpatched: the test's own way in

from payments import services
from payments.models import Payment, PaymentStatus
from payments.terminal_client import authorization_header
from portal import api_errors, jobs, wakeup
from portal.handlers import application as asgi_application
from tests.factories import make_user


def _database_down(monkeypatch) -> None:
    """Every statement from now on fails the way psycopg fails on a server that was stopped under it."""

    def broken(self, *args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(CursorWrapper, "_execute", broken)
    monkeypatch.setattr(CursorWrapper, "_executemany", broken)
    monkeypatch.setattr(psycopg, "connect", broken)  # new connections too, the wake-up listener's among them


def _terminate_wakeup_listener() -> None:
    """Closes the LISTEN connection from the server side, as a PostgreSQL shutdown does (psycopg directly: Django's
    cursors are the ones patched to fail)."""
    with _connect(**connection.get_connection_params(), autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [wakeup.LISTENER_NAME],
        ).fetchall()
    assert terminated, "the wake-up listener was not connected"


def _assert_json_503(response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert set(response.json()) == {"code", "message", "details"}
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture(autouse=True)
def _outage_log_not_rate_limited():
    api_errors._last_logged.clear()  # each test sees its own first warning


PAYMENT = {"total_fee": 1000, "body": "测试商品", "method": "CODE", "auth_code": "134567890123456789"}


# --- PostgreSQL -----------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_database_down_answers_json_503_on_the_terminal_api(terminal, monkeypatch):
    with monkeypatch.context() as patch:
        _database_down(patch)
        started = time.monotonic()
        response = terminal.post("payments", {**PAYMENT, "out_trade_no": "DOWN-1"})
        elapsed = time.monotonic() - started
    _assert_json_503(response)
    assert elapsed < 2
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_database_failing_inside_the_order_transaction_leaves_nothing_and_sends_nothing(shop, monkeypatch):
    """The order and its first event are one transaction: the database failing between them leaves no order, and
    no charge was sent (the call comes only after the commit)."""
    real_event = services._event

    def event_then_fail(payment, action, **kwargs):
        if action == "created":
            raise OperationalError("terminating connection due to administrator command")
        return real_event(payment, action, **kwargs)

    calls_before = len(shop.upstream_calls())
    with monkeypatch.context() as patch:
        patch.setattr(services, "_event", event_then_fail)
        response = shop.terminal.post("payments", {**PAYMENT, "out_trade_no": "HALF-1"})
    _assert_json_503(response)
    assert not Payment.objects.filter(out_trade_no="HALF-1").exists()
    assert len(shop.upstream_calls()) == calls_before  # no charge sent

    # The database is back: the terminal repeats the same order, which is charged once.
    assert shop.terminal.post("payments", {**PAYMENT, "out_trade_no": "HALF-1"}).status_code == 201
    assert shop.upstream_calls()[calls_before:] == ["pay/micropay"]


@pytest.mark.django_db
def test_database_down_answers_a_styled_503_page_in_the_console(client, monkeypatch):
    user = make_user("outage-staff", superuser=True)
    client.force_login(user)
    client.raise_request_exception = False
    _database_down(monkeypatch)

    chinese = client.get("/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    english = client.get("/", HTTP_ACCEPT_LANGUAGE="en")

    for response in (chinese, english):
        assert response.status_code == 503
        assert response["Content-Type"].startswith("text/html")
        assert int(response["Retry-After"]) > 0
        assert "portal/console.css" in response.content.decode()
    assert "暂时无法使用" in chinese.content.decode()
    assert "Temporarily unavailable" in english.content.decode()


@pytest.mark.django_db
def test_database_down_answers_json_503_to_a_channel_notification(client, monkeypatch):
    """A plain Django view under /notify/ (no DRF): the middleware answers in the API's shape; the channel sends
    the notification again later."""
    client.raise_request_exception = False
    _database_down(monkeypatch)
    response = client.post("/notify/umpay/", data="orderNo=X", content_type="application/x-www-form-urlencoded")
    _assert_json_503(response)


@pytest.mark.django_db(transaction=True)
def test_database_lost_while_a_terminal_long_polls_answers_json_503_under_asgi(make_shop, monkeypatch, settings):
    """The wait runs after the DRF view has answered (portal.api.waiting_view), on TERMINAL_API_MIDDLEWARE: a
    re-read failing there is answered by the middleware, not by Django's 500. On PostgreSQL the waiter is woken
    when the wake-up listener loses its connection, so the terminal learns of the outage at once, not at the end
    of its wait."""
    settings.WAKEUP_LOCAL_RECHECK_SECONDS = 0.2
    shop = make_shop()
    order = shop.pay(1101)  # USERPAYING: the request will wait
    assert order["status"] == "PAYING"
    path = f"/api/terminal/v1/payments/{order['out_trade_no']}?wait=30"  # answered long before the wait ends
    answer: dict[str, httpx.Response] = {}

    async def send() -> None:
        transport = httpx.ASGITransport(app=asgi_application())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            request = client.build_request("GET", path)
            request.headers["Authorization"] = authorization_header(
                device_id=shop.device.device_id, secret=shop.secret, method="GET", path_with_query=path, body=b""
            )
            answer["response"] = await client.send(request)

    thread = threading.Thread(target=asyncio.run, args=(send(),))
    thread.start()
    time.sleep(0.8)  # authenticated, read once, waiting
    assert thread.is_alive()
    with monkeypatch.context() as patch:
        _database_down(patch)
        if connection.vendor == "postgresql":
            # A stopped server also closes the wake-up listener's connection (its own, outside Django's cursors).
            _terminate_wakeup_listener()
        thread.join(10)
    _assert_json_503(answer["response"])


# --- Redis as the cache ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["refused", "hanging"])
def cache_down(request):
    """The cache pointed at a port that refuses connections (Redis stopped) or at one that accepts and never
    answers (Redis paused with SIGSTOP), with the production settings' short socket timeouts."""
    listener = None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if request.param == "hanging":
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(64)  # the kernel completes the handshakes; nobody ever reads or answers
    caches = {
        "default": {
            "BACKEND": "portal.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/1",
            "OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3},
        }
    }
    try:
        with override_settings(CACHES=caches):  # undone before the suite's own cache clean-up runs
            yield request.param
    finally:
        if listener is not None:
            listener.close()


@pytest.mark.django_db
def test_cache_down_the_throttle_lets_requests_through_and_logs_it(terminal, cache_down, caplog):
    with caplog.at_level(logging.WARNING, logger="portal.outage"):
        started = time.monotonic()
        response = terminal.post("heartbeat", {"sdk_version": "2.0"})
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2
    assert "device throttle" in caplog.text


@pytest.mark.django_db
def test_cache_down_nonce_replays_are_still_refused(device_and_secret, client, cache_down):
    """Nonces are recorded in the database (portal.terminal_auth), not in the cache: a cache outage does not open
    a window for replays."""
    device, secret = device_and_secret
    path, body = "/api/terminal/v1/heartbeat", json.dumps({"sdk_version": "2.0"}).encode()
    header = authorization_header(
        device_id=device.device_id, secret=secret, method="POST", path_with_query=path, body=body
    )
    first = client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)
    replay = client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)
    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["code"] == "NONCE_REPLAYED"


@pytest.mark.django_db
def test_cache_down_a_call_that_needs_the_cache_answers_json_503(shop, cache_down):
    """face/authinfo is cached in Redis (payments.services.authinfo_get): without it the answer is 503, fast."""
    started = time.monotonic()
    response = shop.terminal.post("face/authinfo", {"rawdata": "raw-1"})
    _assert_json_503(response)
    assert time.monotonic() - started < 2


@pytest.mark.django_db
def test_cache_down_sign_in_fails_closed_with_the_503_page(client, cache_down):
    """The sign-in lockout counts failures in the cache: without it no password is checked at all (an outage must
    not become a way around the lockout), and the page says why."""
    make_user("outage-signin", superuser=True)
    client.raise_request_exception = False
    for path in ("/login/", "/admin/login/"):
        response = client.post(path, {"username": "outage-signin", "password": "wrong-password"})
        assert response.status_code == 503, path
        assert "portal/console.css" in response.content.decode()
        assert "_auth_user_id" not in client.session


# --- Redis as the broker --------------------------------------------------------------------------------------------


def _broker_down(monkeypatch) -> list[str]:
    attempts: list[str] = []

    def refuse(name, *args, **kwargs):
        attempts.append(name)
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(jobs.current_app, "send_task", refuse)
    return attempts


@pytest.mark.django_db
def test_a_failed_publish_is_logged_and_swallowed(monkeypatch, caplog, django_capture_on_commit_callbacks):
    attempts = _broker_down(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="portal.jobs"), django_capture_on_commit_callbacks(execute=True):
        jobs.enqueue_on_commit("payments.tasks.resolve_payment", 7)  # the publish raises when the commit runs it
    assert attempts == ["payments.tasks.resolve_payment"]
    assert "could not queue payments.tasks.resolve_payment(7,)" in caplog.text
    assert "sweeper" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_broker_down_after_the_commit_the_terminal_gets_its_payment_and_the_sweeper_settles_it(make_shop, monkeypatch):
    """The order is committed and charged; queuing its follow-up fails. The terminal still gets the payment (not a
    500 or 503 for something that exists), and the order's lease makes it due work for the sweeper."""
    shop = make_shop()
    attempts = _broker_down(monkeypatch)
    response = shop.terminal.post("payments", {**PAYMENT, "total_fee": 1101, "out_trade_no": "NOBROKER-1"})
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "PAYING"
    assert attempts == [services.RESOLVE_PAYMENT_TASK]

    payment = shop.payment("NOBROKER-1")
    assert payment.next_check_at is not None  # the lease: found by the sweeper once overdue
    shop.clock.advance(6)
    assert payment.pk in services.due_work(now=shop.clock.now())[0]
    shop.run_worker(30)
    assert shop.payment("NOBROKER-1").status == PaymentStatus.SUCCESS


# --- the timeouts that bound all of this -----------------------------------------------------------------------------


def test_production_settings_bound_every_wait_on_postgresql_and_redis():
    """Without these bounds a stopped PostgreSQL made a request wait for the pool (10 s) and a paused Redis made it
    wait redis-py's default 5 s per attempt, four attempts per publish: the answer came late, and as a 500."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    from tests.portal.test_commands_and_ops import PRODUCTION

    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "db = s.DATABASES['default']['OPTIONS']; cache = s.CACHES['default']['OPTIONS']; "
        "print(json.dumps({'connect': db['connect_timeout'], 'pool': db['pool']['timeout'], "
        "'cache': [cache['socket_connect_timeout'], cache['socket_timeout']], "
        "'broker': s.CELERY_BROKER_TRANSPORT_OPTIONS, 'broker_connect': s.CELERY_BROKER_CONNECTION_TIMEOUT, "
        "'publish': s.CELERY_TASK_PUBLISH_RETRY_POLICY}))"
    )
    env = {**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    bounds = json.loads(result.stdout)
    assert bounds["connect"] <= 2
    assert bounds["pool"] <= 2  # PostgreSQL down: the pool has no connection to give, the request waits this long
    assert max(bounds["cache"]) <= 1
    assert max(bounds["broker"]["socket_timeout"], bounds["broker"]["socket_connect_timeout"]) <= 1
    assert bounds["broker_connect"] <= 1
    publish = bounds["publish"]
    worst_publish = (publish["max_retries"] + 1) * 2 * bounds["broker"]["socket_timeout"]  # connect + command
    assert worst_publish <= 2


def test_schema_documents_the_503_of_every_terminal_operation():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        if path.startswith("/api/terminal/v1/")
        for method, operation in operations.items()
        if method != "parameters" and "503" not in operation["responses"]
    ]
    assert missing == []
