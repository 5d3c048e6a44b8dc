"""Django admin: payments, refunds, their events and UMF's raw notifications can be read, searched and filtered by
platform superusers, and nothing there can be added, changed or deleted."""

import pytest
from django.test import Client

from payments import services
from payments.models import Payment, PaymentEvent, Refund, UmpayNotification
from tests.factories import login_verified, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    client = login_verified(Client(), make_user("root", superuser=True))
    return client


@pytest.fixture
def refunded(shop) -> Payment:
    order = shop.pay(1000)
    payment = shop.payment(order["out_trade_no"])
    services.refund_create(payment=payment, refund_fee=300, reason="admin test", user=None)
    shop.drain()
    return payment


def test_superuser_reads_and_searches_payments_refunds_and_events(root, refunded):
    refund = Refund.objects.get(payment=refunded)
    event = PaymentEvent.objects.filter(payment=refunded).first()

    listing = root.get(f"/admin/payments/payment/?q={refunded.out_trade_no}")
    assert listing.status_code == 200 and refunded.out_trade_no in listing.text
    detail = root.get(f"/admin/payments/payment/{refunded.pk}/change/")
    assert detail.status_code == 200 and refund.out_refund_no in detail.text  # refunds and events inline
    assert root.get(f"/admin/payments/refund/?q={refund.out_refund_no}").status_code == 200
    assert root.get(f"/admin/payments/refund/{refund.pk}/change/").status_code == 200
    assert root.get("/admin/payments/paymentevent/?action__exact=micropay").status_code == 200
    assert root.get(f"/admin/payments/paymentevent/{event.pk}/change/").status_code == 200
    assert root.get("/admin/payments/payment/?status__exact=SUCCESS").status_code == 200


def test_nothing_can_be_added_changed_or_deleted(root, refunded):
    notification = UmpayNotification.objects.create(body="orderNo=X1", order_no="X1")
    assert root.get("/admin/payments/umpaynotification/?q=X1").status_code == 200

    for model, pk in (
        ("payment", refunded.pk),
        ("refund", refunded.refunds.get().pk),
        ("umpaynotification", notification.pk),
    ):
        assert root.get(f"/admin/payments/{model}/add/").status_code == 403
        assert root.post(f"/admin/payments/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
        assert root.post(f"/admin/payments/{model}/{pk}/change/", {}).status_code == 403

    refunded.refresh_from_db()
    assert refunded.status == "SUCCESS" and Refund.objects.filter(payment=refunded).count() == 1
    assert UmpayNotification.objects.filter(pk=notification.pk).exists()
