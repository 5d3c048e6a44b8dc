"""WeChat Pay API v3 payment-code payments, query, reverse and refunds (direct and partner) against the sandbox:
signed requests, verified answers, the v2 scenarios in v3's words, one order book with v2."""

from __future__ import annotations

import json

import httpx
import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome, VerificationError
from sandbox import book, chaos, services
from sandbox.models import SandboxWechatOrder, SandboxWechatRefund

from .conftest import (
    APPID,
    AUTH_CODE,
    MCH_ID,
    PROVIDER_APPID,
    PROVIDER_MCH_ID,
    SUB_MCH_ID,
    v2_config,
)
from .v3_client import V3Client, platform_keys_of

pytestmark = pytest.mark.django_db

SUB_APPID = "wxsandboxsubapp01"
CODEPAY = "/v3/pay/transactions/codepay"
PARTNER_CODEPAY = "/v3/pay/partner/transactions/codepay"
REFUNDS = "/v3/refund/domestic/refunds"
OTHER_MCH_ID = "1900000300"


def query_path(out_trade_no: str) -> str:
    return f"/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={MCH_ID}"


def partner_query_path(out_trade_no: str) -> str:
    return f"/v3/pay/partner/transactions/out-trade-no/{out_trade_no}?sp_mchid={PROVIDER_MCH_ID}&sub_mchid={SUB_MCH_ID}"


def codepay_body(out_trade_no: str = "P1", total: int = 1000, **overrides) -> dict:
    body = {
        "appid": APPID,
        "mchid": MCH_ID,
        "description": "拿铁咖啡",
        "out_trade_no": out_trade_no,
        "attach": "table-7",
        "amount": {"total": total, "currency": "CNY"},
        "payer": {"auth_code": AUTH_CODE},
        "scene_info": {"device_ip": "10.0.0.8", "device_id": "POS-01", "store_info": {"out_id": "S001"}},
    }
    body.update(overrides)
    return body


def partner_body(out_trade_no: str = "P1", total: int = 1000, **overrides) -> dict:
    body = codepay_body(out_trade_no, total)
    del body["appid"], body["mchid"]
    body.update(
        {"sp_appid": PROVIDER_APPID, "sp_mchid": PROVIDER_MCH_ID, "sub_appid": SUB_APPID, "sub_mchid": SUB_MCH_ID}
    )
    body.update(overrides)
    return body


def reverse_body() -> dict:
    return {"appid": APPID, "mchid": MCH_ID}


