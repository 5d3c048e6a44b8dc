"""WeChat Pay API v3 payment-code calls: paths and bodies (direct and partner), the Authorization checked
independently of the gateway's own code, answer verification, and each call's outcome classification."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from wechatpayv3 import utils as sdk

from payments.gateways import wechatpay_v3 as v3
from payments.gateways import wechatpay_v3_pay as pay
from payments.gateways.base import Outcome
from tests.payments.gateways.gateway_fakes import KeyPair, make_key_pair, mock_client, raising

NOW = 1_700_000_000
API_V3_KEY = "0123456789abcdefghijklmnopqrstuv"
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"
MCHID = "1230000109"  # the direct merchant, or the provider in partner mode
APPID = "wxd678efh567hg6787"
SUB_MCHID = "1900000109"
SUB_APPID = "wx8888888888888888"
AUTH_CODE = "134567890123456789"
OUT_TRADE_NO = "1217752501201407033233368018"


def clock() -> float:
    return float(NOW)


@pytest.fixture(scope="module")
def other_keys() -> KeyPair:
    """A key WeChat never published: answers signed with it must not be trusted."""
    return make_key_pair("not-wechatpay")


def make_config(merchant: KeyPair, platform: KeyPair, pubkey: KeyPair, *, partner: bool) -> v3.WechatPayV3Config:
    return v3.WechatPayV3Config(
        mchid=MCHID,
        appid=APPID,
        merchant_private_key_pem=merchant.private_pem,
        merchant_serial_no=merchant.serial,
        api_v3_key=API_V3_KEY,
        platform_keys={platform.serial: platform.cert_pem, PUB_KEY_ID: pubkey.public_pem},
        base_url="https://api.test",
        sub_mchid=SUB_MCHID if partner else "",
        sub_appid=SUB_APPID if partner else "",
    )


@pytest.fixture(scope="module")
def direct(merchant_keys: KeyPair, platform_keys: KeyPair, platform_pubkey_keys: KeyPair) -> v3.WechatPayV3Config:
    return make_config(merchant_keys, platform_keys, platform_pubkey_keys, partner=False)


@pytest.fixture(scope="module")
def partner(merchant_keys: KeyPair, platform_keys: KeyPair, platform_pubkey_keys: KeyPair) -> v3.WechatPayV3Config:
    return make_config(merchant_keys, platform_keys, platform_pubkey_keys, partner=True)


# --- a stand-in WeChat that shares no code with the gateway -------------------------------------------------------

_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


def request_signature_checks(request: httpx.Request, merchant: KeyPair) -> dict[str, str]:
    """Check the Authorization the way WeChat does, rebuilt here from the raw request: the five-line message
    METHOD, path+query as sent, timestamp, nonce, body — verified with `cryptography` and with the wechatpayv3 SDK.
    Raises (InvalidSignature / AssertionError) when it does not verify."""
    header = request.headers["Authorization"]
    schema, _, rest = header.partition(" ")
    assert schema == "WECHATPAY2-SHA256-RSA2048"
    params = dict(_AUTH_PARAM.findall(rest))
    path = request.url.raw_path.decode("ascii")
    body = request.content
    message = b"%s\n%s\n%s\n%s\n%s\n" % (
        request.method.encode(),
        path.encode(),
        params["timestamp"].encode(),
        params["nonce_str"].encode(),
        body,
    )
    public_key = merchant.private_key.public_key()
    public_key.verify(base64.b64decode(params["signature"]), message, padding.PKCS1v15(), hashes.SHA256())
    # The SDK's verify joins its three arguments with "\n" and ends with "\n": given "METHOD\nPATH\nTIMESTAMP" as its
    # first one, it checks the very same five-line message, built by other code.
    first = f"{request.method}\n{path}\n{params['timestamp']}"
    assert sdk.rsa_verify(first, params["nonce_str"], body.decode("utf-8"), params["signature"], public_key)
    return params


class FakeWeChat:
    """Checks each request's Authorization independently and answers with a body signed by the SDK's signer."""

    def __init__(
        self,
        merchant: KeyPair,
        signer: KeyPair | None,
        status: int = 200,
        body: dict | None = None,
        *,
        serial: str = "",
        timestamp: int = NOW,
    ) -> None:
        self.merchant, self.signer, self.status, self.body = merchant, signer, status, body
        self.serial = serial or (signer.serial if signer else "")
        self.timestamp = timestamp
        self.seen: list[tuple[str, str, dict | None]] = []
        self.auth: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = request_signature_checks(request, self.merchant)
        assert params["mchid"] == MCHID and params["serial_no"] == self.merchant.serial
        assert int(params["timestamp"]) == NOW
        self.auth.append(params)
        self.seen.append(
            (request.method, request.url.raw_path.decode(), json.loads(request.content) if request.content else None)
        )
        content = b"" if self.body is None else json.dumps(self.body, ensure_ascii=False).encode()
        headers = {}
        if self.signer is not None:
            nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
            signed_text = f"{self.timestamp}\n{nonce}\n{content.decode()}\n"
            headers = {
                "Wechatpay-Timestamp": str(self.timestamp),
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": sdk.rsa_sign(self.signer.private_key, signed_text),
                "Wechatpay-Serial": self.serial,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            }
        return httpx.Response(self.status, content=content, headers=headers)


def transaction(*, partner: bool = False, **changes) -> dict:
    """A paid codepay / query answer for OUT_TRADE_NO, 100 fen."""
    ids = (
        {"sp_appid": APPID, "sp_mchid": MCHID, "sub_appid": SUB_APPID, "sub_mchid": SUB_MCHID}
        if partner
        else {"appid": APPID, "mchid": MCHID}
    )
    payer = {"sp_openid": "sp-openid", "sub_openid": "sub-openid"} if partner else {"openid": "payer-openid"}
    answer = {
        **ids,
        "out_trade_no": OUT_TRADE_NO,
        "transaction_id": "4200000985202103031441826014",
        "trade_type": "MICROPAY",
        "bank_type": "OTHERS",
        "success_time": "2018-06-08T10:34:56+08:00",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "payer": payer,
        "amount": {"total": 100, "payer_total": 100, "currency": "CNY", "payer_currency": "CNY"},
    }
    answer.update(changes)
    return answer


def codepay_request(**changes) -> pay.CodepayRequest:
    values = {
        "out_trade_no": OUT_TRADE_NO,
        "total": 100,
        "description": "Image形象店-深圳腾大-QQ公仔",
        "auth_code": AUTH_CODE,
        "device_ip": "10.0.0.8",
        "device_id": "POS-0001",
        "store_id": "S001",
        "attach": "",
    }
    values.update(changes)
    return pay.CodepayRequest(**values)


def refund_request(**changes) -> pay.RefundRequest:
    values = {"out_refund_no": "R-1", "out_trade_no": OUT_TRADE_NO, "total": 100, "refund": 40, "reason": "退货"}
    values.update(changes)
    return pay.RefundRequest(**values)


def refund_answer(**changes) -> dict:
    answer = {
        "refund_id": "50000000382019052709732678859",
        "out_refund_no": "R-1",
        "transaction_id": "4200000985202103031441826014",
        "out_trade_no": OUT_TRADE_NO,
        "channel": "ORIGINAL",
        "user_received_account": "招商银行信用卡0403",
        "create_time": "2020-12-01T16:18:12+08:00",
        "status": "PROCESSING",
        "amount": {"total": 100, "refund": 40, "payer_total": 100, "payer_refund": 40, "currency": "CNY"},
    }
    answer.update(changes)
    return answer


# --- the Authorization, checked independently -----------------------------------------------------------------------


def test_independent_authorization_check_fails_on_any_change(merchant_keys: KeyPair, direct) -> None:
    """The stand-in's check is real: the same request with another path, body or key does not verify."""
    platform = FakeWeChat(merchant_keys, None, 200, {})
    pay.query(direct, out_trade_no="A1", client=mock_client(platform), clock=clock)
    built = httpx.Client().build_request("GET", "https://api.test/v3/pay/transactions/out-trade-no/A1?mchid=" + MCHID)
    built.headers["Authorization"] = v3.build_authorization(
        mchid=MCHID,
        serial_no=merchant_keys.serial,
        private_key=merchant_keys.private_pem,
        method="GET",
        path_with_query=built.url.raw_path.decode(),
        timestamp=NOW,
    )
    request_signature_checks(built, merchant_keys)
    tampered = httpx.Client().build_request(
        "GET", "https://api.test/v3/pay/transactions/out-trade-no/A2?mchid=" + MCHID
    )
    tampered.headers["Authorization"] = built.headers["Authorization"]
    with pytest.raises(InvalidSignature):
        request_signature_checks(tampered, merchant_keys)
    with pytest.raises(InvalidSignature):
        request_signature_checks(built, make_key_pair("someone-else"))


