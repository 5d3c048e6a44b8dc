"""Webhooks end to end against a real local HTTP receiver: events written with the change that causes them, signed
deliveries checked by an independent implementation, the retry schedule, order per payment, leases after a killed
worker, rotation, resend, bounded concurrency per endpoint, and claims shared by concurrent workers on PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from payments import services as payment_services
from portal.models import AuditLog, Merchant
from tests.factories import MerchantFactory
from tests.webhooks.conftest import slow
from webhooks import delivery, services, signing
from webhooks.models import SUBSCRIBABLE, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _quick_drains(monkeypatch, settings):
    monkeypatch.setattr(delivery, "_IDLE_LINGER", 0.1)
    settings.WEBHOOK_TIMEOUT = 2.0


def deliver(budget: float = 10.0) -> delivery.DrainResult:
    result = delivery.drain(budget=budget)
    assert result is not None
    return result


def endpoint_for(merchant: Merchant, url: str, events=None) -> tuple[WebhookEndpoint, str]:
    return services.endpoint_create(merchant=merchant, url=url, events=events or SUBSCRIBABLE, user=None)


def independent_check(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side written from the documented rule alone: v1 = hex HMAC-SHA256(secret, timestamp "." body),
    any of the comma-separated v1 values may match."""
    timestamp = headers["Facepay-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    values = [part.strip().split("=", 1) for part in headers["Facepay-Signature"].split(",")]
    return any(scheme == "v1" and hmac.compare_digest(value, expected) for scheme, value in values)


def test_signature_matches_a_known_vector_and_the_verifier_refuses_tampering():
    secret, timestamp, body = "whsec_test", 1765000000, b'{"id":"evt_1","type":"payment.succeeded"}'
    known = hmac.new(b"whsec_test", b"1765000000." + body, hashlib.sha256).hexdigest()
    assert signing.signature(secret, timestamp, body) == known
    headers = {"facepay-timestamp": str(timestamp), "FACEPAY-SIGNATURE": f"v1={known}"}
    assert signing.verify(secret, headers, body, now=timestamp + 10)
    assert not signing.verify(secret, headers, body + b" ", now=timestamp + 10)
    assert not signing.verify("other", headers, body, now=timestamp + 10)
    assert not signing.verify(secret, headers, body, now=timestamp + 301)  # replay outside the tolerance


def test_a_payment_event_is_delivered_signed_with_the_order_as_the_terminal_sees_it(shop, receiver):
    endpoint, secret = endpoint_for(shop.merchant, receiver.url)
    order = shop.pay(1000)
    assert order["status"] == "SUCCESS"

    result = deliver()

    assert result.delivered == 1
    [request] = receiver.received
    assert independent_check(secret, request.headers, request.body)
    event = json.loads(request.body)
    assert event["type"] == "payment.succeeded" and event["id"].startswith("evt_")
    assert request.headers["Facepay-Event-Id"] == event["id"]
    assert request.headers["Content-Type"].startswith("application/json")
    assert event["data"] == order  # the terminal API's own answer, field for field
    row = WebhookDelivery.objects.get()
    assert row.status == Status.DELIVERED and row.attempts == 1 and row.delivered_at is not None
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 200 and attempt.response_excerpt == '{"ok":true}'
    assert attempt.request_headers["Facepay-Signature"].startswith("v1=")


def test_nothing_is_written_for_a_merchant_without_endpoints_or_for_unsubscribed_types(shop, receiver):
    shop.pay(1000)
    assert not WebhookEvent.objects.exists()
    endpoint_for(shop.merchant, receiver.url, events=["refund.succeeded"])
    shop.pay(1000)
    assert not WebhookEvent.objects.exists()


def test_the_event_rolls_back_with_the_change_that_caused_it(shop, receiver):
    endpoint_for(shop.merchant, receiver.url)
    shop.merchant.refresh_from_db()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.event_emit(merchant=shop.merchant, type="payment.failed", data=lambda: {"x": 1})
        assert WebhookEvent.objects.count() == 1
        raise RuntimeError("the payment's transaction fails after the event was written")
    assert not WebhookEvent.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_failing_receiver_is_retried_on_the_schedule_then_marked_failed(shop, receiver, monkeypatch, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [15, 30]
    endpoint_for(shop.merchant, receiver.url)
    receiver.answer = lambda request: 503
    shop.pay(1000)

    deliver()
    row = WebhookDelivery.objects.get()
    assert row.status == Status.PENDING and row.retry_step == 1 and row.last_status_code == 503
    wait = (row.next_attempt_at - row.last_attempt_at).total_seconds()
    assert 14 <= wait <= 16
    deliver()
    assert len(receiver.received) == 1  # not due yet: nothing sent

    later = timezone.now() + timedelta(seconds=16)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    deliver()
    row.refresh_from_db()
    assert row.retry_step == 2 and 29 <= (row.next_attempt_at - later).total_seconds() <= 31

    latest = later + timedelta(seconds=31)
    monkeypatch.setattr(delivery, "_now", lambda: latest)
    deliver()
    row.refresh_from_db()
    assert row.status == Status.FAILED and row.next_attempt_at is None and row.attempts == 3
    assert len(receiver.received) == 3
    assert len(set(receiver.event_ids())) == 1  # the same event each time
    assert WebhookAttempt.objects.filter(delivery=row).count() == 3


def test_timeouts_and_dropped_connections_are_failed_attempts_not_errors(shop, receiver, settings):
    settings.WEBHOOK_TIMEOUT = 0.3
    endpoint_for(shop.merchant, receiver.url)
    receiver.answer = slow(1.0)
    shop.pay(1000)
    deliver()
    assert WebhookAttempt.objects.get().error == "timeout"

    receiver.answer = lambda request: "drop"
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    deliver()
    errors = list(WebhookAttempt.objects.order_by("number").values_list("error", flat=True))
    assert errors[0] == "timeout" and errors[1] and errors[1] != "timeout"
    assert WebhookDelivery.objects.get().status == Status.PENDING


def test_a_refused_connection_is_recorded_as_such_not_as_a_timeout(shop):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint_for(shop.merchant, f"http://127.0.0.1:{port}/")
    shop.pay(1000)
    deliver()
    error = WebhookAttempt.objects.get().error
    assert error.startswith("NewConnectionError") and "timeout" not in error.lower()


def test_a_refund_event_never_overtakes_its_payments(shop, receiver, monkeypatch):
    endpoint_for(shop.merchant, receiver.url)
    receiver.answer = lambda request: 500  # the receiver is down when the payment's event is first sent
    order = shop.pay(1000)
    deliver()
    receiver.answer = lambda request: 200  # back up; the payment's event waits 15 s for its retry
    payment = shop.payment(order["out_trade_no"])
    payment_services.refund_create(payment=payment, refund_fee=300, user=None, actor_label="test")
    shop.run_worker(30)
    assert WebhookEvent.objects.filter(type="refund.succeeded").exists()

    deliver()
    assert [json.loads(r.body)["type"] for r in receiver.received] == ["payment.succeeded"]  # the first, failed one

    later = timezone.now() + timedelta(seconds=20)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    deliver()
    types = [json.loads(r.body)["type"] for r in receiver.received]
    assert types == ["payment.succeeded", "payment.succeeded", "refund.succeeded"]
    refund_event = json.loads(receiver.received[-1].body)
    assert refund_event["data"]["refund_fee"] == 300
    assert refund_event["data"]["payment"]["out_trade_no"] == order["out_trade_no"]


def test_a_killed_worker_leaves_a_lease_and_the_event_is_sent_again_once_it_runs_out(shop, receiver, monkeypatch):
    endpoint_for(shop.merchant, receiver.url)
    shop.pay(1000)
    [first] = delivery.claim(limit=10)  # claimed, then the worker dies before (or after) sending
    assert delivery.claim(limit=10) == []  # leased: nobody else takes it meanwhile

    later = timezone.now() + timedelta(seconds=delivery.lease_seconds() + 1)
    monkeypatch.setattr(delivery, "_now", lambda: later)
    [second] = delivery.claim(limit=10)
    assert second.delivery_id == first.delivery_id and second.number == first.number + 1

    # The dead worker's answer arriving late, while the newer attempt is in flight or after it, does not overwrite
    # the newer attempt's state (its lease, its retry step, its outcome).
    leased = WebhookDelivery.objects.get()
    delivery.record([delivery.Sent(claim=first, started_at=later, headers={}, status_code=500)])
    row = WebhookDelivery.objects.get()
    assert (row.status, row.retry_step, row.next_attempt_at) == (Status.PENDING, 0, leased.next_attempt_at)
    client = delivery.new_client()
    delivery.record([delivery.post(client, second)])
    delivery.record([delivery.Sent(claim=first, started_at=later, headers={}, status_code=500)])
    row = WebhookDelivery.objects.get()
    assert row.status == Status.DELIVERED and row.attempts == 2


def test_a_receiver_that_answered_2xx_never_gets_the_event_again(shop, receiver):
    endpoint_for(shop.merchant, receiver.url)
    for _ in range(5):
        shop.pay(1000)
    deliver()
    deliver()
    deliver()
    assert len(receiver.received) == 5 and len(set(receiver.event_ids())) == 5


def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(shop, receiver, settings, monkeypatch):
    endpoint, old = endpoint_for(shop.merchant, receiver.url)
    new = services.endpoint_rotate_secret(endpoint=endpoint, user=None)
    assert new != old
    shop.pay(1000)
    deliver()
    request = receiver.received[-1]
    assert independent_check(old, request.headers, request.body)
    assert independent_check(new, request.headers, request.body)

    endpoint.refresh_from_db()
    after = endpoint.previous_secret_expires_at + timedelta(seconds=1)
    monkeypatch.setattr(services, "_now", lambda: after)
    assert services.signing_secrets(endpoint) == [new]
    assert AuditLog.objects.filter(action="webhook.rotate_secret").count() == 1
    assert old not in json.dumps(list(AuditLog.objects.values_list("details", flat=True)))


def test_resend_sends_the_same_event_again_and_is_audited(shop, receiver):
    endpoint, _ = endpoint_for(shop.merchant, receiver.url)
    shop.pay(1000)
    deliver()
    row = WebhookDelivery.objects.get()
    services.delivery_resend(delivery=row, user=None)
    deliver()
    assert len(receiver.received) == 2 and len(set(receiver.event_ids())) == 1
    assert AuditLog.objects.filter(action="webhook.resend").count() == 1


def test_resend_all_failed_since_requeues_only_failed_ones_from_then_on(shop, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = []
    endpoint, _ = endpoint_for(shop.merchant, receiver.url)
    receiver.answer = lambda request: 500
    for _ in range(3):
        shop.pay(1000)
    deliver()
    assert WebhookDelivery.objects.filter(status=Status.FAILED).count() == 3
    oldest = WebhookEvent.objects.order_by("id").first()
    WebhookEvent.objects.filter(pk=oldest.pk).update(created_at=timezone.now() - timedelta(days=2))

    count = services.deliveries_resend_failed(endpoint=endpoint, since=timezone.now() - timedelta(days=1), user=None)

    assert count == 2
    assert WebhookDelivery.objects.filter(status=Status.PENDING).count() == 2
    assert WebhookDelivery.objects.get(event=oldest).status == Status.FAILED


def test_a_slow_endpoint_holds_a_few_threads_and_the_others_are_delivered_meanwhile(receiver, settings, db):
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    merchant = MerchantFactory()
    slow_endpoint, _ = endpoint_for(merchant, receiver.url + "/slow", events=["payment.failed"])
    fast_endpoint, _ = endpoint_for(merchant, receiver.url + "/fast", events=["payment.failed"])
    merchant.refresh_from_db()

    def answer(request):
        if request.path.endswith("/slow"):
            time.sleep(0.4)
        return 200

    receiver.answer = answer
    for number in range(8):
        services.event_emit(merchant=merchant, type="payment.failed", data=lambda number=number: {"n": number})
    started = time.monotonic()
    fast_done_at: list[float] = []
    original = receiver.answer

    def timing(request):
        status = original(request)
        if request.path.endswith("/fast"):
            fast_done_at.append(time.monotonic() - started)
        return status

    receiver.answer = timing
    deliver()

    assert len(receiver.received) == 16 and len(fast_done_at) == 8
    # 8 slow answers at 0.4 s, at most 2 at a time: about 1.6 s in all; the fast endpoint's 8 were all answered
    # while the slow one was still being worked through.
    assert time.monotonic() - started >= 1.5
    assert max(fast_done_at) < 1.0
    assert receiver.max_in_flight <= 2 + 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_never_claim_the_same_delivery(requires_postgres, receiver):
    merchant = MerchantFactory()
    endpoint_for(merchant, receiver.url, events=["payment.failed"])
    merchant.refresh_from_db()
    for number in range(120):
        services.event_emit(merchant=merchant, type="payment.failed", data=lambda number=number: {"n": number})
    claimed: list[list[int]] = [[], [], []]
    barrier = threading.Barrier(3)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            while batch := delivery.claim(limit=7):
                claimed[index].extend(item.delivery_id for item in batch)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [pk for batch in claimed for pk in batch]
    assert len(everything) == len(set(everything)) == 120
    assert sum(1 for batch in claimed if batch) >= 2  # the work really was shared
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}


def test_a_refused_payment_sends_payment_failed_with_the_channels_reason(shop, receiver):
    endpoint_for(shop.merchant, receiver.url)
    order = shop.pay(1104)  # the sandbox refuses with NOTENOUGH
    assert order["status"] == "FAILED"
    deliver()
    [request] = receiver.received
    event = json.loads(request.body)
    assert event["type"] == "payment.failed"
    assert event["data"]["err_code"] == "NOTENOUGH" and event["data"] == order


def test_a_switched_off_endpoint_waits_without_blocking_the_others_and_resumes_when_switched_on(receiver, db):
    merchant = MerchantFactory()
    off, _ = endpoint_for(merchant, receiver.url + "/off", events=["payment.failed"])
    merchant.refresh_from_db()
    for number in range(30):
        services.event_emit(merchant=merchant, type="payment.failed", data=lambda number=number: {"n": number})
    services.endpoint_update(endpoint=off, url=off.url, events=off.events, description="", is_active=False, user=None)
    on, _ = endpoint_for(merchant, receiver.url + "/on", events=["payment.failed"])
    merchant.refresh_from_db()
    services.event_emit(merchant=merchant, type="payment.failed", data=lambda: {"n": "later"})

    # The 30 older rows of the switched-off endpoint come first in due order; a claim of 5 still finds the other's.
    [claimed] = delivery.claim(limit=5)
    assert claimed.endpoint_id == on.pk
    assert not WebhookDelivery.objects.filter(endpoint=off, next_attempt_at__isnull=False).exists()

    services.endpoint_update(endpoint=off, url=off.url, events=off.events, description="", is_active=True, user=None)
    deliver()
    assert len([r for r in receiver.received if r.path.endswith("/off")]) == 30


def test_an_idle_drain_looks_for_work_less_and_less_often(monkeypatch, db):
    """Every worker runs a drain every 2 s (the beat): with nothing to send it lingers a second, claiming at 50, 100,
    200, 400 ms gaps rather than every 50 ms."""
    monkeypatch.setattr(delivery, "_IDLE_LINGER", 1.0)
    claims = []
    real_claim = delivery.claim
    monkeypatch.setattr(delivery, "claim", lambda **kwargs: claims.append(time.monotonic()) or real_claim(**kwargs))
    result = deliver()
    assert result.sent == 0 and 0.9 <= result.seconds < 1.5
    gaps = [round(later - earlier, 2) for earlier, later in zip(claims, claims[1:], strict=False)]
    assert 4 <= len(claims) <= 6 and gaps == sorted(gaps), gaps
