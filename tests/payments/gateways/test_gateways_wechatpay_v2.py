"""WeChat Pay API v2: signing against the published example, XML safety, and outcome classification per call."""

from __future__ import annotations

import httpx
import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome
from tests.payments.gateways.gateway_fakes import RecordingV2Server, mock_client, raising

# WeChat's published signing example (its official signing documentation).
PUBLISHED_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
PUBLISHED_KEY = "192006250b4c09247ec02edce69f6a2d"
API_KEY = "0123456789abcdef0123456789abcdef"
AUTH_CODE = "134567890123456789"


def make_config(sign_type: v2.SignType = v2.SignType.HMAC_SHA256, **overrides: str) -> v2.WechatPayV2Config:
    values = {
        "appid": "wx2421b1c4370ec43b",
        "mch_id": "10000100",
        "api_key": API_KEY,
        "sign_type": sign_type,
        "base_url": "https://wechat.test",
        "face_base_url": "https://payapp.test",
    }
    values.update(overrides)
    return v2.WechatPayV2Config(**values)  # type: ignore[arg-type]


def micropay_request() -> v2.MicropayRequest:
    return v2.MicropayRequest(
        out_trade_no="1415757673",
        total_fee=1,
        body="付款码支付测试",
        auth_code=AUTH_CODE,
        spbill_create_ip="14.17.22.52",
        device_info="1000",
    )


def answer(**fields: str) -> dict[str, str]:
    return {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": "wx2421b1c4370ec43b",
        "mch_id": "10000100",
        "nonce_str": "GOp3TRyMXzbMlkun",
        **fields,
    }


# --- signing -----------------------------------------------------------------------------------------------------


def test_published_example_md5() -> None:
    assert v2.sign(PUBLISHED_FIELDS, PUBLISHED_KEY, v2.SignType.MD5) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_published_example_hmac_sha256() -> None:
    assert (
        v2.sign(PUBLISHED_FIELDS, PUBLISHED_KEY, v2.SignType.HMAC_SHA256)
        == "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_empty_values_are_not_signed_but_zero_is() -> None:
    with_empty = {**PUBLISHED_FIELDS, "attach": "", "detail": None, "sign": "whatever"}
    assert v2.sign(with_empty, PUBLISHED_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert v2.sign({**PUBLISHED_FIELDS, "coupon_fee": "0"}, PUBLISHED_KEY) != "9A0A8659F005D6984697E2CA0A9CF3B7"


@pytest.mark.parametrize("sign_type", list(v2.SignType))
def test_verify_covers_every_field_including_unknown_ones(sign_type: v2.SignType) -> None:
    fields = {**PUBLISHED_FIELDS, "some_new_field": "x"}
    fields["sign"] = v2.sign(fields, PUBLISHED_KEY, sign_type)
    assert v2.verify(fields, PUBLISHED_KEY)
    for name in [*PUBLISHED_FIELDS, "some_new_field"]:
        assert not v2.verify({**fields, name: fields[name] + "1"}, PUBLISHED_KEY), name
    assert not v2.verify({**fields, "added": "1"}, PUBLISHED_KEY)
    assert not v2.verify({**fields, "sign": fields["sign"][:-1] + "0"}, PUBLISHED_KEY)
    assert not v2.verify({k: v for k, v in fields.items() if k != "sign"}, PUBLISHED_KEY)
    assert not v2.verify(fields, "x" * 32)


# --- XML ---------------------------------------------------------------------------------------------------------


def test_xml_round_trip_with_cdata_breaker() -> None:
    fields = {"body": "a]]>b <c>&", "total_fee": 1, "empty": ""}
    assert v2.from_xml(v2.to_xml(fields)) == {"body": "a]]>b <c>&", "total_fee": "1", "empty": ""}


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><a>1</a>",
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><a>&x;</a></xml>',
        b'<!DOCTYPE xml SYSTEM "http://evil.test/x.dtd"><xml><a>1</a></xml>',
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><a>&x;</a></xml>',
        # The same in UTF-16, with and without a byte-order mark: no byte pattern can see the declaration.
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><a>&x;</a></xml>'.encode(
            "utf-16"
        ),
        '<!DOCTYPE xml [<!ENTITY x "boom">]><xml><a>&x;</a></xml>'.encode("utf-16-le"),
        b"<xml><a><b>nested</b></a></xml>",
        b"<xml><a>1</a><a>2</a></xml>",
        b'<xml><a x="1">1</a></xml>',
        b"<xml>text<a>1</a></xml>",
        b'<?xml version="1.0" encoding="no-such-encoding"?><xml><a>1</a></xml>',
        b'<?xml version="1.0" encoding="GBK"?><xml><a>1</a></xml>',
        b"",
    ],
)
def test_unsafe_or_malformed_xml_is_rejected(body: bytes) -> None:
    with pytest.raises(v2.XmlError):
        v2.from_xml(body)


