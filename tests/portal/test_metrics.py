"""/metrics (portal/metrics.py, portal/metrics_endpoint.py): who may read it, what the money path counts (only once
committed), the gauges read from the database when scraped, and several processes scraped as one."""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
from datetime import date, timedelta

import httpx
import pytest
from django.db import transaction
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from payments import services
from payments.models import Payment, PaymentStatus, Refund
from payments.terminal_client import TerminalClient
from portal import metrics
from reconciliation.models import Difference, DifferenceKind
from webhooks.models import SUBSCRIBABLE, WebhookDelivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef"


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.status_code
    return parse(response.content.decode())


def value(samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when it is not there (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def subprocess_env(metrics_dir=None) -> dict[str, str]:
    env = {key: val for key, val in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    if metrics_dir is not None:
        env["METRICS_DIR"] = str(metrics_dir)
    return env


# --- who may read it -----------------------------------------------------------------------------------------------


def test_with_nothing_configured_it_is_open_in_development(client, metrics_dir):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"


def test_with_nothing_configured_production_does_not_show_it(client, settings, metrics_dir):
    settings.IS_PRODUCTION = True
    assert client.get("/metrics").status_code == 404


def test_a_token_is_required_once_configured(client, settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer {TOKEN}").status_code == 200
    settings.IS_PRODUCTION = True
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_allowed_networks_see_the_client_behind_the_proxy(client, settings, metrics_dir):
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    settings.IS_PRODUCTION = True
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    # Behind a trusted proxy the client is the address the proxy reports, not the proxy's own.
    settings.TRUSTED_PROXIES = ["10.9.0.1"]
    behind = {"REMOTE_ADDR": "10.9.0.1"}
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="10.20.3.4", **behind).status_code == 200
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="192.0.2.7", **behind).status_code == 403
    # A client cannot pick its address: without a trusted proxy its X-Forwarded-For is ignored.
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="10.20.3.4").status_code == 403


def test_with_a_token_and_networks_both_must_pass(client, settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    inside, outside = {"REMOTE_ADDR": "10.20.3.4"}, {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **outside).status_code == 403
    assert client.get("/metrics", **inside).status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **inside).status_code == 200


def test_the_token_is_never_logged(client, settings, metrics_dir, caplog):
    settings.METRICS_TOKEN = TOKEN
    sent = "Bearer not-the-token-but-secret-too"
    with caplog.at_level(logging.DEBUG):
        assert client.get("/metrics", HTTP_AUTHORIZATION=sent).status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert caplog.records  # the refusal is logged (django.request), without what was sent
    assert TOKEN not in caplog.text and "not-the-token" not in caplog.text


def test_a_short_token_stops_the_start_up():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**subprocess_env(), "METRICS_TOKEN": "short"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "METRICS_TOKEN must be at least 16 characters long" in result.stderr


# --- the money path ------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_payment_counts_its_outcome_its_upstream_calls_and_their_latency(metrics_dir, shop, client):
    order = shop.pay(1101)  # USERPAYING_THEN_SUCCESS: micropay answers "user paying", queries find it paid
    assert order["status"] == "PAYING"
    shop.run_worker(40)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "SUCCESS"

    samples = scrape(client)
    outcome = {"channel": "WECHAT", "merchant_class": "WECHAT_DIRECT"}
    assert value(samples, "facepay_payment_outcomes_total", **outcome, status="SUCCESS") == 1
    assert value(samples, "facepay_payment_outcomes_total", **outcome, status="FAILED") == 0
    assert value(samples, "facepay_payment_time_to_outcome_seconds_count", channel="WECHAT") == 1
    seconds = (payment.paid_at - payment.created_at).total_seconds()
    assert value(samples, "facepay_payment_time_to_outcome_seconds_sum", channel="WECHAT") == pytest.approx(seconds)

    calls = shop.upstream_calls()
    wechat = {"channel": "WECHAT"}
    assert value(samples, "facepay_upstream_calls_total", **wechat, api="micropay", outcome="UNKNOWN") == 1
    assert value(samples, "facepay_upstream_calls_total", **wechat, api="orderquery", outcome="SUCCESS") == 1
    queries = sum(
        value(samples, "facepay_upstream_calls_total", **wechat, api="orderquery", outcome=outcome)
        for outcome in ("SUCCESS", "REJECTED", "TRANSIENT", "UNKNOWN", "error")
    )
    assert queries == calls.count("pay/orderquery") >= 2
    assert value(samples, "facepay_upstream_call_seconds_count", **wechat, api="orderquery") == queries
    assert value(samples, "facepay_upstream_call_seconds_count", **wechat, api="micropay") == 1
    assert value(samples, "facepay_upstream_call_seconds_sum", **wechat, api="micropay") > 0
    assert value(samples, "facepay_upstream_calls_total", **wechat, api="reverse", outcome="SUCCESS") == 0
    # The terminal's own request, by its URL's name.
    assert value(samples, "facepay_terminal_requests_total", endpoint="payment-create", status="201") == 1


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_is_not_counted(metrics_dir, shop, client):
    order = shop.pay(1101)
    pk = shop.payment(order["out_trade_no"]).pk

    def to_attention():
        payment = services._locked(pk)
        services._transition(payment, PaymentStatus.ATTENTION, actor="WORKER")
        payment.save()

    with pytest.raises(RuntimeError), transaction.atomic():
        to_attention()
        raise RuntimeError("rolled back")
    assert Payment.objects.get(pk=pk).status == PaymentStatus.PAYING
    labels = {"channel": "WECHAT", "merchant_class": "WECHAT_DIRECT", "status": "ATTENTION"}
    assert value(scrape(client), "facepay_payment_outcomes_total", **labels) == 0

    with transaction.atomic():
        to_attention()
    assert value(scrape(client), "facepay_payment_outcomes_total", **labels) == 1


@pytest.mark.django_db(transaction=True)
def test_a_refund_counts_its_outcome_and_its_calls(metrics_dir, make_shop, client):
    shop = make_shop("UMPAY")
    order = shop.pay(10000)
    assert order["status"] == "SUCCESS"  # paid at once: counted where the answer to the payment call is written
    refund = services.refund_create(
        payment=shop.payment(order["out_trade_no"]), refund_fee=3000, user=None, actor_label="test"
    )
    shop.run_worker(30)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS

    samples = scrape(client)
    assert value(samples, "facepay_refund_outcomes_total", channel="UMPAY", status="SUCCESS") == 1
    assert value(samples, "facepay_refund_outcomes_total", channel="UMPAY", status="FAILED") == 0
    assert value(samples, "facepay_upstream_calls_total", channel="UMPAY", api="refund", outcome="SUCCESS") == 1
    assert value(samples, "facepay_upstream_call_seconds_count", channel="UMPAY", api="refundquery") >= 1
    # The payment's own outcome was counted once, under its merchant class; the refund is not a second outcome.
    umpay = {"channel": "UMPAY", "merchant_class": "UMPAY"}
    assert value(samples, "facepay_payment_outcomes_total", **umpay, status="SUCCESS") == 1
    assert value(samples, "facepay_payment_outcomes_total", **umpay, status="PARTIALLY_REFUNDED") == 0


def test_terminal_answers_are_counted_by_endpoint_and_status(metrics_dir, terminal, device_and_secret, wsgi_transport):
    device, _ = device_and_secret
    assert terminal.post("heartbeat", {"sdk_version": "2.15", "app_version": "1.0.0"}).status_code == 200
    forger = TerminalClient("http://testserver", device_id=device.device_id, secret="wrong", transport=wsgi_transport)
    assert forger.post("heartbeat", {}).status_code == 401
    assert forger.get("payments/NOPE-1").status_code == 401
    assert terminal.get("payments/NOPE-1").status_code == 404
    assert terminal.get("no-such-endpoint").status_code == 404
    forger.close()

    with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as http:
        samples = parse(http.get("/metrics").text)
    count = "facepay_terminal_requests_total"
    assert value(samples, count, endpoint="heartbeat", status="200") == 1
    assert value(samples, count, endpoint="heartbeat", status="401") == 1
    assert value(samples, count, endpoint="payment-detail", status="401") == 1
    assert value(samples, count, endpoint="payment-detail", status="404") == 1
    assert value(samples, count, endpoint="unmatched", status="404") == 1
    # Only the terminal API is counted, not the scrape itself.
    assert sum(samples[key] for key in samples if key[0] == count) == 5


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_terminal_chain_counts_too(metrics_dir, device_and_secret):
    import asyncio

    from payments.terminal_client import authorization_header
    from portal.handlers import application

    device, secret = device_and_secret
    path = "/api/terminal/v1/payments/NOPE-2"

    async def send():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application()), base_url="http://x") as http:
            request = http.build_request("GET", path)
            request.headers["Authorization"] = authorization_header(
                device_id=device.device_id, secret=secret, method="GET", path_with_query=path, body=b""
            )
            answer = await http.send(request)
            return answer, await http.get("/metrics")

    answer, scraped = asyncio.run(send())
    assert answer.status_code == 404
    samples = parse(scraped.text)
    assert value(samples, "facepay_terminal_requests_total", endpoint="payment-detail", status="404") == 1