def test_post_authorization_covers_the_exact_body_sent(merchant_keys: KeyPair, platform_keys: KeyPair, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction())
    pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert len(platform.auth) == 1  # the request verified (FakeWeChat raises otherwise)
    assert platform.auth[0]["nonce_str"]


# --- codepay -----------------------------------------------------------------------------------------------------


def test_codepay_direct_request_and_success(merchant_keys: KeyPair, platform_keys: KeyPair, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction())
    result = pay.codepay(direct, codepay_request(attach="a=1"), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.transaction_id, result.trade_state, result.openid) == (
        Outcome.SUCCESS,
        "",
        "4200000985202103031441826014",
        "SUCCESS",
        "payer-openid",
    )
    assert result.http_status == 200 and result.data["bank_type"] == "OTHERS"
    method, path, body = platform.seen[0]
    assert (method, path) == ("POST", "/v3/pay/transactions/codepay")
    assert body == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": OUT_TRADE_NO,
        "attach": "a=1",
        "payer": {"auth_code": AUTH_CODE},
        "amount": {"total": 100, "currency": "CNY"},
        "scene_info": {"device_id": "POS-0001", "device_ip": "10.0.0.8", "store_info": {"out_id": "S001"}},
    }


def test_codepay_partner_request_and_openid(merchant_keys: KeyPair, platform_keys: KeyPair, partner) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction(partner=True))
    request = codepay_request(device_id="", store_id="")
    result = pay.codepay(partner, request, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.openid) == (Outcome.SUCCESS, "sub-openid")
    method, path, body = platform.seen[0]
    assert (method, path) == ("POST", "/v3/pay/partner/transactions/codepay")
    assert body == {
        "sp_appid": APPID,
        "sp_mchid": MCHID,
        "sub_appid": SUB_APPID,
        "sub_mchid": SUB_MCHID,
        "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": OUT_TRADE_NO,
        "payer": {"auth_code": AUTH_CODE},
        "amount": {"total": 100, "currency": "CNY"},
        "scene_info": {"device_ip": "10.0.0.8"},
    }
    # Without a sub_openid the provider's openid is the payer's.
    only_sp = transaction(partner=True, payer={"sp_openid": "sp-openid"})
    again = pay.codepay(
        partner, request, client=mock_client(FakeWeChat(merchant_keys, platform_keys, 200, only_sp)), clock=clock
    )
    assert again.openid == "sp-openid"


