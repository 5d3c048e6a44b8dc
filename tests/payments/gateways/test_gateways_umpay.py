"""UMF (联动优势): signing rules checked against UMF's published examples, and outcome classification.

Published vectors: UMF's integration guide "报文格式说明及签名验签规则" (public/verification.md of the umpayer
offlineAPIDocs docs, as mirrored in GitHub MidnightDancing/offlineAPIDocs) and the trade-notification page
(umpayer/offlineAPIDocs basicability/tradenotify.md). All are signed with the public integration-test key pair in
fixtures/: requests with testSpay.key.p8, responses and notifications with the key of testUmpay.cert.crt.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.gateways import umpay
from payments.gateways.base import Outcome
from payments.gateways.keys import load_private_key
from tests.payments.gateways.gateway_fakes import mock_client, raising

# --- published vectors -------------------------------------------------------------------------------------------

# 1.3.4 请求加签
ALIVE_REQUEST = {
    "acqMerId": "41509208",
    "acqSpId": "Y471790403",
    "funCode": "ALIVE",
    "orderNo": "a12ddasdasdad23sd",
    "rpid": "123456789",
}
ALIVE_PLAINTEXT = "acqMerId=41509208&acqSpId=Y471790403&funCode=ALIVE&orderNo=a12ddasdasdad23sd&rpid=123456789"
ALIVE_SIGNATURE = (
    "BdA3TpMiw1Jxec0WVxU0EsTEtgKQeUwLhuK95BTjx6h/4MQmHP4Uig/hze2lo36iy29AcvvuKkyxpzxRtO6fxFPPyibwoXzrnKxI"
    "zplC9O2kcPjC3e25MHydgNr4p7FOLC500IitrnsJ+yPzegW2GC86NKEei3l6Qj02RRAkNRg="
)

# 1.3.9 首次联调示例 (a micropay request)
MICROPAY_REQUEST = {
    "acqMerId": "41509208",
    "acqSpId": "Y471790403",
    "authCode": "134579761426152164",
    "goodsId": "123",
    "goodsInfo": "口罩",
    "orderNo": "JD202003051057240001",
    "orderTime": "20200305105724",
    "orderType": "wechat",
    "txnAmt": "1",
}
MICROPAY_SIGNATURE = (
    "SnOf25uc9ZJ+Opmze+o7dsAggxQCB7/aYqlsEZ89V5T3RhsGw6p7ISO1BcnxAMuAWNhq3UOl+Ei4PtsVMnoaCTjY0IDoBnCC"
    "Wdv98O5GMHp70uAAB/cI5EQrt1HRlM6Lb9VyL1f5BE1FthlSZYKlSvS8hOn3ZaDzN7z4N+4ijHI="
)

# UMF's published verification example (验签): a query-style response with a number, "" and null fields.
QUERY_RESPONSE = (
    '{"respCode": "00", "respMsg": "处理成功", "signature": "ggIIULxcVDrLZzM2Xl0+aMRKlv4VgoZNw/eRWTHdn2w1YFcuoGjq23Aa'
    "dIezOMftMvYIvJ/m5P5X2z2+vsSm71vnnsKjgHsBdzSxRVQiYgS4IJg7vNNHEb1vbZY/LulqSFHwDtPp1yHg9syw8/qyFP6dAmBqO27wsLIGrJJvrP"
    'U=", "platDate": "", "txnAmt": 1, "paySeq": "", "transactionId": "2019072518100000000001", "origRespCode": null,'
    ' "origRespDescCode": "99"}'
)
QUERY_PLAINTEXT = "99|00|处理成功|2019072518100000000001|1"

# 1.3.10 PHP demo output: a real micropay answer with an 8-character failure code.
MICROPAY_FAILURE_RESPONSE = (
    '{"respCode":"001100WN","respMsg":"101 每个二维码仅限使用一次，请刷新再试","signature":"YkBsQ97Q1bCwgg5r7UCxFmz+l'
    "e+YUKz637NB4H3KDivrszkbBQAgc2yIq+bvPMgI90Yifv/aHkreMedXXBShTz6hi0tt0Kt1CxBIbAZutXLetRW9ejX8fXft3BhoyWhhNWCYVkPhH1"
    'EKzvYGbsjdAt1bpuavBQfpFhnvu2VR0Vw=","platDate":null,"orderNo":"JD202003060435350002","transactionId":null,'
    '"txnAmt":"1","paySeq":null}'
)

# tradenotify.md 示例对应日志: a refund notification (form fields as logged, URL-decoded).
NOTIFICATION = {
    "sign": "cv0CbgyZC/QUkGwiSDrqcm8c8JdI6lnE+yT6RPvoFyYbKYAKJkxdhsrtXQDklpJ3Uq7ZSFB7o0M9MtFkzla5pv3fzCwt9WkRxaq"
    "BNzYiDYLuvSUaCtWUPHWGBn8pPeDnnvdxUla9jNZdp60FtpKO9+Oxo2xny8+QoND5ZKEGJEY=",
    "transactionId": "",
    "currencyCode": "CNY",
    "orderNo": "JD202003180342460001",
    "acqSpId": "Y471790403",
    "acqMerId": "41509208",
    "notifyType": "3",
    "transIndex": "2020031815420000024575",
    "merPriv": "",
    "payTime": "20200927111534",
    "cardType": "02",
    "payerInfo": "",
    "txnAmt": "1",
}


def test_published_request_vector_is_reproduced_exactly(umf_private_key_der: bytes) -> None:
    # RSASSA-PKCS1-v1_5 is deterministic: the same key and text must give UMF's published signature byte for byte.
    assert umpay.request_plaintext(ALIVE_REQUEST) == ALIVE_PLAINTEXT
    assert umpay.sign_request(ALIVE_REQUEST, umf_private_key_der)["signature"] == ALIVE_SIGNATURE
    signed = umpay.sign_request(MICROPAY_REQUEST, umf_private_key_der)
    assert signed["signature"] == MICROPAY_SIGNATURE
    assert signed == {**MICROPAY_REQUEST, "signature": MICROPAY_SIGNATURE}


def test_published_request_verifies_with_merchant_public_key(umf_private_key_der: bytes) -> None:
    public_key = load_private_key(umf_private_key_der).public_key()
    assert umpay.verify_request({**ALIVE_REQUEST, "signature": ALIVE_SIGNATURE}, public_key)
    for name in ALIVE_REQUEST:
        assert not umpay.verify_request({**ALIVE_REQUEST, name: "x", "signature": ALIVE_SIGNATURE}, public_key)


def test_empty_request_fields_are_neither_signed_nor_sent(umf_private_key_der: bytes) -> None:
    signed = umpay.sign_request({**MICROPAY_REQUEST, "backUrl": "", "merPriv": None}, umf_private_key_der)
    assert "backUrl" not in signed and "merPriv" not in signed
    assert signed["signature"] == MICROPAY_SIGNATURE


def test_published_response_vectors_verify_with_umf_certificate(umf_certificate_der: bytes) -> None:
    query = json.loads(QUERY_RESPONSE)
    assert umpay.response_plaintext(query) == QUERY_PLAINTEXT
    assert umpay.verify_response(query, umf_certificate_der)
    failure = json.loads(MICROPAY_FAILURE_RESPONSE)
    assert umpay.response_plaintext(failure) == "JD202003060435350002|001100WN|101 每个二维码仅限使用一次，请刷新再试|1"
    assert umpay.verify_response(failure, umf_certificate_der)


def test_published_notification_verifies_with_sign_excluded(umf_certificate_der: bytes) -> None:
    assert umpay.verify_notification(NOTIFICATION, umf_certificate_der)
    # Through the form decoder too, as the notify view will receive it.
    from urllib.parse import urlencode

    assert umpay.verify_notification(umpay.parse_notification_form(urlencode(NOTIFICATION)), umf_certificate_der)


@pytest.mark.parametrize("vector", [QUERY_RESPONSE, MICROPAY_FAILURE_RESPONSE])
def test_tampered_response_is_detected(vector: str, umf_certificate_der: bytes) -> None:
    fields = json.loads(vector)
    for name, value in fields.items():
        if name == "signature" or value in (None, ""):
            continue
        assert not umpay.verify_response({**fields, name: str(value) + "0"}, umf_certificate_der), name
    assert not umpay.verify_response({**fields, "paySeq": "123"}, umf_certificate_der)  # a blank field filled in
    signature = fields["signature"]
    assert not umpay.verify_response(
        {**fields, "signature": signature[:10] + "A" + signature[11:]}, umf_certificate_der
    )
    assert not umpay.verify_response({k: v for k, v in fields.items() if k != "signature"}, umf_certificate_der)


def test_tampered_notification_is_detected(umf_certificate_der: bytes) -> None:
    assert not umpay.verify_notification({**NOTIFICATION, "txnAmt": "100"}, umf_certificate_der)
    assert not umpay.verify_notification({**NOTIFICATION, "notifyType": "1"}, umf_certificate_der)
    assert not umpay.verify_notification({k: v for k, v in NOTIFICATION.items() if k != "sign"}, umf_certificate_der)


def test_response_rule_includes_a_field_named_sign_and_nested_values() -> None:
    fields = {"sign": "s", "b": {"y": 2, "x": "1"}, "a": True, "signature": "z", "c": None}
    assert umpay.response_plaintext(fields) == "true|1|2|s"


# --- server-side helpers (the sandbox) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_key() -> rsa.RSAPrivateKey:
    """Stands in for UMF's private key, which nobody outside UMF has: the sandbox signs with its own."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_sandbox_response_and_notification_round_trip(sandbox_key: rsa.RSAPrivateKey) -> None:
    response = umpay.sign_response({"respCode": "00", "respMsg": "ok", "txnAmt": 1, "paySeq": ""}, sandbox_key)
    assert umpay.verify_response(response, sandbox_key.public_key())
    assert not umpay.verify_response({**response, "txnAmt": 2}, sandbox_key.public_key())
    note = umpay.sign_notification({"orderNo": "A1", "txnAmt": "1", "merPriv": ""}, sandbox_key)
    assert umpay.verify_notification(note, sandbox_key.public_key())
    assert not umpay.verify_notification({**note, "orderNo": "A2"}, sandbox_key.public_key())