# --- read when scraped ---------------------------------------------------------------------------------------------


def test_the_scrape_reads_the_work_waiting_in_the_database(metrics_dir, shop, client):
    endpoint_create(merchant=shop.merchant, url="https://hooks.example.com/in", events=SUBSCRIBABLE, user=None)
    refused = shop.pay(1109)  # the reverse is refused (REVERSE_EXPIRE): a person must settle it
    shop.run_worker(90)
    assert shop.payment(refused["out_trade_no"]).status == PaymentStatus.ATTENTION
    late = shop.pay(1101)  # PAYING, and its next check is long overdue (no worker ran)
    Payment.objects.filter(out_trade_no=late["out_trade_no"]).update(
        next_check_at=timezone.now() - timedelta(minutes=5)
    )
    Difference.objects.create(
        merchant=shop.merchant, bill_date=date(2026, 3, 10), kind=DifferenceKind.MISSING_THERE, out_trade_no="X1"
    )
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).count()
    assert pending >= 1

    samples = scrape(client)
    assert value(samples, "facepay_payments_attention") == 1
    assert value(samples, "facepay_refunds_attention") == 0
    assert value(samples, "facepay_payments_overdue") == 1
    assert value(samples, "facepay_refunds_overdue") == 0
    assert value(samples, "facepay_webhook_deliveries", status="PENDING") == pending
    assert value(samples, "facepay_webhook_deliveries", status="FAILED") == 0
    assert value(samples, "facepay_reconciliation_differences_open") == 1
    for source in ("payments", "webhooks", "reconciliation"):
        assert value(samples, "facepay_scrape_source_up", source=source) == 1


