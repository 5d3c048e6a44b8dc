"""Notification endpoints accept POSTs from anyone and store each one before verifying it: an address whose POSTs
keep failing verification is throttled (429 in the channel's shape, nothing stored), and rows that never verified
are pruned after NOTIFICATION_UNVERIFIED_RETENTION_DAYS while verified rows are kept."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.utils import timezone

from payments import tasks as payment_tasks
from payments.gateways import umpay
from payments.models import UmpayNotification
from payscore import tasks as payscore_tasks
from payscore.models import PayscoreNotification
from portal import throttle
from portal.models import Merchant

pytestmark = pytest.mark.django_db
PAYSCORE_URL = "/notify/wechatpay/payscore/"


@pytest.fixture(autouse=True)
def _small_budget(monkeypatch):
    monkeypatch.setattr(throttle, "UNVERIFIED_BUDGET", 3)


def _garbage(client, url, address="203.0.113.7"):
    return client.post(url, data=b"junk", content_type="application/x-www-form-urlencoded", REMOTE_ADDR=address)


def test_umpay_unverified_posts_are_throttled_per_address(client):
    for _ in range(3):
        assert _garbage(client, "/notify/umpay/").status_code in (400, 404)
    assert UmpayNotification.objects.count() == 3

    refused = _garbage(client, "/notify/umpay/")

    assert refused.status_code == 429
    assert refused.json()["respCode"] == "99"  # UMF's shape; anything but 00 makes UMF notify again
    assert UmpayNotification.objects.count() == 3  # not stored
    assert _garbage(client, "/notify/umpay/", address="198.51.100.9").status_code != 429  # other addresses unaffected
    assert _garbage(client, PAYSCORE_URL).status_code == 401  # each endpoint has its own budget


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(client, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(client_ip):
        return client.post(
            "/notify/umpay/",
            data=b"junk",
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=client_ip,
        )

    for _ in range(3):
        assert via_proxy("203.0.113.7").status_code != 429
    assert via_proxy("203.0.113.7").status_code == 429
    # Another sender behind the same proxy is not throttled by the first one's failures.
    assert via_proxy("198.51.100.9").status_code != 429
    assert UmpayNotification.objects.filter(remote_addr="198.51.100.9").count() == 1


def test_verified_umpay_notifications_never_spend_the_budget(make_shop, client):
    from sandbox.services import _umpay_identity

    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(1000)
    fields = {"orderNo": order["out_trade_no"], "acqSpId": "Y471790403", "acqMerId": "41509208", "txnAmt": "1000"}
    body = urlencode(umpay.sign_notification(fields, _umpay_identity().private_key_pem.reveal()))
    statuses = [
        client.post("/notify/umpay/", data=body, content_type="application/x-www-form-urlencoded").status_code
        for _ in range(5)
    ]
    assert statuses == [200] * 5


def test_payscore_unverified_posts_are_throttled_per_address(client):
    for _ in range(3):
        assert _garbage(client, PAYSCORE_URL).status_code == 401
    assert PayscoreNotification.objects.count() == 3

    refused = _garbage(client, PAYSCORE_URL)

    assert refused.status_code == 429
    assert refused.json()["code"] == "FREQUENCY_LIMITED"  # WeChat's error shape; it retries anything but 2xx
    assert PayscoreNotification.objects.count() == 3


def test_unverified_notification_rows_are_pruned_after_the_retention():
    old = timezone.now() - timedelta(days=settings.NOTIFICATION_UNVERIFIED_RETENTION_DAYS, hours=1)
    recent = timezone.now() - timedelta(days=settings.NOTIFICATION_UNVERIFIED_RETENTION_DAYS - 1)
    for model in (UmpayNotification, PayscoreNotification):
        for verified, received in ((False, old), (False, recent), (True, old)):
            row = model.objects.create(body="x", is_verified=verified)
            model.objects.filter(pk=row.pk).update(received_at=received)

    assert payment_tasks.prune_unverified_notifications() == 1
    assert payscore_tasks.prune_unverified_notifications() == 1

    for model in (UmpayNotification, PayscoreNotification):
        kept = set(model.objects.values_list("is_verified", "received_at"))
        assert kept == {(False, recent), (True, old)}


def test_the_pruning_runs_from_beat():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"payments.tasks.prune_unverified_notifications", "payscore.tasks.prune_unverified_notifications"} <= tasks
