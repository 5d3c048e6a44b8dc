"""Logs (portal/request_id.py, LOGGING in portal/settings.py): every request gets an id that it answers with and
that every line it causes carries — in its async parts, in the tasks it queues and in their upstream calls — and the
lines never hold a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
import os
import subprocess
import sys

import httpx
import pytest
from asgiref.sync import sync_to_async
from celery import signals
from celery.app.trace import build_tracer
from django.conf import settings
from django.test import RequestFactory

from payments.tasks import resolve_payment_task
from payments.terminal_client import authorization_header
from portal import jobs, request_id
from portal.celery import app
from portal.models import ChannelCredentials
from portal.tasks import prune_device_nonces

pytestmark = pytest.mark.django_db


class Lines:
    """What the processes would write: records formatted by LOGGING's JSON formatter, after its filter."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.text().splitlines()]

    def of(self, logger: str) -> list[dict]:
        return [line for line in self.all() if line["logger"] == logger]


@pytest.fixture
def lines():
    configurator = logging.config.DictConfigurator(settings.LOGGING)
    captured = Lines()
    handler = logging.StreamHandler(captured.stream)
    handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"]["json"])))
    handler.addFilter(configurator.configure_filter(dict(settings.LOGGING["filters"]["request_context"])))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield captured
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def published():
    """(task name, headers, args) of every task message sent."""
    sent = []

    def record(sender=None, headers=None, body=None, **kwargs):
        sent.append((sender, dict(headers), body[0]))

    signals.after_task_publish.connect(record, weak=False, dispatch_uid="test-logging-published")
    yield sent
    signals.after_task_publish.disconnect(dispatch_uid="test-logging-published")


# --- the request id ------------------------------------------------------------------------------------------------


def test_a_request_gets_an_id_it_answers_with_and_logs_one_access_line(client, lines):
    response = client.get("/healthz?verbose=1", REMOTE_ADDR="203.0.113.7")

    rid = response["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0  # uuid4 hex
    [access] = lines.of("portal.access")
    assert access["request_id"] == rid
    assert access["method"] == "GET"
    assert access["path"] == "/healthz"  # never the query string
    assert access["status"] == response.status_code
    assert isinstance(access["duration_ms"], int) and access["duration_ms"] >= 0
    assert access["client"] == "203.0.113.7"
    assert access["message"] == f"GET /healthz {response.status_code} {access['duration_ms']} ms"
    assert request_id.current() is None  # the request is over


def test_a_well_formed_incoming_id_is_kept(client, lines):
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-2f1c.09_A-7")

    assert response["X-Request-ID"] == "lb-2f1c.09_A-7"
    assert lines.of("portal.access")[0]["request_id"] == "lb-2f1c.09_A-7"


@pytest.mark.parametrize("incoming", ["a" * 65, "two words", "line\nbreak", 'quote"s', "中文", ""])
def test_a_malformed_or_oversized_incoming_id_is_replaced(client, lines, incoming):
    response = client.get("/healthz", HTTP_X_REQUEST_ID=incoming)

    rid = response["X-Request-ID"]
    assert rid != incoming and len(rid) == 32
    assert lines.of("portal.access")[0]["request_id"] == rid


@pytest.mark.parametrize("ssl_redirect", [False, True])
def test_the_access_line_hides_one_time_tokens_even_when_answered_before_the_url_is_resolved(
    client, lines, settings, ssl_redirect
):
    settings.SECURE_SSL_REDIRECT = ssl_redirect  # on: redirected to https:// before the URL is resolved

    response = client.get("/devices/7/secret/one-time-token-abcdef0123")  # off: redirected to the sign-in page

    assert response.status_code == (301 if ssl_redirect else 302)
    [access] = lines.of("portal.access")
    assert access["path"] == "/devices/7/secret/<hidden>"
    assert "one-time-token-abcdef0123" not in lines.text()


def test_an_async_view_keeps_its_requests_id_across_awaits_and_thread_hops(lines):
    seen = []

    def sync_part():
        seen.append(("thread", request_id.current()))
        request_id.bind(device_id="DEV-1")

    async def view(request):
        await asyncio.sleep(0.01)  # the other request runs meanwhile
        seen.append(("loop", request_id.current()))
        await sync_to_async(sync_part)()
        logging.getLogger("tests.view").info("waited")
        from django.http import HttpResponse

        return HttpResponse("ok")

    middleware = request_id.RequestIdMiddleware(view)
    factory = RequestFactory()

    async def both():
        return await asyncio.gather(
            middleware(factory.get("/a", HTTP_X_REQUEST_ID="first")),
            middleware(factory.get("/b", HTTP_X_REQUEST_ID="second")),
        )

    first, second = asyncio.run(both())

    assert (first["X-Request-ID"], second["X-Request-ID"]) == ("first", "second")
    assert sorted(seen) == [("loop", "first"), ("loop", "second"), ("thread", "first"), ("thread", "second")]
    for line in lines.of("tests.view") + lines.of("portal.access"):
        assert line["request_id"] in ("first", "second")
        assert line["device_id"] == "DEV-1"  # bound in the thread, seen back on the event loop
    assert len(lines.of("portal.access")) == 2


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_terminal_chain_answers_with_the_id_and_logs_the_device(device_and_secret, request):
    from portal.handlers import application

    asgi = application()  # sets Django up again, which configures logging anew: before the lines are captured
    lines = request.getfixturevalue("lines")
    device, secret = device_and_secret
    path = "/api/terminal/v1/payments/NOPE-1?wait=5"  # the async long-poll view

    async def send():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi), base_url="http://x") as http:
            signed = http.build_request("GET", path, headers={"X-Request-ID": "terminal-42"})
            signed.headers["Authorization"] = authorization_header(
                device_id=device.device_id, secret=secret, method="GET", path_with_query=path, body=b""
            )
            return await http.send(signed)

    answer = asyncio.run(send())

    assert answer.status_code == 404
    assert answer.headers["X-Request-ID"] == "terminal-42"
    [access] = lines.of("portal.access")
    assert access["request_id"] == "terminal-42"
    assert access["path"] == "/api/terminal/v1/payments/NOPE-1"
    assert access["device_id"] == device.device_id
    assert access["merchant_id"] == device.store.merchant_id
    # Django's own line for the 404, written after the middleware returned, still has the id (not the query string).
    [not_found] = lines.of("django.request")
    assert not_found["request_id"] == "terminal-42"
    assert "request" not in not_found and "wait=5" not in lines.text()


