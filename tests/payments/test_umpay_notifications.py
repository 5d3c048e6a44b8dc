"""UMF backUrl notifications: a refund notification (notifyType 3) brings the refund's query forward, and the reply
is signed as UMF's table says (respCode, respMsg, signature with our key)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from payments import services
from payments.gateways import umpay
from payments.models import Refund
from portal.models import Merchant
from tests.shop import cached_key_and_certificate


def _signed(fields: dict) -> str:
    from sandbox.services import _umpay_identity  # the sandbox's UMF key signs like UMF would

    key = _umpay_identity().private_key_pem.reveal()
    return urlencode(umpay.sign_notification({k: v for k, v in fields.items() if v}, key))


def _post(client, body: str):
    return client.post("/notify/umpay/", data=body, content_type="application/x-www-form-urlencoded")


@pytest.fixture
def umf_shop(make_shop):
    return make_shop(Merchant.Channel.UMPAY)


@pytest.fixture
def accepted_refund(umf_shop):
    """A paid UMF payment with a partial refund UMF accepted (PROCESSING, next query a few seconds away)."""
    order = umf_shop.pay(1000)
    payment = umf_shop.payment(order["out_trade_no"])
    assert payment.status == "SUCCESS"
    refund = services.refund_create(payment=payment, refund_fee=400, user=None, actor_label="test")
    umf_shop.drain()
    refund.refresh_from_db()
    assert (refund.kind, refund.status) == (Refund.Kind.REFUND, Refund.Status.PROCESSING)
    umf_shop.clock.advance(2)
    assert refund.next_check_at > umf_shop.clock.now()
    return payment, refund


@pytest.mark.parametrize("names_the_refund", [True, False])
def test_a_refund_notification_queries_the_refund_now(umf_shop, accepted_refund, client, names_the_refund):
    shop = umf_shop
    payment, refund = accepted_refund
    calls_before = len(shop.upstream_calls())
    body = _signed(
        {
            "orderNo": payment.out_trade_no,  # UMF names the payment; refundOrderNo (when sent) the refund
            "refundOrderNo": refund.out_refund_no if names_the_refund else "",
            "acqSpId": "Y471790403",
            "acqMerId": "41509208",
            "notifyType": "3",
            "txnAmt": "400",
        }
    )

    response = _post(client, body)

    assert (response.status_code, response.json()["respCode"]) == (200, "00")
    refund.refresh_from_db()
    assert refund.next_check_at <= shop.clock.now()  # re-queried now, not at the scheduled time
    shop.drain()
    assert shop.upstream_calls()[calls_before:] == ["pay/refundQuery"]


def test_a_refund_notification_leaves_a_settled_refund_alone(umf_shop, accepted_refund, client):
    payment, refund = accepted_refund
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.SUCCESS, next_check_at=None)
    fields = {"orderNo": payment.out_trade_no, "acqSpId": "Y471790403", "acqMerId": "41509208", "notifyType": "3"}
    body = _signed(fields)
    assert _post(client, body).status_code == 200
    refund.refresh_from_db()
    assert refund.next_check_at is None


def test_the_reply_is_signed_with_our_key(umf_shop, client):
    """UMF's reply table: respCode, respMsg, signature (our private key, the request rule)."""
    order = umf_shop.pay(1000)
    _, provider_certificate = cached_key_and_certificate("umf-provider")  # the provider key the shop signs with
    body = _signed({"orderNo": order["out_trade_no"], "acqSpId": "Y471790403", "acqMerId": "41509208"})

    answer = _post(client, body).json()

    assert set(answer) == {"respCode", "respMsg", "signature"} and answer["respCode"] == "00"
    assert umpay.verify_request(answer, provider_certificate)
    refused = _post(client, body.replace("sign=", "sign=AAAA")).json()  # bad signature: signed 99
    assert refused["respCode"] == "99" and umpay.verify_request(refused, provider_certificate)