def test_codepay_never_stores_the_auth_code(merchant_keys: KeyPair, platform_keys: KeyPair, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction())
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    stored = json.dumps([result.request_fields, result.response_fields], ensure_ascii=False)
    assert AUTH_CODE not in stored
    assert result.request_fields["body"]["payer"]["auth_code"] == AUTH_CODE[:4] + "***"
    assert AUTH_CODE not in repr(codepay_request())
    # What went to WeChat was the full code.
    assert platform.seen[0][2]["payer"]["auth_code"] == AUTH_CODE


@pytest.mark.parametrize("signer_name", ["certificate", "public key id"])
def test_answers_signed_by_certificate_or_public_key_are_accepted(
    signer_name: str, merchant_keys: KeyPair, platform_keys: KeyPair, platform_pubkey_keys: KeyPair, direct
) -> None:
    signer, serial = (
        (platform_keys, platform_keys.serial) if signer_name == "certificate" else (platform_pubkey_keys, PUB_KEY_ID)
    )
    platform = FakeWeChat(merchant_keys, signer, 200, transaction(), serial=serial)
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert result.outcome is Outcome.SUCCESS


@pytest.mark.parametrize(
    "case", ["unsigned", "unknown serial", "wrong key", "key id signed by certificate key", "stale"]
)
def test_untrusted_answers_are_unknown_for_codepay_and_transient_for_query(
    case: str, merchant_keys: KeyPair, platform_keys: KeyPair, other_keys: KeyPair, direct
) -> None:
    kwargs: dict = {}
    signer: KeyPair | None = platform_keys
    if case == "unsigned":
        signer = None
    elif case == "unknown serial":
        kwargs["serial"] = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    elif case == "wrong key":
        kwargs["serial"] = platform_keys.serial
        signer = other_keys
    elif case == "key id signed by certificate key":
        kwargs["serial"] = PUB_KEY_ID
    else:
        kwargs["timestamp"] = NOW - 3600
    client = mock_client(FakeWeChat(merchant_keys, signer, 200, transaction(), **kwargs))
    paid = pay.codepay(direct, codepay_request(), client=client, clock=clock)
    assert (paid.outcome, paid.code, paid.transaction_id) == (Outcome.UNKNOWN, "BAD_SIGNATURE", "")
    asked = pay.query(direct, out_trade_no=OUT_TRADE_NO, total=100, client=client, clock=clock)
    assert (asked.outcome, asked.code) == (Outcome.TRANSIENT, "BAD_SIGNATURE")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (202, {"trade_state": "USERPAYING"}),
        (202, {}),
        (202, {"code": "USERPAYING", "message": "用户支付中，需要输入密码"}),
        (200, {"out_trade_no": OUT_TRADE_NO, "mchid": MCHID, "trade_state": "USERPAYING"}),
        (403, {"code": "USERPAYING", "message": "用户支付中，需要输入密码"}),
    ],
)
def test_codepay_userpaying_is_unknown(status: int, body: dict, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, status, body)
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.http_status) == (Outcome.UNKNOWN, "USERPAYING", status)


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"out_trade_no": "OTHER"}, "out_trade_no"),
        ({"amount": {"total": 1, "currency": "CNY"}}, "amount.total"),
        ({"amount": {"total": "100"}}, "amount.total"),  # not a JSON number: not this amount
        ({"mchid": "1999999999"}, "mchid"),
        ({"appid": "wx0000000000000000"}, "appid"),
        ({"transaction_id": ""}, "transaction_id missing"),
        ({"amount": None}, "amount.total missing"),
        ({"mchid": None}, "mchid missing"),
    ],
)
def test_codepay_answer_about_another_order_is_unknown(
    changes: dict, detail: str, merchant_keys, platform_keys, direct
) -> None:
    body = {k: v for k, v in transaction(**changes).items() if v is not None}
    platform = FakeWeChat(merchant_keys, platform_keys, 200, body)
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "MISMATCH")
    assert detail in result.message