# --- calls against a fake UMF ------------------------------------------------------------------------------------


class FakeUmf:
    """Verifies our request with our public key and answers with the sandbox key's signature."""

    def __init__(self, merchant_public_key, umf_key: rsa.RSAPrivateKey, answer: dict | None = None) -> None:
        self.merchant_public_key = merchant_public_key
        self.umf_key = umf_key
        self.answer = answer or {}
        self.requests: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        fields = json.loads(request.content)
        assert umpay.verify_request(fields, self.merchant_public_key), "badly signed request"
        self.requests.append((request.url.path, fields))
        body = umpay.sign_response({"respMsg": "msg", **self.answer}, self.umf_key)
        return httpx.Response(200, content=json.dumps(body, ensure_ascii=False).encode())


@pytest.fixture
def make_fake(umf_private_key_der: bytes, sandbox_key: rsa.RSAPrivateKey):
    def make(answer: dict) -> FakeUmf:
        return FakeUmf(load_private_key(umf_private_key_der).public_key(), sandbox_key, answer)

    return make


@pytest.fixture
def config(umf_private_key_der: bytes, sandbox_key: rsa.RSAPrivateKey) -> umpay.UmpayConfig:
    from cryptography.hazmat.primitives import serialization

    sandbox_public_pem = sandbox_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return umpay.UmpayConfig(
        acq_sp_id="Y471790403",
        acq_mer_id="41509208",
        private_key=umf_private_key_der,
        umpay_certificate=sandbox_public_pem,
        base_url="http://umf.test/entry-provider-plat-client",
    )