def refund_body(out_refund_no: str = "R1", refund: int = 300, total: int = 1000, **overrides) -> dict:
    body = {
        "out_trade_no": "P1",
        "out_refund_no": out_refund_no,
        "reason": "顾客退货",
        "amount": {"refund": refund, "total": total, "currency": "CNY"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def direct(wechat_merchant, merchant_keys, http_client, sandbox_clock) -> V3Client:
    return V3Client(
        http_client, sandbox_clock, mchid=MCH_ID, keys=merchant_keys, platform_keys=platform_keys_of(wechat_merchant)
    )


@pytest.fixture
def partner(wechat_provider, merchant_keys, http_client, sandbox_clock) -> V3Client:
    return V3Client(
        http_client,
        sandbox_clock,
        mchid=PROVIDER_MCH_ID,
        keys=merchant_keys,
        platform_keys=platform_keys_of(wechat_provider),
    )


def answer(client: V3Client, response: httpx.Response) -> dict:
    """The verified JSON body of an answer (every answer to an authenticated request is signed)."""
    client.verify(response)
    return response.json()


# --- codepay and query ---------------------------------------------------------------------------------------------


def test_direct_codepay_success_and_query(direct, wechat_merchant):
    paid = direct.post(CODEPAY, codepay_body())

    assert paid.status_code == 200
    assert direct.verify(paid) == wechat_merchant.platform_certificate_serial
    data = paid.json()
    assert (data["appid"], data["mchid"], data["out_trade_no"]) == (APPID, MCH_ID, "P1")
    assert (data["trade_state"], data["trade_type"]) == ("SUCCESS", "MICROPAY")
    assert data["amount"] == {"total": 1000, "payer_total": 1000, "currency": "CNY", "payer_currency": "CNY"}
    assert data["payer"]["openid"].startswith("oSbx")
    assert data["attach"] == "table-7" and data["scene_info"] == {"device_id": "POS-01"}
    order = SandboxWechatOrder.objects.get(out_trade_no="P1")
    assert data["transaction_id"] == order.transaction_id and len(order.transaction_id) == 28
    assert data["success_time"] == book.rfc3339(order.paid_at) and data["success_time"].endswith("+08:00")

    queried = answer(direct, direct.get(query_path("P1")))
    assert queried == data
    assert services.sandbox_ledger()["P1"]["charged"] == 1000


def test_partner_codepay_success_and_query(partner, wechat_provider):
    paid = answer(partner, partner.post(PARTNER_CODEPAY, partner_body()))

    assert (paid["sp_mchid"], paid["sub_mchid"], paid["sp_appid"], paid["sub_appid"]) == (
        PROVIDER_MCH_ID,
        SUB_MCH_ID,
        PROVIDER_APPID,
        SUB_APPID,
    )
    assert paid["trade_state"] == "SUCCESS"
    # The payer's openid under the provider's appid and under the sub-merchant's, which differ.
    assert paid["payer"]["sp_openid"].startswith("oSbx") and paid["payer"]["sub_openid"].startswith("oSbx")
    assert paid["payer"]["sp_openid"] != paid["payer"]["sub_openid"]
    assert "openid" not in paid["payer"]
    order = SandboxWechatOrder.objects.get(out_trade_no="P1")
    assert (order.mch_id, order.sub_mch_id, order.appid) == (PROVIDER_MCH_ID, SUB_MCH_ID, SUB_APPID)

    assert answer(partner, partner.get(partner_query_path("P1"))) == paid
    # The sub-merchant's order is not the provider's own.
    own = partner.get(f"/v3/pay/transactions/out-trade-no/P1?mchid={PROVIDER_MCH_ID}")
    assert (own.status_code, answer(partner, own)["code"]) == (404, "ORDER_NOT_EXIST")


def test_userpaying_then_success_on_query_after_settling(direct, sandbox_clock, settings):
    paying = direct.post(CODEPAY, codepay_body(total=1101))

    assert paying.status_code == 202
    assert answer(direct, paying) == {"code": "USERPAYING", "message": "用户支付中，需要输入密码"}
    pending = answer(direct, direct.get(query_path("P1")))
    assert pending["trade_state"] == "USERPAYING"
    assert "transaction_id" not in pending and "payer" not in pending and "success_time" not in pending
    assert pending["amount"] == {"total": 1101, "currency": "CNY"}

    sandbox_clock.advance(settings.SANDBOX_SETTLE_SECONDS)
    done = answer(direct, direct.get(query_path("P1")))
    assert done["trade_state"] == "SUCCESS" and done["transaction_id"] and done["success_time"]
    assert services.sandbox_ledger()["P1"]["charged"] == 1101


@pytest.mark.parametrize(
    ("total", "status", "code", "trade_state", "charged"),
    [
        (1103, 500, "SYSTEM_ERROR", "SUCCESS", 1103),  # the error hides a charge: query finds it paid
        (1104, 403, "NOT_ENOUGH", "PAYERROR", 0),
        (1105, 403, "TRADE_ERROR", "PAYERROR", 0),
        (1111, 500, "BANK_ERROR", "PAYERROR", 0),
    ],
)
def test_failing_payment_scenarios(direct, total, status, code, trade_state, charged):
    failed = direct.post(CODEPAY, codepay_body(total=total))

    assert (failed.status_code, answer(direct, failed)["code"]) == (status, code)
    assert answer(direct, direct.get(query_path("P1")))["trade_state"] == trade_state
    assert services.sandbox_ledger()["P1"]["charged"] == charged


def test_insufficient_funds_by_header_and_by_preset(direct):
    by_header = direct.post(CODEPAY, codepay_body("H1", 100), headers={"X-Sandbox-Scenario": "notenough"})
    services.sandbox_preset_scenario(out_trade_no="H2", scenario="NOTENOUGH")
    by_preset = direct.post(CODEPAY, codepay_body("H2", 100))

    for refused in (by_header, by_preset):
        assert (refused.status_code, answer(direct, refused)["code"]) == (403, "NOT_ENOUGH")
    unknown = direct.post(CODEPAY, codepay_body("H3", 100), headers={"X-Sandbox-Scenario": "UMF_DECLINED"})
    assert (unknown.status_code, answer(direct, unknown)["code"]) == (400, "PARAM_ERROR")
    assert not SandboxWechatOrder.objects.filter(out_trade_no="H3").exists()


def test_payment_that_times_out_is_charged(direct, sandbox_clock):
    with pytest.raises(httpx.ReadTimeout):
        direct.post(CODEPAY, codepay_body(total=1106))

    assert sandbox_clock.slept == [15.0]
    assert answer(direct, direct.get(query_path("P1")))["trade_state"] == "SUCCESS"


def test_first_query_times_out_then_settles_like_userpaying(direct, sandbox_clock):
    assert direct.post(CODEPAY, codepay_body(total=1107)).status_code == 202

    with pytest.raises(httpx.ReadTimeout):
        direct.get(query_path("P1"))
    # The held answer took 15 s: past the 10 s settle time, the user has paid.
    assert answer(direct, direct.get(query_path("P1")))["trade_state"] == "SUCCESS"


def test_userpaying_then_fail_and_never_paid(direct, sandbox_clock):
    direct.post(CODEPAY, codepay_body("F1", 1110))
    direct.post(CODEPAY, codepay_body("F2", 1102))
    sandbox_clock.advance(46)

    assert answer(direct, direct.get(query_path("F1")))["trade_state"] == "PAYERROR"
    assert answer(direct, direct.get(query_path("F2")))["trade_state"] == "REVOKED"


def test_repeated_out_trade_no_never_charges_twice(direct):
    direct.post(CODEPAY, codepay_body(total=1000))
    again = direct.post(CODEPAY, codepay_body(total=1000))
    other_amount = direct.post(CODEPAY, codepay_body(total=2000))
    direct.post(CODEPAY, codepay_body("U1", 1101))
    still_paying = direct.post(CODEPAY, codepay_body("U1", 1101))

    assert (again.status_code, answer(direct, again)["code"]) == (400, "ORDER_PAID")
    assert (other_amount.status_code, answer(direct, other_amount)["code"]) == (403, "OUT_TRADE_NO_USED")
    assert (still_paying.status_code, answer(direct, still_paying)["code"]) == (202, "USERPAYING")
    assert SandboxWechatOrder.objects.filter(out_trade_no="P1").count() == 1
    assert services.sandbox_ledger()["P1"]["charged"] == 1000


# --- reverse -------------------------------------------------------------------------------------------------------


def test_reverse_then_revoked_direct(direct):
    direct.post(CODEPAY, codepay_body())

    reversed_ = direct.post("/v3/pay/transactions/out-trade-no/P1/reverse", reverse_body())

    assert reversed_.status_code == 200
    assert answer(direct, reversed_) == {"appid": APPID, "mchid": MCH_ID, "out_trade_no": "P1"}
    assert answer(direct, direct.get(query_path("P1")))["trade_state"] == "REVOKED"
    assert services.sandbox_ledger()["P1"]["charged"] == 0  # paid, then refunded by the reverse


def test_reverse_then_revoked_partner(partner):
    partner.post(PARTNER_CODEPAY, partner_body())
    body = {"sp_mchid": PROVIDER_MCH_ID, "sub_mchid": SUB_MCH_ID}

    reversed_ = partner.post("/v3/pay/partner/transactions/out-trade-no/P1/reverse", body)

    assert answer(partner, reversed_) == {
        "sp_appid": PROVIDER_APPID,
        "sp_mchid": PROVIDER_MCH_ID,
        "sub_mchid": SUB_MCH_ID,
        "out_trade_no": "P1",
    }
    assert answer(partner, partner.get(partner_query_path("P1")))["trade_state"] == "REVOKED"


def test_reverse_refused_while_the_user_pays_then_done(direct, sandbox_clock):
    direct.post(CODEPAY, codepay_body(total=1101))

    refused = direct.post("/v3/pay/transactions/out-trade-no/P1/reverse", reverse_body())
    assert (refused.status_code, answer(direct, refused)["code"]) == (403, "USERPAYING")
    sandbox_clock.advance(10)
    assert direct.post("/v3/pay/transactions/out-trade-no/P1/reverse", reverse_body()).status_code == 200
    assert services.sandbox_ledger()["P1"] == {
        "channel": "wechat",
        "charged": 0,
        "refunded": 0,
        "refund_pending": 0,
        "state": "REVOKED",
    }


def test_reverse_recall_once_and_reverse_expire(direct):
    direct.post(CODEPAY, codepay_body("A1", 1108))
    direct.post(CODEPAY, codepay_body("A2", 1109))

    first = direct.post("/v3/pay/transactions/out-trade-no/A1/reverse", reverse_body())
    second = direct.post("/v3/pay/transactions/out-trade-no/A1/reverse", reverse_body())
    expired = direct.post("/v3/pay/transactions/out-trade-no/A2/reverse", reverse_body())

    assert (first.status_code, answer(direct, first)["code"]) == (500, "SYSTEM_ERROR")
    assert second.status_code == 200
    assert (expired.status_code, answer(direct, expired)["code"]) == (403, "TRADE_ERROR")
    assert SandboxWechatOrder.objects.get(out_trade_no="A2").state == "USERPAYING"


def test_reverse_of_a_refunded_order_is_refused(direct):
    direct.post(CODEPAY, codepay_body())
    direct.post(REFUNDS, refund_body())

    refused = direct.post("/v3/pay/transactions/out-trade-no/P1/reverse", reverse_body())

    assert (refused.status_code, answer(direct, refused)["code"]) == (403, "TRADE_ERROR")
    assert SandboxWechatOrder.objects.get(out_trade_no="P1").state == "REFUND"


# --- refunds -------------------------------------------------------------------------------------------------------


def test_refund_then_success_after_refund_time(direct, sandbox_clock, settings):
    direct.post(CODEPAY, codepay_body())

    accepted = direct.post(REFUNDS, refund_body())

    assert accepted.status_code == 200
    data = answer(direct, accepted)
    refund = SandboxWechatRefund.objects.get()
    assert (data["refund_id"], data["out_refund_no"], data["status"]) == (refund.refund_id, "R1", "PROCESSING")
    assert (data["out_trade_no"], data["transaction_id"]) == ("P1", refund.order.transaction_id)
    assert (data["amount"]["refund"], data["amount"]["total"], data["amount"]["currency"]) == (300, 1000, "CNY")
    assert data["create_time"].endswith("+08:00") and "success_time" not in data
    assert answer(direct, direct.get(REFUNDS + "/R1"))["status"] == "PROCESSING"

    sandbox_clock.advance(settings.SANDBOX_REFUND_SECONDS)
    done = answer(direct, direct.get(REFUNDS + "/R1"))
    assert done["status"] == "SUCCESS" and done["success_time"].endswith("+08:00")
    assert answer(direct, direct.get(query_path("P1")))["trade_state"] == "REFUND"
    assert services.sandbox_ledger()["P1"]["charged"] == 700

    # The same out_refund_no again is the same refund; with another amount it is refused.
    retried = answer(direct, direct.post(REFUNDS, refund_body()))
    assert retried["refund_id"] == refund.refund_id
    changed = direct.post(REFUNDS, refund_body(refund=301))
    too_much = direct.post(REFUNDS, refund_body("R2", refund=701))
    assert (changed.status_code, answer(direct, changed)["code"]) == (400, "INVALID_REQUEST")
    assert (too_much.status_code, answer(direct, too_much)["code"]) == (400, "INVALID_REQUEST")
    assert SandboxWechatRefund.objects.count() == 1


def test_partner_refund_and_query(partner, sandbox_clock, settings):
    partner.post(PARTNER_CODEPAY, partner_body())

    accepted = partner.post(REFUNDS, refund_body(sub_mchid=SUB_MCH_ID))
    sandbox_clock.advance(settings.SANDBOX_REFUND_SECONDS)

    assert answer(partner, accepted)["status"] == "PROCESSING"
    assert answer(partner, partner.get(f"{REFUNDS}/R1?sub_mchid={SUB_MCH_ID}"))["status"] == "SUCCESS"
    # Without sub_mchid the provider asks about its own refunds: not this one.
    own = partner.get(REFUNDS + "/R1")
    assert (own.status_code, answer(partner, own)["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_refund_refusals(direct):
    direct.post(CODEPAY, codepay_body("N1", 1104))

    unpaid = direct.post(REFUNDS, refund_body(out_trade_no="N1", total=1104))
    unknown = direct.post(REFUNDS, refund_body(out_trade_no="NOPE"))
    no_order_number = direct.post(REFUNDS, {"out_refund_no": "R9", "amount": {"refund": 1, "total": 1}})
    no_refund = direct.get(REFUNDS + "/R404")

    assert (unpaid.status_code, answer(direct, unpaid)["code"]) == (400, "INVALID_REQUEST")
    assert (unknown.status_code, answer(direct, unknown)["code"]) == (404, "RESOURCE_NOT_EXISTS")
    assert (no_order_number.status_code, answer(direct, no_order_number)["code"]) == (400, "PARAM_ERROR")
    assert (no_refund.status_code, answer(direct, no_refund)["code"]) == (404, "RESOURCE_NOT_EXISTS")
    assert not SandboxWechatRefund.objects.exists()


# --- authentication, ownership, input ------------------------------------------------------------------------------


def test_bad_authorization_is_refused_unsigned(direct, other_keys):
    forged = direct.post(CODEPAY, codepay_body(), signing_key=other_keys.private_pem)
    missing = direct.http.post(direct_url(CODEPAY), content=json.dumps(codepay_body()).encode())

    for refused in (forged, missing):
        assert (refused.status_code, refused.json()["code"]) == (401, "SIGN_ERROR")
        assert "Wechatpay-Signature" not in refused.headers
    assert not SandboxWechatOrder.objects.exists()


def direct_url(path: str) -> str:
    return "http://testserver/sandbox/wechatpay" + path


def test_another_merchants_order_is_not_visible(direct, wechat_merchant, other_keys, http_client, sandbox_clock):
    direct.post(CODEPAY, codepay_body())
    stranger = services.sandbox_register_wechat_merchant(
        mch_id=OTHER_MCH_ID,
        appid="wxsandboxother001",
        api_v2_key="o" * 32,
        api_v3_key="p" * 32,
        merchant_certificate_pem=other_keys.cert_pem,
    )
    other = V3Client(
        http_client, sandbox_clock, mchid=OTHER_MCH_ID, keys=other_keys, platform_keys=platform_keys_of(stranger)
    )

    queried = other.get(f"/v3/pay/transactions/out-trade-no/P1?mchid={OTHER_MCH_ID}")
    refunded = other.post(REFUNDS, refund_body())
    reversed_ = other.post(
        "/v3/pay/transactions/out-trade-no/P1/reverse", {"appid": "wxsandboxother001", "mchid": OTHER_MCH_ID}
    )
    # Naming the first merchant while signing as the other is refused too.
    posing = other.get(query_path("P1"))

    assert (queried.status_code, answer(other, queried)["code"]) == (404, "ORDER_NOT_EXIST")
    assert (refunded.status_code, answer(other, refunded)["code"]) == (404, "RESOURCE_NOT_EXISTS")
    assert reversed_.status_code == 200  # nothing of its own to undo
    assert (posing.status_code, answer(other, posing)["code"]) == (403, "NO_AUTH")
    # The answers to the stranger are signed with its own platform key, not the first merchant's.
    with pytest.raises(VerificationError):
        direct.verify(queried)
    order = SandboxWechatOrder.objects.get(out_trade_no="P1")
    assert (order.state, order.refunds.count()) == ("SUCCESS", 0)


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"mchid": OTHER_MCH_ID}, 403, "NO_AUTH"),
        ({"appid": "wxnotbound"}, 400, "APPID_MCHID_NOT_MATCH"),
        ({"amount": {"total": "1000", "currency": "CNY"}}, 400, "PARAM_ERROR"),
        ({"amount": {"total": 0}}, 400, "PARAM_ERROR"),
        ({"amount": {"total": 1000, "currency": "USD"}}, 400, "PARAM_ERROR"),
        ({"payer": {"auth_code": "280012345678901234"}}, 400, "PARAM_ERROR"),
        ({"scene_info": {"device_id": "POS-01"}}, 400, "PARAM_ERROR"),
        ({"out_trade_no": "P 1!"}, 400, "PARAM_ERROR"),
        ({"description": ""}, 400, "PARAM_ERROR"),
    ],
)
def test_bad_codepay_input_is_refused(direct, overrides, status, code):
    refused = direct.post(CODEPAY, codepay_body(**overrides))

    assert (refused.status_code, answer(direct, refused)["code"]) == (status, code)
    assert not SandboxWechatOrder.objects.exists()