@pytest.mark.parametrize(
    "changes",
    [{"sub_mchid": "1888888888"}, {"sp_mchid": "1888888888"}, {"sub_appid": "wx0000000000000000"}, {"sub_mchid": None}],
)
def test_partner_codepay_checks_both_merchants(changes: dict, merchant_keys, platform_keys, partner) -> None:
    body = {k: v for k, v in transaction(partner=True, **changes).items() if v is not None}
    platform = FakeWeChat(merchant_keys, platform_keys, 200, body)
    result = pay.codepay(partner, codepay_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "MISMATCH")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "code"),
    [
        (500, {"code": "SYSTEM_ERROR", "message": "系统错误"}, Outcome.UNKNOWN, "SYSTEM_ERROR"),
        (500, {"code": "BANK_ERROR", "message": "银行系统异常"}, Outcome.UNKNOWN, "BANK_ERROR"),
        (400, {"code": "BANK_ERROR", "message": "银行系统异常"}, Outcome.UNKNOWN, "BANK_ERROR"),
        (400, {"code": "PARAM_ERROR", "message": "参数错误"}, Outcome.REJECTED, "PARAM_ERROR"),
        (400, {"code": "INVALID_REQUEST", "message": "不符合规则"}, Outcome.REJECTED, "INVALID_REQUEST"),
        (403, {"code": "NOT_ENOUGH", "message": "余额不足"}, Outcome.REJECTED, "NOT_ENOUGH"),
        (400, {"code": "ORDER_CLOSED", "message": "订单已关闭"}, Outcome.REJECTED, "ORDER_CLOSED"),
        (400, {"code": "AUTH_CODE_INVALID", "message": "付款码无效"}, Outcome.REJECTED, "AUTH_CODE_INVALID"),
        (403, {"code": "TRADE_ERROR", "message": "交易错误"}, Outcome.REJECTED, "TRADE_ERROR"),
        (429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}, Outcome.TRANSIENT, "FREQUENCY_LIMITED"),
        (403, {"message": "no code"}, Outcome.UNKNOWN, "HTTP_403"),  # as v2: a refusal naming no reason
        (200, transaction(trade_state="PAYERROR", transaction_id=""), Outcome.REJECTED, "PAYERROR"),
        (200, transaction(trade_state="NOTPAY", transaction_id=""), Outcome.UNKNOWN, "NOTPAY"),
        (200, transaction(trade_state="", transaction_id=""), Outcome.UNKNOWN, "NO_TRADE_STATE"),
    ],
)
def test_codepay_error_classes(
    status: int, body: dict, outcome: Outcome, code: str, merchant_keys, platform_keys, direct
):
    platform = FakeWeChat(merchant_keys, platform_keys, status, body)
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.http_status) == (outcome, code, status)


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [(502, Outcome.UNKNOWN, "HTTP_502"), (400, Outcome.UNKNOWN, "HTTP_400"), (401, Outcome.REJECTED, "SIGN_ERROR")],
)
def test_codepay_unsigned_error_answers(status: int, outcome: Outcome, code: str, merchant_keys, direct) -> None:
    body = {"code": "SIGN_ERROR" if status == 401 else "PARAM_ERROR", "message": "m"}
    platform = FakeWeChat(merchant_keys, None, status, body)
    result = pay.codepay(direct, codepay_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (outcome, code)


# --- transport ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "moving", "reading"),
    [
        (httpx.ReadTimeout, Outcome.UNKNOWN, Outcome.TRANSIENT),
        (httpx.RemoteProtocolError, Outcome.UNKNOWN, Outcome.TRANSIENT),
        (httpx.ConnectError, Outcome.TRANSIENT, Outcome.TRANSIENT),
    ],
)
def test_transport_failures(exc: type[Exception], moving: Outcome, reading: Outcome, direct) -> None:
    client = mock_client(raising(exc))
    calls = [
        (pay.codepay(direct, codepay_request(), client=client, clock=clock), moving),
        (pay.reverse(direct, out_trade_no=OUT_TRADE_NO, client=client, clock=clock), moving),
        (pay.refund(direct, refund_request(), client=client, clock=clock), moving),
        (pay.query(direct, out_trade_no=OUT_TRADE_NO, client=client, clock=clock), reading),
        (pay.refund_query(direct, out_refund_no="R-1", client=client, clock=clock), reading),
    ]
    for result, expected in calls:
        assert result.outcome is expected, type(result).__name__
    assert AUTH_CODE not in json.dumps(calls[0][0].request_fields)