def test_a_source_that_fails_does_not_break_the_scrape(metrics_dir, client, monkeypatch, caplog):
    def broken():
        raise RuntimeError("the database went away")

    monkeypatch.setattr(metrics, "_sources", {**metrics._sources, "payments": broken})
    metrics.upstream_call("WECHAT_DIRECT", "orderquery", "SUCCESS", 0.1)
    samples = scrape(client)
    assert value(samples, "facepay_scrape_source_up", source="payments") == 0
    assert value(samples, "facepay_scrape_source_up", source="webhooks") == 1
    assert ("facepay_payments_attention", frozenset()) not in samples
    assert ("facepay_reconciliation_differences_open", frozenset()) in samples
    assert value(samples, "facepay_upstream_calls_total", channel="WECHAT", api="orderquery", outcome="SUCCESS") == 1
    assert "reading payments failed (RuntimeError" in caplog.text


def test_with_a_redis_broker_the_queue_length_is_read(metrics_dir, client, monkeypatch, settings):
    class FakeRedis:
        def llen(self, key):
            return {"celery": 7}[key]

    settings.CELERY_BROKER_URL = "redis://broker.invalid:6379/0"
    monkeypatch.setattr(metrics, "_sources", dict(metrics._sources))
    monkeypatch.setattr(metrics, "_broker_client", lambda url: FakeRedis())
    metrics.setup()

    samples = scrape(client)
    assert value(samples, "facepay_celery_queue_length", queue="celery") == 7
    assert value(samples, "facepay_scrape_source_up", source="broker") == 1


def test_other_brokers_are_not_read(metrics_dir, client):
    samples = scrape(client)  # the suite's broker is in memory
    assert not [name for name, _ in samples if name == "facepay_celery_queue_length"]
    assert ("facepay_scrape_source_up", frozenset({"source": "broker"}.items())) not in samples


def test_celery_task_outcomes_are_counted(metrics_dir, client):
    from payments.tasks import resolve_payment_task
    from portal.tasks import prune_device_nonces

    prune_device_nonces.apply()
    resolve_payment_task.apply(args=[987654321])  # no such payment: the task fails

    samples = scrape(client)
    tasks = "facepay_celery_tasks_total"
    assert value(samples, tasks, task="portal.tasks.prune_device_nonces", outcome="succeeded") == 1
    assert value(samples, tasks, task="payments.tasks.resolve_payment", outcome="failed") == 1


# --- several processes, one scrape ---------------------------------------------------------------------------------