def micropay_request(**overrides) -> umpay.MicropayRequest:
    values = {
        "order_no": "JD202003051057240001",
        "txn_amt": 1,
        "auth_code": "134579761426152164",
        "goods_id": "123",
        "goods_info": "口罩",
        "order_time": datetime(2020, 3, 5, 2, 57, 24, tzinfo=UTC),
    }
    values.update(overrides)
    return umpay.MicropayRequest(**values)


def test_micropay_request_matches_published_example(config: umpay.UmpayConfig, make_fake) -> None:
    fake = make_fake({"respCode": "00", "transactionId": "T1", "orderNo": "JD202003051057240001", "txnAmt": "1"})
    result = umpay.micropay(config, micropay_request(), client=mock_client(fake))
    path, sent = fake.requests[0]
    assert path == "/entry-provider-plat-client/pay/micropay"
    # Same fields and time (02:57:24 UTC is 10:57:24 in Shanghai) as UMF's first-integration example.
    assert sent == {**MICROPAY_REQUEST, "signature": MICROPAY_SIGNATURE}
    assert (result.outcome, result.code, result.transaction_id, result.txn_amt) == (Outcome.SUCCESS, "00", "T1", 1)
    assert result.request_fields["authCode"] == "1345***"
    assert result.request_fields["signature"] == "SnOf***"
    assert "134579761426152164" not in repr(result) + repr(micropay_request())