# --- query -------------------------------------------------------------------------------------------------------


def test_query_paths_direct_and_partner(merchant_keys, platform_keys, direct, partner) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction(out_trade_no="A|1 2/3"))
    result = pay.query(direct, out_trade_no="A|1 2/3", total=100, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.order_exists, result.openid) == (Outcome.SUCCESS, True, "payer-openid")
    assert platform.seen[0] == ("GET", f"/v3/pay/transactions/out-trade-no/A%7C1%202%2F3?mchid={MCHID}", None)
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction(partner=True))
    result = pay.query(partner, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.openid) == (Outcome.SUCCESS, "sub-openid")
    assert platform.seen[0] == (
        "GET",
        f"/v3/pay/partner/transactions/out-trade-no/{OUT_TRADE_NO}?sp_mchid={MCHID}&sub_mchid={SUB_MCHID}",
        None,
    )


@pytest.mark.parametrize(
    ("state", "outcome", "code"),
    [
        ("SUCCESS", Outcome.SUCCESS, ""),
        ("REFUND", Outcome.SUCCESS, ""),
        ("NOTPAY", Outcome.UNKNOWN, "NOTPAY"),
        ("USERPAYING", Outcome.UNKNOWN, "USERPAYING"),
        ("CLOSED", Outcome.REJECTED, "CLOSED"),
        ("REVOKED", Outcome.REJECTED, "REVOKED"),
        ("PAYERROR", Outcome.REJECTED, "PAYERROR"),
        ("ACCEPT", Outcome.UNKNOWN, "ACCEPT"),
    ],
)
def test_query_trade_states(state: str, outcome: Outcome, code: str, merchant_keys, platform_keys, direct) -> None:
    paid = state in ("SUCCESS", "REFUND")
    body = transaction(trade_state=state, trade_state_desc="d") if paid else {
        "appid": APPID, "mchid": MCHID, "out_trade_no": OUT_TRADE_NO, "trade_state": state, "trade_state_desc": "d",
    }  # fmt: skip
    platform = FakeWeChat(merchant_keys, platform_keys, 200, body)
    result = pay.query(direct, out_trade_no=OUT_TRADE_NO, total=100, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.trade_state, result.message) == (outcome, code, state, "d")
    assert result.order_exists is True


