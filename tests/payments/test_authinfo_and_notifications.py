"""authinfo for the SDK (cached within expires_in), and UMF backUrl notifications (verified, stored raw first)."""

from urllib.parse import urlencode

import pytest

from payments.gateways import umpay
from payments.models import Payment, UmpayNotification
from portal.models import Merchant
from tests.factories import MerchantFactory, StoreFactory

pytestmark = pytest.mark.django_db


def test_authinfo_direct_merchant_and_cache(shop):
    first = shop.terminal.post("face/authinfo", {"rawdata": "raw-1"})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["authinfo"] and body["expires_in"] == 3600
    assert (body["appid"], body["mch_id"], body["store_id"]) == (
        shop.merchant.appid,
        shop.merchant.mch_id,
        shop.device.store.store_id,
    )

    again = shop.terminal.post("face/authinfo", {"rawdata": "raw-1"})
    assert again.json()["authinfo"] == body["authinfo"]
    assert shop.upstream_calls() == ["face/get_wxpayface_authinfo"]

    reinit = shop.terminal.post("face/authinfo", {"rawdata": "raw-2"})  # the SDK was initialised again
    assert reinit.status_code == 200
    assert shop.upstream_calls() == ["face/get_wxpayface_authinfo"] * 2


def test_authinfo_through_umpay(make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)
    response = shop.terminal.post("face/authinfo", {"rawdata": "raw-umf"})
    assert response.status_code == 200, response.text
    assert response.json()["authinfo"]
    assert shop.upstream_calls() == ["pay/wxface"]
    event_request = shop.transport.requests[0].content.decode()
    assert '"rawDate"' in event_request


def test_authinfo_requires_rawdata(shop):
    response = shop.terminal.post("face/authinfo", {})
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"rawdata"}


def _notification(shop, order_no, key, **changes):
    fields = {
        "orderNo": order_no,
        "acqSpId": "Y471790403",
        "acqMerId": "41509208",
        "notifyType": "1",
        "txnAmt": "2201",
        "payTime": "20261122101010",
        **changes,
    }
    return umpay.sign_notification({name: value for name, value in fields.items() if value}, key)


def test_umpay_notification_is_verified_stored_and_triggers_a_query(make_shop, client):
    from sandbox.services import _umpay_identity  # the sandbox's UMF key signs like UMF would

    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(2201)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "PAYING"
    shop.clock.advance(12)  # the sandbox has settled the payment by now
    body = urlencode(_notification(shop, order["out_trade_no"], _umpay_identity().private_key_pem.reveal()))

    response = client.post("/notify/umpay/", data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert response.json()["respCode"] == "00"
    record = UmpayNotification.objects.get()
    assert record.is_verified and record.result == "applied"
    payment.refresh_from_db()
    assert payment.next_check_at <= shop.clock.now()  # query now, do not trust the notification alone
    shop.drain()
    payment.refresh_from_db()
    assert payment.status == "SUCCESS"


@pytest.mark.parametrize("acq_sp_id", ["Y471790403", ""])
def test_umpay_notification_goes_to_the_provider_it_names(make_shop, client, acq_sp_id):
    """acqMerId is unique per provider only. A notification's acqSpId picks the provider; without it, an acqMerId
    two providers share is refused as ambiguous (the scheduled queries settle the payment anyway)."""
    from sandbox.services import _umpay_identity

    shop = make_shop(Merchant.Channel.UMPAY)
    # Another provider onboarded a merchant with the same acqMerId (and has the same order number).
    twin = MerchantFactory(channel=Merchant.Channel.UMPAY, umpay_acq_mer_id="41509208", appid="", mch_id="")
    order = shop.pay(2201)
    twin_payment = Payment.objects.create(
        merchant=twin, store=StoreFactory(merchant=twin), channel="UMPAY", method="CODE", wallet="WECHAT",
        out_trade_no=order["out_trade_no"], total_fee=2201, body="b", order_time="20261122101010",
    )  # fmt: skip
    shop.clock.advance(12)
    key = _umpay_identity().private_key_pem.reveal()
    body = urlencode(_notification(shop, order["out_trade_no"], key, acqSpId=acq_sp_id))

    response = client.post("/notify/umpay/", data=body, content_type="application/x-www-form-urlencoded")

    record = UmpayNotification.objects.get()
    twin_payment.refresh_from_db()
    assert twin_payment.next_check_at is None  # never the other provider's merchant
    if acq_sp_id:
        assert (response.status_code, record.result) == (200, "applied")
        assert shop.payment(order["out_trade_no"]).next_check_at <= shop.clock.now()
    else:
        assert (response.status_code, record.result) == (404, "unknown merchant or order")


def test_umpay_notification_with_bad_signature_is_rejected_and_changes_nothing(make_shop, client):
    from portal.credentials import generate_key_and_certificate

    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(2201)
    forged_key, _ = generate_key_and_certificate("forger")
    body = urlencode(_notification(shop, order["out_trade_no"], forged_key))
    before = shop.payment(order["out_trade_no"]).next_check_at

    response = client.post("/notify/umpay/", data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    record = UmpayNotification.objects.get()
    assert (record.is_verified, record.result) == (False, "bad signature")
    assert record.body == body  # stored raw before anything else
    assert shop.payment(order["out_trade_no"]).next_check_at == before


def test_garbled_notification_is_stored_and_refused(client, db):
    response = client.post("/notify/umpay/", data=b"\xff\x00garbage", content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 404)
    assert UmpayNotification.objects.count() == 1