def test_face_flag_and_back_url_are_sent_when_set(config: umpay.UmpayConfig, make_fake) -> None:
    fake = make_fake({"respCode": "00"})
    umpay.micropay(
        config, micropay_request(is_face_pay=True, back_url="http://m.test/notify/umpay/"), client=mock_client(fake)
    )
    assert (fake.requests[0][1]["faceFlag"], fake.requests[0][1]["backUrl"]) == ("1", "http://m.test/notify/umpay/")


@pytest.mark.parametrize(
    ("resp_code", "outcome"),
    [
        ("00", Outcome.SUCCESS),
        ("02", Outcome.UNKNOWN),
        ("62", Outcome.UNKNOWN),
        ("04", Outcome.UNKNOWN),
        ("01000000", Outcome.UNKNOWN),
        ("001100WN", Outcome.REJECTED),
        ("15", Outcome.REJECTED),  # insufficient balance
        ("11", Outcome.REJECTED),  # our signature did not verify: nothing was processed
        ("20", Outcome.REJECTED),  # payment code expired
        # Not "certainly refused": the user may have been charged, so the client queries.
        ("99", Outcome.UNKNOWN),  # 系统异常
        ("06", Outcome.UNKNOWN),  # 系统繁忙
        ("01", Outcome.UNKNOWN),  # 系统错误
        ("05", Outcome.UNKNOWN),  # already paid
        ("16", Outcome.UNKNOWN),  # duplicate order number: the first attempt may have charged
        ("17", Outcome.UNKNOWN),
        ("0011", Outcome.UNKNOWN),  # not in UMF's table
        ("000", Outcome.UNKNOWN),
    ],
)
def test_micropay_resp_codes(resp_code: str, outcome: Outcome, config: umpay.UmpayConfig, make_fake) -> None:
    result = umpay.micropay(config, micropay_request(), client=mock_client(make_fake({"respCode": resp_code})))
    assert (result.outcome, result.code) == (outcome, resp_code)


def test_published_001100WN_answer_is_rejected_not_success(
    umf_private_key_der: bytes, umf_certificate_der: bytes
) -> None:
    config = umpay.UmpayConfig(
        acq_sp_id="Y471790403",
        acq_mer_id="41509208",
        private_key=umf_private_key_der,
        umpay_certificate=umf_certificate_der,
        base_url="http://umf.test",
    )
    client = mock_client(lambda r: httpx.Response(200, content=MICROPAY_FAILURE_RESPONSE.encode()))
    result = umpay.micropay(config, micropay_request(order_no="JD202003060435350002"), client=client)
    assert (result.outcome, result.code) == (Outcome.REJECTED, "001100WN")
    assert result.message == "101 每个二维码仅限使用一次，请刷新再试"
    # The same signed answer to a request for another order is a replay: unusable, not that order's failure.
    other = umpay.micropay(config, micropay_request(), client=client)
    assert (other.outcome, other.code) == (Outcome.UNKNOWN, "MISMATCH")