@pytest.mark.parametrize("code", ["ORDER_NOT_EXIST", "ORDER_NOT_ EXIST"])
def test_query_order_not_exist(code: str, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 404, {"code": code, "message": "订单不存在"})
    result = pay.query(direct, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.order_exists) == (Outcome.REJECTED, code, False)


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"code": "PARAM_ERROR", "message": "m"}, "PARAM_ERROR"),
        (500, {"code": "SYSTEM_ERROR", "message": "m"}, "SYSTEM_ERROR"),
        (429, {"code": "FREQUENCY_LIMITED", "message": "m"}, "FREQUENCY_LIMITED"),
        (401, {"code": "SIGN_ERROR", "message": "m"}, "SIGN_ERROR"),
    ],
)
def test_failed_queries_are_transient(status: int, body: dict, code: str, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, status, body)
    result = pay.query(direct, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.order_exists) == (Outcome.TRANSIENT, code, None)


@pytest.mark.parametrize(
    ("changes", "total"),
    [
        ({"amount": {"total": 99}}, 100),
        ({"out_trade_no": "OTHER"}, None),
        ({"transaction_id": ""}, None),
        ({"mchid": "1999999999"}, None),
        ({"trade_state": "CLOSED", "out_trade_no": "OTHER"}, None),  # a refusal about another order decides nothing
    ],
)
def test_query_answer_about_another_order_is_transient(changes, total, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction(**changes))
    result = pay.query(direct, out_trade_no=OUT_TRADE_NO, total=total, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "MISMATCH")


