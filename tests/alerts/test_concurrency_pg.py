"""Two evaluations at once (a slow run overlapping the next beat, two workers) raise a finding once: both see the
ATTENTION payment as not yet alerted, and the unique key settles which one raises it (PostgreSQL)."""

import threading

import pytest
from django.db import connection

from alerts import rules
from alerts import services as alert_services
from alerts.models import Alert, AlertDelivery, RobotKind
from payments.models import Payment, PaymentStatus
from tests.factories import MerchantFactory, StoreFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_evaluations_at_once_raise_one_alert_with_one_delivery(requires_postgres, monkeypatch):
    merchant = MerchantFactory()
    store = StoreFactory(merchant=merchant)
    payment = Payment.objects.create(
        merchant=merchant, store=store, channel=merchant.channel, method=Payment.Method.CODE, out_trade_no="PG0001",
        total_fee=100, body="x", request_fingerprint="x" * 64, status=PaymentStatus.ATTENTION,
    )  # fmt: skip
    alert_services.channel_create(
        owner=merchant.provider, name="ops", kind=RobotKind.WECOM,
        webhook_url="http://127.0.0.1:9/cgi-bin/webhook/send?key=concurrency-test-key", user=None,
    )  # fmt: skip
    # Both evaluations read the payment as not yet alerted before either raises it.
    barrier = threading.Barrier(2)
    found = rules.payments_in_attention

    def found_together(now):
        findings = found(now)
        barrier.wait(timeout=10)
        return findings

    monkeypatch.setattr(rules, "RULES", (found_together,))
    raised, errors = [], []

    def evaluate():
        try:
            raised.append(rules.evaluate())
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(raised) == [0, 1]
    alert = Alert.objects.get()
    assert alert.key == f"attention:payment:{payment.pk}"
    assert AlertDelivery.objects.filter(alert=alert).count() == 1