def test_declarations_and_wide_encodings_are_refused_before_any_parsing(monkeypatch) -> None:
    """expat expands a DOCTYPE's entities even while the parser's handler refuses the document: the byte checks come
    first, so a 'billion laughs' answer costs nothing. The parser's handler stays as a second line."""
    from xml.etree import ElementTree

    def no_parsing(*args, **kwargs):
        raise AssertionError("the parser was reached")

    monkeypatch.setattr(ElementTree, "XMLParser", no_parsing)
    laughs = '<!ENTITY e0 "lol">' + "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 9))
    for body in (
        f'<?xml version="1.0"?><!DOCTYPE x [{laughs}]><xml><a>&e8;</a></xml>'.encode(),
        "<xml><a>1</a></xml>".encode("utf-16"),
        "<xml><a>1</a></xml>".encode("utf-16-le"),
    ):
        with pytest.raises(v2.XmlError):
            v2.from_xml(body)


def test_xml_values_keep_their_exact_text_and_layout_whitespace_is_ignored() -> None:
    # WeChat signs the values as sent: spaces inside a value are part of it; line breaks between elements are not.
    body = "<xml>\n  <attach><![CDATA[ 两 spaces ]]></attach>\n  <total_fee>1</total_fee>\n  <empty></empty>\n</xml>"
    assert v2.from_xml(body) == {"attach": " 两 spaces ", "total_fee": "1", "empty": ""}
    assert v2.from_xml(b"<other><a>1</a></other>") == {} and v2.from_xml(b"<xml/>") == {}


def test_doctype_answer_to_micropay_is_unknown_and_never_expanded() -> None:
    evil = b'<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><return_code>&x;</return_code></xml>'
    result = v2.micropay(
        make_config(), micropay_request(), client=mock_client(lambda r: httpx.Response(200, content=evil))
    )
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "UNPARSEABLE")
    assert result.response_fields == {}


# --- micropay ----------------------------------------------------------------------------------------------------


def test_micropay_success_parses_fields_and_signs_request_with_configured_type() -> None:
    server = RecordingV2Server(
        API_KEY,
        answer(
            result_code="SUCCESS",
            transaction_id="1008450740201411110005820873",
            openid="oUpF8uN95-Ptaags6E_roPHg7AG0",
            total_fee="1",
            cash_fee="1",
            time_end="20141111170043",
        ),
    )
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert result.outcome is Outcome.SUCCESS
    assert (result.transaction_id, result.openid, result.total_fee, result.cash_fee, result.time_end) == (
        "1008450740201411110005820873",
        "oUpF8uN95-Ptaags6E_roPHg7AG0",
        1,
        1,
        "20141111170043",
    )
    sent = server.requests[0]
    assert server.paths == ["/pay/micropay"]
    assert sent["sign_type"] == "HMAC-SHA256" and len(sent["sign"]) == 64
    assert sent["auth_code"] == AUTH_CODE and sent["total_fee"] == "1"
    assert "attach" not in sent  # empty optional fields are not sent


def test_micropay_md5_config_signs_with_md5() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS"))
    result = v2.micropay(make_config(v2.SignType.MD5), micropay_request(), client=mock_client(server))
    assert result.outcome is Outcome.SUCCESS
    assert server.requests[0]["sign_type"] == "MD5" and len(server.requests[0]["sign"]) == 32


def test_service_provider_mode_sends_sub_merchant() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS"))
    config = make_config(sub_mch_id="1900000109", sub_appid="wx8888888888888888")
    v2.micropay(config, micropay_request(), client=mock_client(server))
    sent = server.requests[0]
    assert (sent["mch_id"], sent["sub_mch_id"], sent["sub_appid"]) == ("10000100", "1900000109", "wx8888888888888888")


