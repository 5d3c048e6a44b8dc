"""WeChat Pay v2 calls round-trip against the sandbox; the sandbox refuses what WeChat would refuse."""

from __future__ import annotations

import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome
from sandbox import services
from sandbox.models import SandboxAuthinfo, SandboxWechatOrder

from .conftest import API_V2_KEY, APPID, AUTH_CODE, MCH_ID, SUB_MCH_ID, WX_BASE, provider_v2_config, v2_config

pytestmark = pytest.mark.django_db


def pay(config, http_client, out_trade_no="T1", total_fee=1000, auth_code=AUTH_CODE):
    return v2.micropay(
        config,
        v2.MicropayRequest(
            out_trade_no=out_trade_no,
            total_fee=total_fee,
            body="coffee",
            auth_code=auth_code,
            spbill_create_ip="1.2.3.4",
        ),
        client=http_client,
    )


@pytest.mark.parametrize("sign_type", [v2.SignType.MD5, v2.SignType.HMAC_SHA256])
def test_micropay_query_reverse_direct(wechat_merchant, http_client, sign_type):
    config = v2_config(sign_type=sign_type)

    paid = pay(config, http_client)

    assert paid.outcome is Outcome.SUCCESS
    assert paid.transaction_id.startswith("4200") and len(paid.transaction_id) == 28
    assert paid.openid.startswith("oSbx") and paid.cash_fee == 1000 and paid.total_fee == 1000
    assert paid.bank_type and len(paid.time_end) == 14
    query = v2.orderquery(config, v2.OrderQueryRequest(transaction_id=paid.transaction_id), client=http_client)
    assert (query.outcome, query.trade_state, query.out_trade_no, query.total_fee) == (
        Outcome.SUCCESS,
        "SUCCESS",
        "T1",
        1000,
    )
    reversed_ = v2.reverse(config, v2.ReverseRequest(out_trade_no="T1"), client=http_client)
    assert (reversed_.outcome, reversed_.recall) == (Outcome.SUCCESS, False)
    query = v2.orderquery(config, v2.OrderQueryRequest(out_trade_no="T1"), client=http_client)
    assert (query.outcome, query.trade_state) == (Outcome.REJECTED, "REVOKED")
    assert services.sandbox_ledger()["T1"] == {
        "channel": "wechat",
        "charged": 0,
        "refunded": 0,
        "refund_pending": 0,
        "state": "REVOKED",
    }


def test_service_provider_mode(wechat_provider, http_client):
    config = provider_v2_config()

    paid = pay(config, http_client, out_trade_no="SP1")

    assert paid.outcome is Outcome.SUCCESS
    order = SandboxWechatOrder.objects.get(out_trade_no="SP1")
    assert (order.mch_id, order.sub_mch_id) == ("1900000200", SUB_MCH_ID)
    query = v2.orderquery(config, v2.OrderQueryRequest(out_trade_no="SP1"), client=http_client)
    assert query.trade_state == "SUCCESS"
    # The same number without sub_mch_id is another merchant's order book.
    query = v2.orderquery(
        provider_v2_config(sub_mch_id=""), v2.OrderQueryRequest(out_trade_no="SP1"), client=http_client
    )
    assert (query.outcome, query.code) == (Outcome.REJECTED, "ORDERNOTEXIST")


def test_unregistered_sub_merchant_is_refused(wechat_provider, http_client):
    result = pay(provider_v2_config(sub_mch_id="1999999999"), http_client)
    assert (result.outcome, result.code, result.message) == (Outcome.REJECTED, "FAIL", "sub_mch_id与mch_id不匹配")
    assert not SandboxWechatOrder.objects.exists()


def test_face_authinfo(wechat_merchant, http_client):
    result = v2.get_wxpayface_authinfo(
        v2_config(),
        v2.FaceAuthinfoRequest(store_id="S1", store_name="Store", device_id="D1", rawdata="raw"),
        client=http_client,
    )
    assert result.outcome is Outcome.SUCCESS
    assert result.expires_in == 3600 and len(result.authinfo) >= 64
    assert SandboxAuthinfo.objects.get(authinfo=result.authinfo).mch_id == MCH_ID