# --- Celery --------------------------------------------------------------------------------------------------------


def test_a_task_queued_under_a_request_id_carries_it(published):
    token = request_id._start("req-queued")
    try:
        app.send_task("portal.tasks.prune_device_nonces")
    finally:
        request_id._context.reset(token)
    app.send_task("portal.tasks.prune_device_nonces")  # queued outside a request (beat, a command)

    assert published[0][1][request_id.TASK_HEADER] == "req-queued"
    assert request_id.TASK_HEADER not in published[1][1]


def test_a_task_queued_on_commit_of_a_request_carries_it(published, django_capture_on_commit_callbacks):
    token = request_id._start("req-on-commit")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            jobs.enqueue_on_commit("portal.tasks.prune_device_nonces")
    finally:
        request_id._context.reset(token)

    assert published[0][1][request_id.TASK_HEADER] == "req-on-commit"


def test_a_task_runs_under_the_id_in_its_headers_and_logs_one_line(lines):
    prune_device_nonces.apply(headers={request_id.TASK_HEADER: "req-7"})

    [line] = lines.of("portal.task")
    assert line["request_id"] == "req-7"
    assert line["task"] == "portal.tasks.prune_device_nonces"
    assert line["outcome"] == "SUCCESS"
    assert line["result"] == "0"
    assert isinstance(line["duration_ms"], int)
    assert request_id.current() is None  # the worker thread is clean for its next task


def test_a_worker_reads_the_id_from_the_message_headers(lines):
    """A worker (unlike apply) puts the message's headers among the request's own attributes."""
    tracer = build_tracer(prune_device_nonces.name, prune_device_nonces, app=app, eager=True, propagate=True)
    tracer("task-id-1", (), {}, {"id": "task-id-1", request_id.TASK_HEADER: "req-8", "delivery_info": {}})

    assert lines.of("portal.task")[0]["request_id"] == "req-8"


@pytest.mark.parametrize("headers", [None, {request_id.TASK_HEADER: "bad id!"}, {request_id.TASK_HEADER: 42}])
def test_a_task_without_a_well_formed_id_runs_under_its_own(lines, headers):
    result = prune_device_nonces.apply(headers=headers)  # as beat queues it: no request id

    [line] = lines.of("portal.task")
    assert line["request_id"] == f"task-{result.id}"


def test_a_failed_task_is_logged_as_such(lines):
    resolve_payment_task.apply(args=[987654321], headers={request_id.TASK_HEADER: "req-9"})  # no such payment

    [line] = lines.of("portal.task")
    assert (line["outcome"], line["level"], line["request_id"]) == ("FAILURE", "WARNING", "req-9")
    assert "result" not in line