@pytest.mark.parametrize(
    ("err_code", "outcome"),
    [
        ("USERPAYING", Outcome.UNKNOWN),
        ("SYSTEMERROR", Outcome.UNKNOWN),
        ("BANKERROR", Outcome.UNKNOWN),
        ("NOTENOUGH", Outcome.REJECTED),
        ("AUTHCODEEXPIRE", Outcome.REJECTED),
        ("ORDERPAID", Outcome.REJECTED),
    ],
)
def test_micropay_err_codes(err_code: str, outcome: Outcome) -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="FAIL", err_code=err_code, err_code_des="描述"))
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert (result.outcome, result.code, result.message) == (outcome, err_code, "描述")


def test_micropay_bad_response_signature_is_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        fields = answer(result_code="FAIL", err_code="NOTENOUGH")
        fields["sign"] = v2.sign(fields, "f" * 32, v2.SignType.HMAC_SHA256)  # not our key
        return httpx.Response(200, content=v2.to_xml(fields).encode())

    result = v2.micropay(make_config(), micropay_request(), client=mock_client(handler))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "BAD_SIGNATURE")


def test_micropay_unsigned_business_answer_is_unknown() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS"), sign_answer=False)
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "BAD_SIGNATURE")


def test_micropay_tampered_response_field_is_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        fields = answer(result_code="FAIL", err_code="NOTENOUGH")
        fields["sign"] = v2.sign(fields, API_KEY, v2.SignType.HMAC_SHA256)
        fields["err_code"] = "AUTHCODEEXPIRE"
        return httpx.Response(200, content=v2.to_xml(fields).encode())

    result = v2.micropay(make_config(), micropay_request(), client=mock_client(handler))
    assert result.outcome is Outcome.UNKNOWN


def test_micropay_return_code_fail_is_rejected_but_systemerror_is_unknown() -> None:
    fail = RecordingV2Server(API_KEY, {"return_code": "FAIL", "return_msg": "签名错误"}, sign_answer=False)
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(fail))
    assert (result.outcome, result.code, result.message) == (Outcome.REJECTED, "FAIL", "签名错误")
    busy = RecordingV2Server(API_KEY, {"return_code": "SYSTEMERROR", "return_msg": "busy"}, sign_answer=False)
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(busy))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "SYSTEMERROR")


@pytest.mark.parametrize(
    ("handler", "outcome", "code"),
    [
        (raising(httpx.ReadTimeout), Outcome.UNKNOWN, "TIMEOUT"),
        (raising(httpx.WriteTimeout), Outcome.UNKNOWN, "TIMEOUT"),
        (raising(httpx.RemoteProtocolError), Outcome.UNKNOWN, "NETWORK_ERROR"),
        (raising(httpx.ReadError), Outcome.UNKNOWN, "NETWORK_ERROR"),
        (raising(httpx.ConnectError), Outcome.TRANSIENT, "CONNECT_ERROR"),
        (raising(httpx.ConnectTimeout), Outcome.TRANSIENT, "CONNECT_ERROR"),
        (lambda r: httpx.Response(502, content=b"bad gateway"), Outcome.UNKNOWN, "HTTP_502"),
        (lambda r: httpx.Response(200, content=b"<html>oops"), Outcome.UNKNOWN, "UNPARSEABLE"),
    ],
)
def test_micropay_transport_problems(handler, outcome: Outcome, code: str) -> None:
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(handler))
    assert (result.outcome, result.code) == (outcome, code)
    assert "simulated" not in result.message


def test_micropay_result_is_redacted() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS"))
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert result.request_fields["auth_code"] == AUTH_CODE[:4] + "***"
    assert result.request_fields["sign"].endswith("***") and len(result.request_fields["sign"]) == 7
    assert result.response_fields["sign"].endswith("***")
    assert result.request_fields["out_trade_no"] == "1415757673"
    text = repr(result) + repr(make_config()) + repr(micropay_request())
    assert AUTH_CODE not in text and API_KEY not in text and server.requests[0]["sign"] not in text