def test_query_without_total_does_not_compare_the_amount(merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, transaction(amount={"total": 99}))
    result = pay.query(direct, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert result.outcome is Outcome.SUCCESS


# --- reverse -----------------------------------------------------------------------------------------------------


def test_reverse_direct_and_partner(merchant_keys, platform_keys, direct, partner) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, {"appid": APPID, "mchid": MCHID, "out_trade_no": "A/1"})
    result = pay.reverse(direct, out_trade_no="A/1", client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.recall) == (Outcome.SUCCESS, "", None)
    assert platform.seen[0] == (
        "POST",
        "/v3/pay/transactions/out-trade-no/A%2F1/reverse",
        {"appid": APPID, "mchid": MCHID},
    )
    answer = {"sp_mchid": MCHID, "sub_mchid": SUB_MCHID, "out_trade_no": OUT_TRADE_NO}
    platform = FakeWeChat(merchant_keys, platform_keys, 200, answer)
    result = pay.reverse(partner, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert result.outcome is Outcome.SUCCESS
    assert platform.seen[0] == (
        "POST",
        f"/v3/pay/partner/transactions/out-trade-no/{OUT_TRADE_NO}/reverse",
        {"sp_appid": APPID, "sp_mchid": MCHID, "sub_appid": SUB_APPID, "sub_mchid": SUB_MCHID},
    )


def test_reverse_with_empty_answer_is_success(merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 204, None)
    result = pay.reverse(direct, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.http_status) == (Outcome.SUCCESS, 204)


@pytest.mark.parametrize(
    ("status", "body", "signed", "outcome", "code"),
    [
        (500, {"code": "SYSTEM_ERROR", "message": "m"}, True, Outcome.TRANSIENT, "SYSTEM_ERROR"),
        (403, {"code": "USERPAYING", "message": "m"}, True, Outcome.TRANSIENT, "USERPAYING"),
        (429, {"code": "FREQUENCY_LIMITED", "message": "m"}, True, Outcome.TRANSIENT, "FREQUENCY_LIMITED"),
        (404, {"code": "ORDER_NOT_EXIST", "message": "m"}, True, Outcome.REJECTED, "ORDER_NOT_EXIST"),
        (400, {"code": "INVALID_REQUEST", "message": "超过撤销期限"}, True, Outcome.REJECTED, "INVALID_REQUEST"),
        (403, {"message": "no code"}, True, Outcome.REJECTED, "HTTP_403"),  # v2: FAIL, no recall, no err_code
        (503, {"code": "SYSTEM_ERROR", "message": "m"}, False, Outcome.UNKNOWN, "HTTP_503"),  # not WeChat's word
        (200, {"mchid": MCHID, "out_trade_no": "OTHER"}, True, Outcome.UNKNOWN, "MISMATCH"),
        (200, {"mchid": "1999999999", "out_trade_no": OUT_TRADE_NO}, True, Outcome.UNKNOWN, "MISMATCH"),
    ],
)
def test_reverse_outcomes(status, body, signed, outcome, code, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys if signed else None, status, body)
    result = pay.reverse(direct, out_trade_no=OUT_TRADE_NO, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.recall) == (outcome, code, None)


# --- refund ------------------------------------------------------------------------------------------------------


def test_refund_direct_by_out_trade_no(merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, refund_answer())
    request = refund_request(notify_url="https://merchant.test/notify/refund/")
    result = pay.refund(direct, request, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.refund_id, result.status) == (
        Outcome.SUCCESS,
        "50000000382019052709732678859",
        "PROCESSING",
    )
    assert platform.seen[0] == (
        "POST",
        "/v3/refund/domestic/refunds",
        {
            "out_trade_no": OUT_TRADE_NO,
            "out_refund_no": "R-1",
            "reason": "退货",
            "notify_url": "https://merchant.test/notify/refund/",
            "amount": {"refund": 40, "total": 100, "currency": "CNY"},
        },
    )


def test_refund_partner_by_transaction_id(merchant_keys, platform_keys, partner) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, refund_answer(status="SUCCESS"))
    request = refund_request(transaction_id="4200000985202103031441826014", reason="")
    result = pay.refund(partner, request, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.status) == (Outcome.SUCCESS, "SUCCESS")
    assert platform.seen[0][2] == {
        "sub_mchid": SUB_MCHID,
        "transaction_id": "4200000985202103031441826014",
        "out_refund_no": "R-1",
        "amount": {"refund": 40, "total": 100, "currency": "CNY"},
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"out_refund_no": "R-2"},
        {"out_refund_no": None},
        {"amount": {"total": 100, "refund": 41}},
        {"amount": {"total": 100}},
        {"amount": {"total": 200, "refund": 40}},
        {"out_trade_no": "OTHER"},
        {"transaction_id": "4200000000000000000000000000"},
    ],
)
def test_refund_answer_about_another_refund_is_unknown(changes, merchant_keys, platform_keys, direct) -> None:
    body = {k: v for k, v in refund_answer(**changes).items() if v is not None}
    platform = FakeWeChat(merchant_keys, platform_keys, 200, body)
    request = refund_request(transaction_id="4200000985202103031441826014")
    result = pay.refund(direct, request, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "MISMATCH")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "code"),
    [
        (403, {"code": "NOT_ENOUGH", "message": "余额不足"}, Outcome.REJECTED, "NOT_ENOUGH"),
        (400, {"code": "INVALID_REQUEST", "message": "订单已全额退款"}, Outcome.REJECTED, "INVALID_REQUEST"),
        (404, {"code": "RESOURCE_NOT_EXISTS", "message": "订单不存在"}, Outcome.REJECTED, "RESOURCE_NOT_EXISTS"),
        (500, {"code": "SYSTEM_ERROR", "message": "系统错误"}, Outcome.UNKNOWN, "SYSTEM_ERROR"),
        (429, {"code": "FREQUENCY_LIMITED", "message": "频率限制"}, Outcome.TRANSIENT, "FREQUENCY_LIMITED"),
        (403, {"message": "no code"}, Outcome.UNKNOWN, "HTTP_403"),
    ],
)
def test_refund_error_classes(status, body, outcome, code, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, status, body)
    result = pay.refund(direct, refund_request(), client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code) == (outcome, code)