def test_body_that_is_not_json_is_a_param_error(direct):
    refused = direct.post(CODEPAY, b"<xml></xml>")
    assert (refused.status_code, answer(direct, refused)["code"]) == (400, "PARAM_ERROR")


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"sub_mchid": "1999999999"}, "NO_AUTH"), ({"sp_mchid": MCH_ID}, "NO_AUTH"), ({"sub_mchid": ""}, "PARAM_ERROR")],
)
def test_partner_ids_must_belong_to_the_signer(partner, overrides, code):
    refused = partner.post(PARTNER_CODEPAY, partner_body(**overrides))

    assert answer(partner, refused)["code"] == code
    assert not SandboxWechatOrder.objects.exists()


# --- one order book with v2: bills and ledger ----------------------------------------------------------------------


def test_v2_and_v3_see_the_same_orders(direct, http_client):
    v2_paid = v2.micropay(
        v2_config(),
        v2.MicropayRequest(out_trade_no="X1", total_fee=500, body="b", auth_code=AUTH_CODE, spbill_create_ip="1.2.3.4"),
        client=http_client,
    )
    direct.post(CODEPAY, codepay_body("X2", 600))

    over_v3 = answer(direct, direct.get(query_path("X1")))
    over_v2 = v2.orderquery(v2_config(), v2.OrderQueryRequest(out_trade_no="X2"), client=http_client)

    assert (over_v3["trade_state"], over_v3["transaction_id"]) == ("SUCCESS", v2_paid.transaction_id)
    assert (over_v2.outcome, over_v2.trade_state, over_v2.total_fee) == (Outcome.SUCCESS, "SUCCESS", 600)