# --- orderquery --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("trade_state", "outcome"),
    [
        ("SUCCESS", Outcome.SUCCESS),
        ("REFUND", Outcome.SUCCESS),
        ("USERPAYING", Outcome.UNKNOWN),
        ("NOTPAY", Outcome.UNKNOWN),
        ("CLOSED", Outcome.REJECTED),
        ("REVOKED", Outcome.REJECTED),
        ("PAYERROR", Outcome.REJECTED),
    ],
)
def test_orderquery_trade_states(trade_state: str, outcome: Outcome) -> None:
    server = RecordingV2Server(
        API_KEY, answer(result_code="SUCCESS", trade_state=trade_state, out_trade_no="1415757673", total_fee="1")
    )
    result = v2.orderquery(make_config(), v2.OrderQueryRequest(out_trade_no="1415757673"), client=mock_client(server))
    assert (result.outcome, result.trade_state, result.order_exists) == (outcome, trade_state, True)
    assert server.paths == ["/pay/orderquery"] and server.requests[0]["out_trade_no"] == "1415757673"


def test_orderquery_ordernotexist_is_definite() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="FAIL", err_code="ORDERNOTEXIST", err_code_des="不存在"))
    result = v2.orderquery(make_config(), v2.OrderQueryRequest(out_trade_no="x"), client=mock_client(server))
    assert (result.outcome, result.code, result.order_exists) == (Outcome.REJECTED, "ORDERNOTEXIST", False)


@pytest.mark.parametrize(
    "handler",
    [
        raising(httpx.ReadTimeout),
        lambda r: httpx.Response(500),
        RecordingV2Server(API_KEY, answer(result_code="FAIL", err_code="SYSTEMERROR")),
        RecordingV2Server(API_KEY, {"return_code": "FAIL", "return_msg": "参数错误"}, sign_answer=False),
    ],
)
def test_orderquery_failures_are_transient_never_rejected(handler) -> None:
    result = v2.orderquery(make_config(), v2.OrderQueryRequest(transaction_id="42"), client=mock_client(handler))
    assert result.outcome is Outcome.TRANSIENT


def test_orderquery_prefers_transaction_id() -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", trade_state="SUCCESS"))
    v2.orderquery(
        make_config(), v2.OrderQueryRequest(transaction_id="42", out_trade_no="x"), client=mock_client(server)
    )
    assert server.requests[0]["transaction_id"] == "42" and "out_trade_no" not in server.requests[0]


# --- reverse -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "outcome", "recall"),
    [
        ({"result_code": "SUCCESS", "recall": "N"}, Outcome.SUCCESS, False),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR", "recall": "Y"}, Outcome.TRANSIENT, True),
        ({"result_code": "FAIL", "err_code": "TRADE_ERROR", "recall": "N"}, Outcome.REJECTED, False),
        ({"result_code": "FAIL", "err_code": "REVERSE_EXPIRE", "recall": "N"}, Outcome.REJECTED, False),
        ({"result_code": "FAIL", "err_code": "USERPAYING"}, Outcome.TRANSIENT, None),
    ],
)
def test_reverse(fields: dict[str, str], outcome: Outcome, recall: bool | None) -> None:
    server = RecordingV2Server(API_KEY, answer(**fields))
    result = v2.reverse(make_config(), v2.ReverseRequest(out_trade_no="1415717424"), client=mock_client(server))
    assert (result.outcome, result.recall) == (outcome, recall)
    assert result.code == fields.get("err_code", "")
    assert server.paths == ["/secapi/pay/reverse"]


def test_reverse_timeout_is_unknown() -> None:
    result = v2.reverse(
        make_config(), v2.ReverseRequest(out_trade_no="1"), client=mock_client(raising(httpx.ReadTimeout))
    )
    assert result.outcome is Outcome.UNKNOWN


def test_reverse_without_client_certificate_does_not_send() -> None:
    result = v2.reverse(make_config(), v2.ReverseRequest(out_trade_no="1"))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "NO_CLIENT_CERT")


# --- refund / refundquery ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({"result_code": "SUCCESS", "refund_id": "50000", "refund_fee": "1"}, Outcome.SUCCESS),
        ({"result_code": "FAIL", "err_code": "SYSTEMERROR"}, Outcome.UNKNOWN),
        ({"result_code": "FAIL", "err_code": "NOTENOUGH"}, Outcome.REJECTED),
        ({"result_code": "FAIL", "err_code": "FREQUENCY_LIMITED"}, Outcome.TRANSIENT),
    ],
)
def test_refund(fields: dict[str, str], outcome: Outcome) -> None:
    server = RecordingV2Server(API_KEY, answer(**fields))
    request = v2.RefundRequest(out_trade_no="1415757673", out_refund_no="R1", total_fee=100, refund_fee=1)
    result = v2.refund(make_config(), request, client=mock_client(server))
    assert result.outcome is outcome
    assert server.paths == ["/secapi/pay/refund"]
    assert (server.requests[0]["total_fee"], server.requests[0]["refund_fee"]) == ("100", "1")