# --- refund_query ------------------------------------------------------------------------------------------------


def test_refund_query_paths(merchant_keys, platform_keys, direct, partner) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, refund_answer(out_refund_no="R 1/2", status="SUCCESS"))
    result = pay.refund_query(direct, out_refund_no="R 1/2", client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.order_exists) == (Outcome.SUCCESS, "", True)
    assert platform.seen[0] == ("GET", "/v3/refund/domestic/refunds/R%201%2F2", None)
    platform = FakeWeChat(merchant_keys, platform_keys, 200, refund_answer(status="SUCCESS"))
    pay.refund_query(partner, out_refund_no="R-1", client=mock_client(platform), clock=clock)
    assert platform.seen[0] == ("GET", f"/v3/refund/domestic/refunds/R-1?sub_mchid={SUB_MCHID}", None)


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [
        ("SUCCESS", Outcome.SUCCESS, ""),
        ("PROCESSING", Outcome.UNKNOWN, "PROCESSING"),
        ("CLOSED", Outcome.REJECTED, "CLOSED"),
        ("ABNORMAL", Outcome.REJECTED, "ABNORMAL"),
        ("SOMETHING_NEW", Outcome.UNKNOWN, "SOMETHING_NEW"),
    ],
)
def test_refund_query_statuses(status, outcome, code, merchant_keys, platform_keys, direct) -> None:
    platform = FakeWeChat(merchant_keys, platform_keys, 200, refund_answer(status=status))
    result = pay.refund_query(direct, out_refund_no="R-1", client=mock_client(platform), clock=clock)
    assert (result.outcome, result.code, result.status) == (outcome, code, status)


def test_refund_query_not_found_and_failures(merchant_keys, platform_keys, direct) -> None:
    def ask(status: int, body: dict, signer: KeyPair | None = platform_keys) -> pay.RefundResult:
        client = mock_client(FakeWeChat(merchant_keys, signer, status, body))
        return pay.refund_query(direct, out_refund_no="R-1", client=client, clock=clock)

    missing = ask(404, {"code": "RESOURCE_NOT_EXISTS", "message": "退款单不存在"})
    assert (missing.outcome, missing.code, missing.order_exists) == (Outcome.REJECTED, "RESOURCE_NOT_EXISTS", False)
    for status, body in [(400, {"code": "PARAM_ERROR"}), (500, {"code": "SYSTEM_ERROR"}), (429, {"code": "X"})]:
        failed = ask(status, body)
        assert (failed.outcome, failed.order_exists) == (Outcome.TRANSIENT, None)
    unsigned = ask(404, {"code": "RESOURCE_NOT_EXISTS"}, signer=None)  # not WeChat's word
    assert (unsigned.outcome, unsigned.order_exists) == (Outcome.TRANSIENT, None)
    other = ask(200, refund_answer(out_refund_no="R-2", status="SUCCESS"))
    assert (other.outcome, other.code) == (Outcome.TRANSIENT, "MISMATCH")