@pytest.mark.parametrize(
    ("handler", "outcome", "code"),
    [
        (raising(httpx.ReadTimeout), Outcome.UNKNOWN, "TIMEOUT"),
        (raising(httpx.ConnectError), Outcome.TRANSIENT, "CONNECT_ERROR"),
        (lambda r: httpx.Response(500, content=b"error"), Outcome.UNKNOWN, "HTTP_500"),
        (lambda r: httpx.Response(200, content=b"<html>"), Outcome.UNKNOWN, "UNPARSEABLE"),
        (lambda r: httpx.Response(200, content=b'["00"]'), Outcome.UNKNOWN, "UNPARSEABLE"),
        (
            lambda r: httpx.Response(200, content=b'{"respCode":"00","signature":"AAAA"}'),
            Outcome.UNKNOWN,
            "BAD_SIGNATURE",
        ),
        (lambda r: httpx.Response(200, content=b'{"respCode":"00"}'), Outcome.UNKNOWN, "BAD_SIGNATURE"),
    ],
)
def test_micropay_transport_and_trust_problems(handler, outcome: Outcome, code: str, config: umpay.UmpayConfig) -> None:
    result = umpay.micropay(config, micropay_request(), client=mock_client(handler))
    assert (result.outcome, result.code) == (outcome, code)


def test_micropay_answer_signed_by_another_key_is_unknown(
    config: umpay.UmpayConfig, umf_private_key_der: bytes
) -> None:
    forged = umpay.sign_response({"respCode": "00", "respMsg": "ok"}, umf_private_key_der)  # merchant's, not UMF's
    client = mock_client(lambda r: httpx.Response(200, content=json.dumps(forged).encode()))
    result = umpay.micropay(config, micropay_request(), client=client)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ({"respCode": "00", "origRespCode": "00"}, Outcome.SUCCESS),
        ({"respCode": "00", "origRespCode": "01"}, Outcome.SUCCESS),
        ({"respCode": "00", "origRespCode": "02"}, Outcome.UNKNOWN),
        ({"respCode": "00", "origRespCode": "03"}, Outcome.REJECTED),
        ({"respCode": "00", "origRespCode": "04"}, Outcome.REJECTED),
        ({"respCode": "00", "origRespCode": "06"}, Outcome.REJECTED),
        ({"respCode": "00"}, Outcome.UNKNOWN),
        ({"respCode": "0011", "origRespCode": "06"}, Outcome.TRANSIENT),  # the query failed, not the payment
    ],
)
def test_query_order(answer: dict, outcome: Outcome, config: umpay.UmpayConfig, make_fake) -> None:
    fake = make_fake(answer)
    result = umpay.query_order(config, order_no="A1", client=mock_client(fake))
    assert (result.outcome, result.orig_resp_code) == (outcome, answer.get("origRespCode", ""))
    assert fake.requests[0] == (
        "/entry-provider-plat-client/pay/queryOrder",
        {
            "acqSpId": "Y471790403",
            "acqMerId": "41509208",
            "orderNo": "A1",
            "signature": fake.requests[0][1]["signature"],
        },
    )


@pytest.mark.parametrize(
    ("echo", "call", "outcome"),
    [
        ({"orderNo": "OTHER", "txnAmt": "1"}, "micropay", Outcome.UNKNOWN),  # an old 1-fen success replayed
        ({"orderNo": "A1", "txnAmt": "1"}, "micropay", Outcome.UNKNOWN),  # right order, wrong amount
        ({"acqMerId": "41509209"}, "micropay", Outcome.UNKNOWN),  # another merchant's answer
        ({"orderNo": "OTHER", "origRespCode": "00"}, "query", Outcome.TRANSIENT),  # another order's "paid"
        ({"orderNo": "A1", "txnAmt": 100000}, "micropay", Outcome.SUCCESS),  # the amount as a JSON number
        ({}, "micropay", Outcome.SUCCESS),  # an answer that leaves the echoes out is taken as is
    ],
)
def test_an_answer_naming_another_order_amount_or_merchant_is_unusable(
    echo: dict, call: str, outcome: Outcome, config: umpay.UmpayConfig, make_fake
) -> None:
    client = mock_client(make_fake({"respCode": "00", **echo}))
    if call == "micropay":
        result = umpay.micropay(config, micropay_request(order_no="A1", txn_amt=100000), client=client)
    else:
        result = umpay.query_order(config, order_no="A1", client=client)
    assert result.outcome is outcome
    assert (result.code == "MISMATCH") == (outcome is not Outcome.SUCCESS)