def test_refundquery_picks_the_asked_refund() -> None:
    server = RecordingV2Server(
        API_KEY,
        answer(
            result_code="SUCCESS",
            refund_count="2",
            out_refund_no_0="R0",
            refund_id_0="500",
            refund_fee_0="10",
            refund_status_0="SUCCESS",
            out_refund_no_1="R1",
            refund_id_1="501",
            refund_fee_1="20",
            refund_status_1="PROCESSING",
        ),
    )
    result = v2.refundquery(make_config(), v2.RefundQueryRequest(out_refund_no="R1"), client=mock_client(server))
    assert (result.outcome, result.refund_status) == (Outcome.UNKNOWN, "PROCESSING")
    assert [r.refund_fee for r in result.refunds] == [10, 20]
    result = v2.refundquery(make_config(), v2.RefundQueryRequest(out_refund_no="R0"), client=mock_client(server))
    assert (result.outcome, result.refund_status) == (Outcome.SUCCESS, "SUCCESS")
    # Asked about a refund the answer does not list: not R0's SUCCESS, not anything — ask again later.
    result = v2.refundquery(make_config(), v2.RefundQueryRequest(out_refund_no="R9"), client=mock_client(server))
    assert (result.outcome, result.code, result.refund_status) == (Outcome.TRANSIENT, "NOT_LISTED", "")
    result = v2.refundquery(make_config(), v2.RefundQueryRequest(refund_id="509"), client=mock_client(server))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "NOT_LISTED")


@pytest.mark.parametrize(("status", "outcome"), [("REFUNDCLOSE", Outcome.REJECTED), ("CHANGE", Outcome.REJECTED)])
def test_refundquery_closed_states(status: str, outcome: Outcome) -> None:
    server = RecordingV2Server(
        API_KEY, answer(result_code="SUCCESS", refund_count="1", out_refund_no_0="R0", refund_status_0=status)
    )
    result = v2.refundquery(make_config(), v2.RefundQueryRequest(out_refund_no="R0"), client=mock_client(server))
    assert (result.outcome, result.code) == (outcome, status)


# --- face authinfo -----------------------------------------------------------------------------------------------


def authinfo_request() -> v2.FaceAuthinfoRequest:
    return v2.FaceAuthinfoRequest(
        store_id="IMG001", store_name="测试门店", device_id="dev-1", rawdata="0CSmor/Pp4vC7WE5", now=1540901425
    )


def test_authinfo_request_fields_and_success() -> None:
    server = RecordingV2Server(
        API_KEY,
        {
            "return_code": "SUCCESS",
            "return_msg": "请求成功",
            "appid": "wx1",
            "mch_id": "10000100",
            "nonce_str": "n",
            "authinfo": "q3OPhFtQBf6KZGqm",
            "expires_in": "7200",
        },
    )
    result = v2.get_wxpayface_authinfo(
        make_config(sub_mch_id="1900000109"), authinfo_request(), client=mock_client(server)
    )
    assert (result.outcome, result.authinfo, result.expires_in) == (Outcome.SUCCESS, "q3OPhFtQBf6KZGqm", 7200)
    assert server.paths == ["/face/get_wxpayface_authinfo"]
    sent = server.requests[0]
    assert (sent["now"], sent["version"], sent["sign_type"], sent["store_id"], sent["sub_mch_id"]) == (
        "1540901425",
        "1",
        "HMAC-SHA256",
        "IMG001",
        "1900000109",
    )
    assert "q3OPhFtQBf6KZGqm" not in repr(result)
    assert result.response_fields["authinfo"] == "q3OP***"


