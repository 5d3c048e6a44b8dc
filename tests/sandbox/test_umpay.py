"""UMF calls round-trip against the sandbox; signature refusals; scenarios 2xx; backUrl notifications."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest

from payments.gateways import umpay
from payments.gateways.base import Outcome
from payments.gateways.http import Timeouts
from sandbox import services
from sandbox.models import SandboxNotification, SandboxUmpayOrder

from .conftest import ACQ_MER_ID, ACQ_SP_ID, AUTH_CODE, UMPAY_BASE

pytestmark = pytest.mark.django_db
BACK_URL = "http://merchant.test/notify/umpay/"


def pay(config, http_client, amount=1000, order_no="U1", back_url="", **kwargs):
    request = umpay.MicropayRequest(
        order_no=order_no,
        txn_amt=amount,
        auth_code=AUTH_CODE,
        goods_id="g1",
        goods_info="coffee",
        back_url=back_url,
        is_face_pay=True,
    )
    return umpay.micropay(config, request, client=http_client, **kwargs)


def query(config, http_client, order_no="U1"):
    return umpay.query_order(config, order_no=order_no, client=http_client)


def test_wxface(umpay_config, http_client):
    result = umpay.wxface(
        umpay_config, umpay.WxfaceRequest(raw_data="raw", appid="wxa", mch_id="123"), client=http_client
    )
    assert (result.outcome, result.expires_in, result.appid, result.mch_id) == (Outcome.SUCCESS, 3600, "wxa", "123")
    assert result.authinfo


def test_micropay_query_refund_cycle(umpay_config, http_client, sandbox_clock):
    paid = pay(umpay_config, http_client)
    assert (paid.outcome, paid.code, paid.txn_amt, paid.order_no) == (Outcome.SUCCESS, "00", 1000, "U1")
    assert paid.transaction_id and paid.dep_bank_seq.startswith("4200") and paid.payer_info.startswith("oSbx")
    queried = query(umpay_config, http_client)
    assert (queried.outcome, queried.orig_resp_code) == (Outcome.SUCCESS, "00")

    refund = umpay.refund(
        umpay_config,
        umpay.RefundRequest(order_no="U1-R1", orig_order_no="U1", orig_txn_amt=1000, txn_amt=400),
        client=http_client,
    )
    too_much = umpay.refund(
        umpay_config,
        umpay.RefundRequest(order_no="U1-R2", orig_order_no="U1", orig_txn_amt=1000, txn_amt=601),
        client=http_client,
    )
    pending = umpay.refund_query(umpay_config, order_no="U1-R1", client=http_client)
    sandbox_clock.advance(5)
    done = umpay.refund_query(umpay_config, order_no="U1-R1", client=http_client)

    assert refund.outcome is Outcome.SUCCESS
    assert (too_much.outcome, too_much.code) == (Outcome.REJECTED, "33")
    assert (pending.outcome, pending.orig_resp_code) == (Outcome.UNKNOWN, "02")
    assert (done.outcome, done.orig_resp_code) == (Outcome.SUCCESS, "00")
    assert query(umpay_config, http_client).orig_resp_code == "01"
    assert services.sandbox_ledger()["U1"] == {
        "channel": "umpay",
        "charged": 600,
        "refunded": 400,
        "refund_pending": 0,
        "state": "01",
    }


def test_cancel_same_day_only(umpay_config, http_client, sandbox_clock):
    pay(umpay_config, http_client, order_no="C1")
    assert umpay.cancel_order(umpay_config, order_no="C1", client=http_client).outcome is Outcome.SUCCESS
    assert query(umpay_config, http_client, "C1").orig_resp_code == "04"
    assert services.sandbox_ledger()["C1"]["charged"] == 0

    pay(umpay_config, http_client, order_no="C2")
    sandbox_clock.advance(timedelta(days=1).total_seconds())
    late = umpay.cancel_order(umpay_config, order_no="C2", client=http_client)
    assert (late.outcome, late.code) == (Outcome.REJECTED, "39")


def test_duplicate_order_no_does_not_charge_twice(umpay_config, http_client):
    pay(umpay_config, http_client)
    again = pay(umpay_config, http_client)
    # A duplicate order number is not a refusal: the first attempt may have charged, so the client queries.
    assert (again.outcome, again.code) == (Outcome.UNKNOWN, "16")
    assert SandboxUmpayOrder.objects.count() == 1


def test_201_paying_then_success(umpay_config, http_client, sandbox_clock):
    first = pay(umpay_config, http_client, amount=201)
    assert (first.outcome, first.code) == (Outcome.UNKNOWN, "02")
    assert query(umpay_config, http_client).orig_resp_code == "02"
    sandbox_clock.advance(10)
    assert query(umpay_config, http_client).orig_resp_code == "00"


def test_202_password_then_failed(umpay_config, http_client, sandbox_clock):
    first = pay(umpay_config, http_client, amount=1202)
    assert (first.outcome, first.code) == (Outcome.UNKNOWN, "62")
    sandbox_clock.advance(10)
    result = query(umpay_config, http_client)
    assert (result.outcome, result.orig_resp_code) == (Outcome.REJECTED, "06")
    assert services.sandbox_ledger()["U1"]["charged"] == 0


def test_203_declined(umpay_config, http_client):
    result = pay(umpay_config, http_client, amount=203)
    assert (result.outcome, result.code) == (Outcome.REJECTED, "15")
    assert query(umpay_config, http_client).orig_resp_code == "06"


def test_204_timeout_but_paid(umpay_config, http_client, sandbox_clock):
    result = pay(umpay_config, http_client, amount=204, timeouts=Timeouts(read=10))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "TIMEOUT")
    assert query(umpay_config, http_client).orig_resp_code == "00"


def test_205_unknown_but_paid(umpay_config, http_client):
    result = pay(umpay_config, http_client, amount=205)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "04")
    assert query(umpay_config, http_client).outcome is Outcome.SUCCESS


def test_wrong_key_is_refused_with_a_signed_answer(umpay_provider, umpay_config, other_keys, http_client):
    config = umpay.UmpayConfig(
        acq_sp_id=ACQ_SP_ID,
        acq_mer_id=ACQ_MER_ID,
        private_key=other_keys.private_pem,
        umpay_certificate=umpay_config.umpay_certificate,
        base_url=UMPAY_BASE,
    )
    result = pay(config, http_client)
    # The refusal verified against UMF's certificate (else the gateway would say BAD_SIGNATURE).
    assert (result.outcome, result.code, result.message) == (Outcome.REJECTED, "11", "验证签名失败")
    assert not SandboxUmpayOrder.objects.exists()


def test_tampered_request_and_unknown_merchant(umpay_config, umf_merchant_key_der, http_client):
    fields = umpay.sign_request({"acqSpId": ACQ_SP_ID, "acqMerId": ACQ_MER_ID, "orderNo": "U1"}, umf_merchant_key_der)
    tampered = http_client.post(UMPAY_BASE + "/pay/queryOrder", json={**fields, "orderNo": "U2"}).json()
    assert tampered["respCode"] == "11"
    assert umpay.verify_response(tampered, umpay_config.umpay_certificate)

    stranger = umpay.sign_request({"acqSpId": ACQ_SP_ID, "acqMerId": "99999999", "orderNo": "U1"}, umf_merchant_key_der)
    refused = http_client.post(UMPAY_BASE + "/pay/queryOrder", json=stranger).json()
    assert refused["respCode"] == "31"


def test_a_back_url_not_starting_with_http_is_refused(umpay_config, http_client, sandbox_clock):
    """UMF: backUrl must start with http:// (必须以 http://开始) — an https address is a parameter error, and
    nothing is charged."""
    result = pay(umpay_config, http_client, order_no="U-HTTPS", back_url="https://pay.example.com/notify/umpay/")
    assert (result.code, result.message) == ("13", "backUrl必须以http://开始")
    assert not SandboxUmpayOrder.objects.filter(order_no="U-HTTPS").exists()


def test_back_url_notification_signed_and_retried(umpay_config, http_client, sandbox_clock):
    pay(umpay_config, http_client, amount=201, back_url=BACK_URL)
    assert not SandboxNotification.objects.exists()  # nothing paid yet
    sandbox_clock.advance(10)

    received: list[httpx.Request] = []
    answers = [
        httpx.Response(500),
        httpx.Response(200, json={"respCode": "99"}),
        httpx.Response(200, json={"respCode": "00"}),
    ]

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return answers.pop(0)

    receiving = httpx.Client(transport=httpx.MockTransport(receiver))
    # The payment settles in the task's advance step, even though nobody queried.
    assert services.sandbox_deliver_due_notifications(client=receiving) == 0
    assert services.sandbox_deliver_due_notifications(client=receiving) == 0  # not due again for 60 s
    sandbox_clock.advance(60)
    assert services.sandbox_deliver_due_notifications(client=receiving) == 0
    sandbox_clock.advance(60)
    assert services.sandbox_deliver_due_notifications(client=receiving) == 1

    assert len(received) == 3
    fields = umpay.parse_notification_form(received[0].content)
    assert umpay.verify_notification(fields, umpay_config.umpay_certificate)
    assert (fields["orderNo"], fields["txnAmt"], fields["respCode"]) == ("U1", "201", "00")
    assert received[0].headers["content-type"].startswith("application/x-www-form-urlencoded")
    note = SandboxNotification.objects.get()
    assert (note.attempts, note.last_status, note.next_attempt_at) == (3, 200, None)


def test_notifications_stop_after_four_attempts(umpay_config, http_client, sandbox_clock):
    pay(umpay_config, http_client, back_url=BACK_URL)
    failing = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    for _ in range(6):
        services.sandbox_deliver_due_notifications(client=failing)
        sandbox_clock.advance(60)
    note = SandboxNotification.objects.get()
    assert (note.attempts, note.delivered_at, note.next_attempt_at) == (4, None, None)


def test_non_json_body(umpay_provider, http_client):
    answer = json.loads(http_client.post(UMPAY_BASE + "/pay/micropay", content=b"nope").content)
    assert answer["respCode"] == "13" and answer["signature"]