def _post_xml(http_client, path: str, fields: dict) -> dict[str, str]:
    response = http_client.post(WX_BASE + path, content=v2.to_xml(fields).encode())
    assert response.status_code == 200
    return v2.from_xml(response.content)


def _micropay_fields(**overrides) -> dict:
    fields = {
        "appid": APPID,
        "mch_id": MCH_ID,
        "nonce_str": "n1",
        "body": "coffee",
        "out_trade_no": "X1",
        "total_fee": "100",
        "spbill_create_ip": "1.2.3.4",
        "auth_code": AUTH_CODE,
    }
    fields.update(overrides)
    return fields


def _assert_sign_error(answer: dict[str, str]) -> None:
    # Like WeChat: a communication-layer FAIL, unsigned, and nothing recorded.
    assert answer == {"return_code": "FAIL", "return_msg": "签名错误"}
    assert not SandboxWechatOrder.objects.exists()


def test_wrong_key_is_refused(wechat_merchant, http_client):
    result = pay(v2_config(api_key="W" * 32), http_client)
    assert (result.outcome, result.code, result.message) == (Outcome.REJECTED, "FAIL", "签名错误")
    assert not SandboxWechatOrder.objects.exists()


def test_tampered_field_is_refused(wechat_merchant, http_client):
    fields = _micropay_fields()
    fields["sign"] = v2.sign(fields, API_V2_KEY)
    fields["total_fee"] = "1"
    _assert_sign_error(_post_xml(http_client, "/pay/micropay", fields))


def test_md5_signature_under_hmac_sign_type_is_refused(wechat_merchant, http_client):
    fields = _micropay_fields(sign_type="HMAC-SHA256")
    fields["sign"] = v2.sign(fields, API_V2_KEY, v2.SignType.MD5)
    _assert_sign_error(_post_xml(http_client, "/pay/micropay", fields))


def test_missing_sign_is_refused(wechat_merchant, http_client):
    _assert_sign_error(_post_xml(http_client, "/pay/micropay", _micropay_fields()))


def test_unsigned_field_added_after_signing_is_refused(wechat_merchant, http_client):
    fields = _micropay_fields()
    fields["sign"] = v2.sign(fields, API_V2_KEY)
    fields["attach"] = "extra"
    _assert_sign_error(_post_xml(http_client, "/pay/micropay", fields))


def test_correct_manual_signature_is_accepted(wechat_merchant, http_client):
    fields = _micropay_fields()
    fields["sign"] = v2.sign(fields, API_V2_KEY)
    answer = _post_xml(http_client, "/pay/micropay", fields)
    assert answer["result_code"] == "SUCCESS"
    assert v2.verify(answer, API_V2_KEY)


def test_unknown_merchant_and_wrong_appid(wechat_merchant, http_client):
    unknown = pay(v2_config(mch_id="1111111111"), http_client)
    assert (unknown.outcome, unknown.message) == (Outcome.REJECTED, "商户号mch_id不存在")
    wrong_appid = pay(v2_config(appid="wxother"), http_client)
    assert (wrong_appid.outcome, wrong_appid.message) == (Outcome.REJECTED, "appid和mch_id不匹配")


def test_authinfo_requires_sign_type(wechat_merchant, http_client):
    fields = {
        "appid": APPID,
        "mch_id": MCH_ID,
        "store_id": "S1",
        "store_name": "Store",
        "device_id": "D1",
        "rawdata": "raw",
        "now": "1700000000",
        "version": "1",
        "nonce_str": "n",
    }
    fields["sign"] = v2.sign(fields, API_V2_KEY)
    response = http_client.post(
        "http://testserver/sandbox/wechatpay-face/face/get_wxpayface_authinfo", content=v2.to_xml(fields)
    )
    assert v2.from_xml(response.content) == {"return_code": "FAIL", "return_msg": "缺少参数sign_type"}


def test_get_is_refused(wechat_merchant, http_client):
    assert http_client.get(WX_BASE + "/pay/micropay").status_code == 405