@pytest.mark.parametrize(
    ("handler", "outcome"),
    [
        (raising(httpx.ReadTimeout), Outcome.TRANSIENT),
        (raising(httpx.ConnectError), Outcome.TRANSIENT),
        (lambda r: httpx.Response(503), Outcome.TRANSIENT),
        (
            RecordingV2Server(API_KEY, {"return_code": "PARAM_ERROR", "return_msg": "rawdata"}, sign_answer=False),
            Outcome.TRANSIENT,
        ),
    ],
)
def test_authinfo_failures_are_transient(handler, outcome: Outcome) -> None:
    result = v2.get_wxpayface_authinfo(make_config(), authinfo_request(), client=mock_client(handler))
    assert result.outcome is outcome and result.authinfo == ""


# --- answers must be about this order ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("echo", "outcome"),
    [
        ({"out_trade_no": "1415757673", "total_fee": "1"}, Outcome.SUCCESS),
        ({"out_trade_no": "OTHER", "total_fee": "1"}, Outcome.UNKNOWN),  # another order's "paid"
        ({"out_trade_no": "1415757673", "total_fee": "2"}, Outcome.UNKNOWN),  # another amount
        ({"mch_id": "10000101"}, Outcome.UNKNOWN),  # another merchant's answer
        ({"appid": "wxother"}, Outcome.UNKNOWN),
        ({}, Outcome.SUCCESS),  # the echoes left out: taken as is
    ],
)
def test_micropay_answer_about_another_order_is_unknown(echo: dict, outcome: Outcome) -> None:
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", transaction_id="4200", **echo))
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert result.outcome is outcome
    assert (result.code == "MISMATCH") == (outcome is Outcome.UNKNOWN)


def test_a_refusal_about_another_order_does_not_fail_this_one() -> None:
    server = RecordingV2Server(
        API_KEY, answer(result_code="FAIL", err_code="NOTENOUGH", out_trade_no="OTHER", total_fee="1")
    )
    result = v2.micropay(make_config(), micropay_request(), client=mock_client(server))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "MISMATCH")


def test_service_provider_answer_must_name_the_sub_merchant() -> None:
    config = make_config(sub_mch_id="1900000109")
    other = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", sub_mch_id="1900000110"))
    same = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", sub_mch_id="1900000109"))
    assert v2.micropay(config, micropay_request(), client=mock_client(other)).code == "MISMATCH"
    assert v2.micropay(config, micropay_request(), client=mock_client(same)).outcome is Outcome.SUCCESS


@pytest.mark.parametrize(
    ("echo", "outcome"),
    [
        ({"out_trade_no": "A1", "total_fee": "2", "transaction_id": "T1"}, Outcome.SUCCESS),
        ({"out_trade_no": "A1", "total_fee": "1", "transaction_id": "T1"}, Outcome.TRANSIENT),  # a 1-fen "paid"
        ({"out_trade_no": "A2", "total_fee": "2", "transaction_id": "T1"}, Outcome.TRANSIENT),
        ({"out_trade_no": "A1", "total_fee": "2", "transaction_id": "T2"}, Outcome.TRANSIENT),
    ],
)
def test_orderquery_answer_is_compared_with_the_order(echo: dict, outcome: Outcome) -> None:
    """The query is sent by transaction_id; out_trade_no and total_fee are still the order's and compared."""
    server = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", trade_state="SUCCESS", **echo))
    request = v2.OrderQueryRequest(transaction_id="T1", out_trade_no="A1", total_fee=2)
    result = v2.orderquery(make_config(), request, client=mock_client(server))
    assert result.outcome is outcome
    assert "out_trade_no" not in server.requests[0] and "total_fee" not in server.requests[0]
    if outcome is Outcome.TRANSIENT:
        assert result.code == "MISMATCH" and "expected" in result.message


def test_reverse_and_refund_answers_about_another_order_are_unknown() -> None:
    reverse = RecordingV2Server(API_KEY, answer(result_code="SUCCESS", out_trade_no="OTHER"))
    result = v2.reverse(make_config(), v2.ReverseRequest(out_trade_no="A1"), client=mock_client(reverse))
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "MISMATCH")
    refund = RecordingV2Server(
        API_KEY, answer(result_code="SUCCESS", out_refund_no="R1", total_fee="100", refund_fee="2")
    )
    request = v2.RefundRequest(out_trade_no="A1", out_refund_no="R1", total_fee=100, refund_fee=1)
    assert v2.refund(make_config(), request, client=mock_client(refund)).code == "MISMATCH"