# --- the format ----------------------------------------------------------------------------------------------------


def test_json_lines_parse_with_the_expected_keys(lines):
    token = request_id._start("req-json")
    request_id.bind(device_id="DEV-9", merchant_id=3, out_trade_no="T-1")
    try:
        logging.getLogger("tests.format").warning("收款 %s", "done", extra={"amount": 101})
    finally:
        request_id._context.reset(token)
    logging.getLogger("tests.format").info("outside")

    inside, outside = lines.all()
    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": "tests.format",
        "message": "收款 done",
        "amount": 101,
        "request_id": "req-json",
        "device_id": "DEV-9",
        "merchant_id": 3,
        "out_trade_no": "T-1",
    }
    assert inside["time"].endswith("+00:00")
    assert set(outside) == {"time", "level", "logger", "message"}
    assert "收款" in lines.text()  # written as it is, not \u-escaped


def test_binding_outside_a_request_or_task_changes_nothing():
    request_id.bind(out_trade_no="T-2")
    assert request_id._context.get() == {}


def test_log_format_json_configures_every_process_workers_and_beat_too(tmp_path):
    """With LOG_FORMAT=json the settings write JSON lines to stderr, and a Celery worker or beat starting up keeps
    them (it would otherwise replace the root logger's handler with its own format)."""
    code = (
        "import logging, django\n"
        "django.setup()\n"
        "from portal import request_id\n"
        "from portal.celery import app\n"
        "app.log.setup_logging_subsystem(loglevel='INFO')\n"
        "request_id._start('sub-1')\n"
        "logging.getLogger('celery.worker').warning('from a worker')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(LOG_FORMAT="json", VAR_DIR=str(tmp_path), METRICS_DIR=str(tmp_path / "metrics"))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in result.stderr.splitlines()]
    assert (line["logger"], line["message"], line["request_id"]) == ("celery.worker", "from a worker", "sub-1")


# --- a payment's whole path ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_payments_lines_from_terminal_to_task_to_upstream_share_one_id_and_no_secret(make_shop, lines, published):
    shop = make_shop()
    auth_code = "134567890123456789"
    response = shop.terminal.post(
        "payments", {"total_fee": 1101, "body": "日志", "method": "CODE", "auth_code": auth_code}
    )  # USERPAYING: the worker finds out
    assert response.status_code == 201, response.text
    rid = response.headers["X-Request-ID"]
    out_trade_no = response.json()["out_trade_no"]

    [(_, headers, args)] = [sent for sent in published if sent[0] == resolve_payment_task.name]
    assert headers[request_id.TASK_HEADER] == rid
    shop.clock.advance(11)  # the user has paid
    assert resolve_payment_task.apply(args=args, headers=headers).get() == "SUCCESS"  # as a worker runs it

    every = lines.all()
    # The sandbox stands in for the channel in-process: its own requests have ids of their own.
    sandbox_ids = {line["request_id"] for line in every if line.get("path", "").startswith("/sandbox/")}
    ours = [line for line in every if line.get("request_id") not in sandbox_ids]
    assert {line.get("request_id") for line in ours} == {rid}
    ours = [line for line in ours if line["logger"] in ("portal.access", "portal.task", "payments.channels")]
    assert [(line["logger"], line["message"].split(" ")[:3]) for line in ours] == [
        ("payments.channels", ["upstream", "WECHAT_DIRECT", "micropay"]),
        ("portal.access", ["POST", "/api/terminal/v1/payments", "201"]),
        ("payments.channels", ["upstream", "WECHAT_DIRECT", "orderquery"]),
        ("portal.task", ["task", resolve_payment_task.name, "SUCCESS"]),
    ]
    micropay, access, query, task = ours
    assert (micropay["outcome"], micropay["code"], query["outcome"]) == ("UNKNOWN", "USERPAYING", "SUCCESS")
    assert access["device_id"] == shop.device.device_id
    for line in (micropay, access, query, task):
        assert line["merchant_id"] == shop.merchant.pk
        assert line["out_trade_no"] == out_trade_no

    credentials = ChannelCredentials.objects.get(merchant=shop.merchant)
    secrets = [
        shop.secret,
        auth_code,
        credentials.wechat_api_v2_key.reveal(),
        credentials.wechat_api_v3_key.reveal(),
        *[line for line in credentials.wechat_private_key.reveal().splitlines() if "-----" not in line],
    ]
    text = lines.text()
    for secret in secrets:
        assert secret not in text
    assert "Authorization" not in text and "signature" not in text.lower()