def test_the_processes_of_a_node_are_scraped_as_one(metrics_dir, client):
    metrics.upstream_call("UMPAY", "orderquery", "TRANSIENT", 0.2)
    metrics.upstream_call("UMPAY", "orderquery", "TRANSIENT", 0.2)
    code = (
        "import django; django.setup()\n"
        "from portal import metrics\n"
        "for _ in range(3): metrics.upstream_call('UMPAY', 'orderquery', 'TRANSIENT', 0.4)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=subprocess_env(metrics_dir), check=True)
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2  # this process's file and the other one's

    samples = scrape(client)
    labels = {"channel": "UMPAY", "api": "orderquery"}
    assert value(samples, "facepay_upstream_calls_total", **labels, outcome="TRANSIENT") == 5
    assert value(samples, "facepay_upstream_call_seconds_count", **labels) == 5
    assert value(samples, "facepay_upstream_call_seconds_sum", **labels) == pytest.approx(1.6)


def test_the_first_process_of_a_node_empties_the_directory_the_others_keep_it(tmp_path):
    code = "import sys; from pathlib import Path; from portal.metrics_dir import join; join(Path(sys.argv[1]))"
    stale = tmp_path / "counter_4242.db"
    stale.write_bytes(b"")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=subprocess_env(), check=True)
    assert not stale.exists()  # no process was using the directory: a new run starts from empty files

    stale.write_bytes(b"")
    with open(tmp_path / ".lock", "a") as running:
        fcntl.flock(running, fcntl.LOCK_SH)  # a process of the node is running
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=subprocess_env(), check=True)
    assert stale.exists()


def test_metrics_imported_before_the_settings_stop_the_start_up():
    code = "import prometheus_client\nimport django\ndjango.setup()\n"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode != 0
    assert "prometheus_client was imported before the settings set PROMETHEUS_MULTIPROC_DIR" in result.stderr


# --- switched off (METRICS_ENABLED=false) --------------------------------------------------------------------------


@pytest.fixture
def metrics_off(settings):
    """Before the shop's request handler is built: its middleware chain is made with the metrics switched off."""
    settings.METRICS_ENABLED = False


@pytest.mark.django_db(transaction=True)
def test_switched_off_a_payment_records_nothing_and_metrics_is_not_found(
    metrics_off, metrics_dir, shop, client, settings
):
    order = shop.pay(1101)  # a terminal request, upstream calls, then the outcome once committed
    shop.run_worker(40)
    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    metrics.refund_outcome("WECHAT_DIRECT", "SUCCESS")

    assert [path.name for path in metrics_dir.iterdir() if path.name != ".lock"] == []  # .lock: the fixture's
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404  # even for the scraper


def test_switched_off_a_process_neither_joins_the_metrics_directory_nor_counts_tasks(tmp_path):
    code = (
        "import os, django; django.setup()\n"
        "from celery import signals\n"
        "from portal import metrics\n"
        "from portal.tasks import prune_device_nonces\n"
        "metrics.upstream_call('UMPAY', 'orderquery', 'SUCCESS', 0.1)\n"
        "signals.task_success.send(sender=prune_device_nonces, result=None)\n"
        "print(os.environ.get('PROMETHEUS_MULTIPROC_DIR'), metrics._child.cache_info().currsize)\n"
    )
    env = {**subprocess_env(tmp_path / "metrics"), "METRICS_ENABLED": "false"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "0"]  # no metric child made: neither the call nor the task counted
    assert not (tmp_path / "metrics").exists()


# --- the documentation ---------------------------------------------------------------------------------------------


def test_the_docs_and_the_dashboard_use_exactly_the_defined_metrics():
    import json
    import re
    from pathlib import Path

    from prometheus_client.metrics import MetricWrapperBase

    docs = Path(__file__).resolve().parents[2] / "docs"
    families = {
        family.name: family.type
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    }
    families.update({name: "gauge" for name in [*metrics.SCRAPE_GAUGES, metrics.SOURCE_UP]})
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    series = {name + suffix: name for name, kind in families.items() for suffix in suffixes[kind]}

    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"facepay_\w+", target["expr"])
    }
    assert used - set(series) == set()  # no panel on a metric that does not exist
    assert {series[name] for name in used} == set(families)  # and a panel for every one
    assert dashboard["templating"]["list"][0]["type"] == "datasource"

    documented = set(re.findall(r"^\| `(facepay_\w+)`", (docs / "metrics.md").read_text(), flags=re.MULTILINE))
    assert documented == {name + suffixes[kind][0] if kind == "counter" else name for name, kind in families.items()}