def test_v3_orders_appear_in_the_v2_bill_and_the_ledger(direct, http_client, sandbox_clock, settings):
    settings.SANDBOX_BILLS_UNTIL_NOW = True
    direct.post(CODEPAY, codepay_body("B1", 1000))
    direct.post(REFUNDS, refund_body("BR1", 100, out_trade_no="B1"))
    sandbox_clock.advance(settings.SANDBOX_REFUND_SECONDS + 1)

    day = book.localtime(sandbox_clock.now()).strftime("%Y%m%d")
    bill = v2.downloadbill(v2_config(), v2.DownloadBillRequest(bill_date=day, gzip=False), client=http_client)

    assert bill.outcome is Outcome.SUCCESS
    text = bill.content.decode("utf-8")
    transaction_id = SandboxWechatOrder.objects.get(out_trade_no="B1").transaction_id
    payment_rows = [line for line in text.splitlines() if "B1" in line and "BR1" not in line]
    refund_rows = [line for line in text.splitlines() if "BR1" in line]
    assert len(payment_rows) == 1 and transaction_id in payment_rows[0] and "SUCCESS" in payment_rows[0]
    assert len(refund_rows) == 1 and "REFUND" in refund_rows[0]
    assert services.sandbox_ledger()["B1"] == {
        "channel": "wechat",
        "charged": 900,
        "refunded": 100,
        "refund_pending": 0,
        "state": "REFUND",
    }