def test_invalid_auth_code_and_repeat_does_not_charge_twice(wechat_merchant, http_client):
    config = v2_config()
    invalid = pay(config, http_client, auth_code="28" + "0" * 16)
    assert (invalid.outcome, invalid.code) == (Outcome.REJECTED, "AUTH_CODE_INVALID")

    first = pay(config, http_client, out_trade_no="R1")
    again = pay(config, http_client, out_trade_no="R1")
    other_amount = pay(config, http_client, out_trade_no="R1", total_fee=999)

    assert first.outcome is Outcome.SUCCESS
    assert (again.outcome, again.code) == (Outcome.REJECTED, "ORDERPAID")
    assert (other_amount.outcome, other_amount.code) == (Outcome.REJECTED, "OUT_TRADE_NO_USED")
    assert SandboxWechatOrder.objects.count() == 1
    assert services.sandbox_ledger()["R1"]["charged"] == 1000


def test_refund_processing_then_success(wechat_merchant, http_client, sandbox_clock):
    config = v2_config()
    paid = pay(config, http_client, out_trade_no="RF1", total_fee=500)

    accepted = v2.refund(
        config,
        v2.RefundRequest(out_refund_no="RF1-1", total_fee=500, refund_fee=200, transaction_id=paid.transaction_id),
        client=http_client,
    )
    retried = v2.refund(
        config,
        v2.RefundRequest(out_refund_no="RF1-1", total_fee=500, refund_fee=200, out_trade_no="RF1"),
        client=http_client,
    )
    too_much = v2.refund(
        config,
        v2.RefundRequest(out_refund_no="RF1-2", total_fee=500, refund_fee=301, out_trade_no="RF1"),
        client=http_client,
    )
    processing = v2.refundquery(config, v2.RefundQueryRequest(out_refund_no="RF1-1"), client=http_client)
    sandbox_clock.advance(5)
    done = v2.refundquery(config, v2.RefundQueryRequest(out_refund_no="RF1-1"), client=http_client)

    assert accepted.outcome is Outcome.SUCCESS and accepted.refund_id.startswith("5030")
    assert retried.refund_id == accepted.refund_id
    assert (too_much.outcome, too_much.code) == (Outcome.REJECTED, "PARAM_ERROR")
    assert (processing.outcome, processing.refund_status) == (Outcome.UNKNOWN, "PROCESSING")
    assert (done.outcome, done.refund_status) == (Outcome.SUCCESS, "SUCCESS")
    assert done.refunds[0].refund_fee == 200 and done.refunds[0].refund_success_time
    query = v2.orderquery(config, v2.OrderQueryRequest(out_trade_no="RF1"), client=http_client)
    assert query.trade_state == "REFUND"
    assert services.sandbox_ledger()["RF1"] == {
        "channel": "wechat",
        "charged": 300,
        "refunded": 200,
        "refund_pending": 0,
        "state": "REFUND",
    }


def test_refund_of_unknown_order_and_refundquery_without_refund(wechat_merchant, http_client):
    config = v2_config()
    refused = v2.refund(
        config, v2.RefundRequest(out_refund_no="N1", total_fee=1, refund_fee=1, out_trade_no="NOPE"), client=http_client
    )
    missing = v2.refundquery(config, v2.RefundQueryRequest(out_refund_no="N1"), client=http_client)
    assert (refused.outcome, refused.code) == (Outcome.REJECTED, "ORDERNOTEXIST")
    assert (missing.outcome, missing.code) == (Outcome.REJECTED, "REFUNDNOTEXIST")


def test_responses_are_signed_with_the_requested_sign_type(wechat_merchant, http_client):
    fields = _micropay_fields(sign_type="HMAC-SHA256")
    fields["sign"] = v2.sign(fields, API_V2_KEY, v2.SignType.HMAC_SHA256)
    answer = _post_xml(http_client, "/pay/micropay", fields)
    assert len(answer["sign"]) == 64 and v2.verify(answer, API_V2_KEY)


def test_malformed_xml(wechat_merchant, http_client):
    response = http_client.post(WX_BASE + "/pay/micropay", content=b"<xml><a>")
    assert v2.from_xml(response.content) == {"return_code": "FAIL", "return_msg": "XML格式错误"}