@pytest.mark.parametrize(
    ("orig", "outcome"),
    [("00", Outcome.SUCCESS), ("01", Outcome.REJECTED), ("02", Outcome.UNKNOWN), ("09", Outcome.UNKNOWN)],
)
def test_refund_query_states(orig: str, outcome: Outcome, config: umpay.UmpayConfig, make_fake) -> None:
    """UMF's refundQuery: origRespCode 00 refunded, 01 failed, 02 processing; anything else stays open."""
    client = mock_client(make_fake({"respCode": "00", "origRespCode": orig}))
    assert umpay.refund_query(config, order_no="R1", client=client).outcome is outcome


def test_query_order_timeout_is_transient(config: umpay.UmpayConfig) -> None:
    result = umpay.query_order(config, order_no="A1", client=mock_client(raising(httpx.ReadTimeout)))
    assert result.outcome is Outcome.TRANSIENT


def test_cancel_refund_and_refund_query(config: umpay.UmpayConfig, make_fake) -> None:
    fake = make_fake({"respCode": "00", "origRespCode": "00"})
    client = mock_client(fake)
    assert umpay.cancel_order(config, order_no="A1", client=client).outcome is Outcome.SUCCESS
    refund = umpay.refund(
        config,
        umpay.RefundRequest(
            order_no="R1",
            orig_order_no="A1",
            orig_txn_amt=100,
            txn_amt=40,
            order_time=datetime(2020, 3, 5, 2, 0, 0, tzinfo=UTC),
        ),
        client=client,
    )
    assert refund.outcome is Outcome.SUCCESS
    assert umpay.refund_query(config, order_no="R1", client=client).outcome is Outcome.SUCCESS
    paths = [path.rsplit("/", 2)[-2:] for path, _ in fake.requests]
    assert paths == [["pay", "cancelOrder"], ["pay", "refund"], ["pay", "refundQuery"]]
    sent_refund = fake.requests[1][1]
    assert {k: sent_refund[k] for k in ("orderTime", "origOrderNo", "origTxnAmt", "orderNo", "txnAmt")} == {
        "orderTime": "20200305100000",
        "origOrderNo": "A1",
        "origTxnAmt": "100",
        "orderNo": "R1",
        "txnAmt": "40",
    }


def test_cancel_timeout_is_unknown_and_failure_is_rejected(config: umpay.UmpayConfig, make_fake) -> None:
    assert (
        umpay.cancel_order(config, order_no="A1", client=mock_client(raising(httpx.ReadTimeout))).outcome
        is Outcome.UNKNOWN
    )
    assert (
        umpay.cancel_order(config, order_no="A1", client=mock_client(make_fake({"respCode": "31"}))).outcome
        is Outcome.REJECTED
    )


@pytest.mark.parametrize(
    ("resp_code", "cancel", "refund"),
    [
        ("17", Outcome.REJECTED, Outcome.REJECTED),  # no such order: nothing to cancel or refund
        ("35", Outcome.REJECTED, Outcome.REJECTED),  # original missing or in the wrong state
        ("99", Outcome.UNKNOWN, Outcome.UNKNOWN),  # system exception: it may have taken effect
        ("06", Outcome.UNKNOWN, Outcome.UNKNOWN),  # system busy
        ("0031", Outcome.UNKNOWN, Outcome.UNKNOWN),  # not in UMF's table
    ],
)
def test_cancel_and_refund_refusals_are_an_allow_list(
    resp_code: str, cancel: Outcome, refund: Outcome, config: umpay.UmpayConfig, make_fake
) -> None:
    client = mock_client(make_fake({"respCode": resp_code}))
    assert umpay.cancel_order(config, order_no="A1", client=client).outcome is cancel
    request = umpay.RefundRequest(order_no="R1", orig_order_no="A1", orig_txn_amt=100, txn_amt=40)
    assert umpay.refund(config, request, client=client).outcome is refund