# --- chaos ---------------------------------------------------------------------------------------------------------


class ScriptedRng:
    """random() answers from a script (then 0.0, "picked"); choice() gives the kind under test."""

    def __init__(self, kind: str, *randoms: float) -> None:
        self.kind, self.randoms = kind, list(randoms)

    def random(self) -> float:
        return self.randoms.pop(0) if self.randoms else 0.0

    def choice(self, options):
        return self.kind

    def uniform(self, low: float, high: float) -> float:
        return 0.0


@pytest.fixture
def chaos_on(settings, monkeypatch):
    def switch(kind: str, *randoms: float) -> None:
        settings.SANDBOX_CHAOS = f"1.0:{kind}"
        monkeypatch.setattr(chaos, "rng", ScriptedRng(kind, *randoms))

    return switch


def test_chaos_spoils_the_v3_signature_after_charging(direct, chaos_on):
    chaos_on("bad_signature")

    paid = direct.post(CODEPAY, codepay_body())
    refund = direct.post(REFUNDS, refund_body())

    for spoiled in (paid, refund):
        assert spoiled.status_code == 200 and spoiled.headers["Wechatpay-Signature"]
        with pytest.raises(VerificationError, match="does not verify"):
            direct.verify(spoiled)
    assert services.sandbox_ledger()["P1"] == {
        "channel": "wechat",
        "charged": 1000,
        "refunded": 0,
        "refund_pending": 300,
        "state": "REFUND",
    }


def test_chaos_5xx_before_processing_and_timeout_after(direct, sandbox_clock, chaos_on):
    chaos_on("5xx", 0.0, 0.4)  # picked; then < 0.5: fail before processing
    failed = direct.post(CODEPAY, codepay_body("C1"))
    assert failed.status_code == 500 and "Wechatpay-Signature" not in failed.headers
    assert not SandboxWechatOrder.objects.exists()

    chaos_on("timeout")
    with pytest.raises(httpx.ReadTimeout):
        direct.post(CODEPAY, codepay_body("C2"))
    assert services.sandbox_ledger()["C2"]["charged"] == 1000