def test_query_order_17_means_no_such_order(config: umpay.UmpayConfig, make_fake) -> None:
    result = umpay.query_order(config, order_no="A1", client=mock_client(make_fake({"respCode": "17"})))
    assert (result.outcome, result.code, result.order_exists) == (Outcome.REJECTED, "17", False)
    failed = umpay.query_order(config, order_no="A1", client=mock_client(make_fake({"respCode": "99"})))
    assert (failed.outcome, failed.order_exists) == (Outcome.TRANSIENT, None)


@pytest.mark.parametrize(
    ("echo", "outcome"),
    [
        ({"orderNo": "A1", "txnAmt": "1"}, Outcome.TRANSIENT),  # a genuine "paid" for 1 fen, the order is 2
        ({"orderNo": "A1", "txnAmt": "2", "merId": "41509209"}, Outcome.TRANSIENT),  # older field name, other merchant
        ({"orderNo": "A1", "txnAmt": "2", "agentId": "Y000000001"}, Outcome.TRANSIENT),
        ({"orderNo": "A1", "txnAmt": "2", "orderDate": "20200306"}, Outcome.TRANSIENT),  # another day's order
        ({"orderNo": "A1", "txnAmt": "2", "orderTime": "20200305100001"}, Outcome.TRANSIENT),
        ({"orderNo": "A1", "txnAmt": "2", "transactionId": "T-OTHER"}, Outcome.TRANSIENT),
        ({"orderNo": "A1", "txnAmt": "2", "orderDate": "20200305", "transactionId": "T1"}, Outcome.SUCCESS),
        ({"orderNo": "A1", "txnAmt": 2}, Outcome.SUCCESS),
    ],
)
def test_query_answer_must_be_about_this_order(
    echo: dict, outcome: Outcome, config: umpay.UmpayConfig, make_fake
) -> None:
    client = mock_client(make_fake({"respCode": "00", "origRespCode": "00", **echo}))
    result = umpay.query_order(
        config, order_no="A1", transaction_id="T1", txn_amt=2, order_time="20200305100000", client=client
    )
    assert result.outcome is outcome
    if outcome is not Outcome.SUCCESS:
        assert result.code == "MISMATCH" and "expected" in result.message
        assert result.response_fields["origRespCode"] == "00"  # the evidence is kept for the event


def test_wxface(config: umpay.UmpayConfig, make_fake) -> None:
    fake = make_fake({"respCode": "00", "authinfo": "q3OPhFtQBf6KZGqm", "expiresIn": 3600, "appid": "wx1"})
    result = umpay.wxface(
        config, umpay.WxfaceRequest(raw_data="rdzIw3JDkWcw", sub_mch_id="1900000109"), client=mock_client(fake)
    )
    assert (result.outcome, result.authinfo, result.expires_in, result.appid) == (
        Outcome.SUCCESS,
        "q3OPhFtQBf6KZGqm",
        3600,
        "wx1",
    )
    assert fake.requests[0][1]["rawDate"] == "rdzIw3JDkWcw" and fake.requests[0][1]["subMchId"] == "1900000109"
    assert "q3OPhFtQBf6KZGqm" not in repr(result)
    refused = umpay.wxface(
        config, umpay.WxfaceRequest(raw_data="x"), client=mock_client(make_fake({"respCode": "0099"}))
    )
    assert (refused.outcome, refused.code) == (Outcome.REJECTED, "0099")


def test_config_repr_hides_key(config: umpay.UmpayConfig) -> None:
    assert "private_key" not in repr(config) and "Y471790403" in repr(config)
