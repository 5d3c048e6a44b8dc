"""WeChat Pay API v3: Authorization, response/notification verification, AES-GCM resources, PayScore calls."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import Outcome, VerificationError
from tests.payments.gateways.gateway_fakes import KeyPair, mock_client, raising

NOW = 1_700_000_000
API_V3_KEY = "0123456789abcdefghijklmnopqrstuv"  # 32 bytes
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


def clock() -> float:
    return float(NOW)


@pytest.fixture(scope="module")
def config(merchant_keys: KeyPair, platform_keys: KeyPair, platform_pubkey_keys: KeyPair) -> v3.WechatPayV3Config:
    return v3.WechatPayV3Config(
        mchid="1230000109",
        appid="wxd678efh567hg6787",
        merchant_private_key_pem=merchant_keys.private_pem,
        merchant_serial_no=merchant_keys.serial,
        api_v3_key=API_V3_KEY,
        platform_keys={platform_keys.serial: platform_keys.cert_pem, PUB_KEY_ID: platform_pubkey_keys.public_pem},
        base_url="https://api.test",
    )


class FakePlatform:
    """Checks the merchant's Authorization like WeChat does and answers with a signed JSON body."""

    def __init__(
        self,
        merchant: KeyPair,
        platform: KeyPair,
        status: int,
        body: dict | None,
        *,
        serial: str | None = None,
        timestamp: int = NOW,
        sign: bool = True,
    ) -> None:
        self.merchant, self.platform, self.status, self.body = merchant, platform, status, body
        self.serial = serial or platform.serial
        self.timestamp = timestamp
        self.sign = sign
        self.seen: list[tuple[str, str, dict | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        verified = v3.verify_request_authorization(
            request.headers["Authorization"],
            method=request.method,
            path_with_query=path,
            body=request.content,
            merchant_keys={self.merchant.serial: self.merchant.cert_pem},
            clock=clock,
        )
        assert verified.mchid == "1230000109"
        self.seen.append((request.method, path, json.loads(request.content) if request.content else None))
        content = b"" if self.body is None else json.dumps(self.body, ensure_ascii=False).encode()
        headers = {}
        if self.sign:
            headers = v3.sign_response(
                content, serial=self.serial, private_key=self.platform.private_pem, timestamp=self.timestamp
            )
        return httpx.Response(self.status, content=content, headers=headers)


ORDER = {
    "appid": "wxd678efh567hg6787",
    "mchid": "1230000109",
    "out_order_no": "1234323JKHDFE1243252",
    "service_id": "500001",
    "state": "DOING",
    "state_description": "USER_CONFIRM",
    "order_id": "15646546545165651651",
    "total_amount": 3900,
    "need_collection": True,
    "collection": {"state": "USER_PAYING"},
    "package": "DJIOSQPY",
}


# --- Authorization -----------------------------------------------------------------------------------------------


def test_authorization_header_format_and_message(merchant_keys: KeyPair) -> None:
    header = v3.build_authorization(
        mchid="1900009191",
        serial_no=merchant_keys.serial,
        private_key=merchant_keys.private_pem,
        method="GET",
        path_with_query="/v3/certificates",
        timestamp=1554208460,
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header.startswith(
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",signature="'
    )
    assert header.endswith(f'",timestamp="1554208460",serial_no="{merchant_keys.serial}"')
    signature = v3.parse_authorization(header)["signature"]
    # The signed message is exactly METHOD\nPATH\nTIMESTAMP\nNONCE\nBODY\n with an empty body for GET.
    merchant_keys.private_key.public_key().verify(
        base64.b64decode(signature),
        b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n",
        padding.PKCS1v15(),
        hashes.SHA256(),
    )


def test_verify_request_authorization_rejects_tampering(merchant_keys: KeyPair) -> None:
    body = b'{"a":1}'
    header = v3.build_authorization(
        mchid="1",
        serial_no=merchant_keys.serial,
        private_key=merchant_keys.private_pem,
        method="POST",
        path_with_query="/v3/x?b=2",
        body=body,
        timestamp=NOW,
    )
    keys = {merchant_keys.serial: merchant_keys.cert_pem}
    kwargs = {"method": "POST", "path_with_query": "/v3/x?b=2", "body": body, "merchant_keys": keys, "clock": clock}
    assert v3.verify_request_authorization(header, **kwargs).mchid == "1"
    for change in (
        {"body": b'{"a":2}'},
        {"path_with_query": "/v3/x?b=3"},
        {"method": "GET"},
        {"merchant_keys": {"OTHER": merchant_keys.cert_pem}},
        {"clock": lambda: NOW + 301.0},
    ):
        with pytest.raises(VerificationError):
            v3.verify_request_authorization(header, **{**kwargs, **change})
    with pytest.raises(VerificationError):
        v3.verify_request_authorization(header.replace("WECHATPAY2", "OTHER"), **kwargs)
    with pytest.raises(VerificationError):
        v3.verify_request_authorization(header.replace(',serial_no="', ',x="'), **kwargs)


# --- response / notification verification ------------------------------------------------------------------------


def signed(platform: KeyPair, body: bytes, serial: str | None = None, timestamp: int = NOW) -> dict[str, str]:
    return v3.sign_response(
        body, serial=serial or platform.serial, private_key=platform.private_pem, timestamp=timestamp, nonce="n0nce"
    )


def test_verify_response_with_certificate_serial_and_with_public_key_id(
    platform_keys: KeyPair, platform_pubkey_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    body = b'{"ok":true}'
    headers = signed(platform_keys, body)
    assert v3.verify_response(headers, body, platform_keys=config.platform_keys, clock=clock) == platform_keys.serial
    by_id = signed(platform_pubkey_keys, body, serial=PUB_KEY_ID)
    assert v3.verify_response(by_id, body, platform_keys=config.platform_keys, clock=clock) == PUB_KEY_ID
    # A key id whose signature was made by a different key does not verify.
    wrong = signed(platform_keys, body, serial=PUB_KEY_ID)
    with pytest.raises(VerificationError):
        v3.verify_response(wrong, body, platform_keys=config.platform_keys, clock=clock)


@pytest.mark.parametrize(
    "missing", ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"]
)
def test_missing_headers_are_rejected(missing: str, platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    headers = {k: v for k, v in signed(platform_keys, b"{}").items() if k != missing}
    with pytest.raises(VerificationError, match="missing"):
        v3.verify_response(headers, b"{}", platform_keys=config.platform_keys, clock=clock)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_stale_or_future_timestamps_are_rejected(
    offset: int, platform_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    headers = signed(platform_keys, b"{}", timestamp=NOW + offset)
    with pytest.raises(VerificationError, match="timestamp"):
        v3.verify_response(headers, b"{}", platform_keys=config.platform_keys, clock=clock)


def test_timestamp_within_window_is_accepted(platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    headers = signed(platform_keys, b"{}", timestamp=NOW - 299)
    v3.verify_response(headers, b"{}", platform_keys=config.platform_keys, clock=clock)


def test_unknown_serial_is_rejected(platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    headers = signed(platform_keys, b"{}", serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
    with pytest.raises(VerificationError, match="unknown"):
        v3.verify_response(headers, b"{}", platform_keys=config.platform_keys, clock=clock)


def test_tampered_body_or_signature_or_signtest_probe_is_rejected(
    platform_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    headers = signed(platform_keys, b'{"amount":1}')
    with pytest.raises(VerificationError):
        v3.verify_response(headers, b'{"amount":2}', platform_keys=config.platform_keys, clock=clock)
    flipped = headers["Wechatpay-Signature"]
    flipped = ("A" if flipped[0] != "A" else "B") + flipped[1:]
    for bad in (flipped, v3.SIGN_TEST_PREFIX + "xyz", "not base64!"):
        with pytest.raises(VerificationError):
            v3.verify_response(
                {**headers, "Wechatpay-Signature": bad},
                b'{"amount":1}',
                platform_keys=config.platform_keys,
                clock=clock,
            )
    with pytest.raises(VerificationError):
        v3.verify_response(
            {**headers, "Wechatpay-Nonce": "other"}, b'{"amount":1}', platform_keys=config.platform_keys, clock=clock
        )


# --- AES-GCM resources and notifications -------------------------------------------------------------------------


def test_resource_round_trip_and_tampering() -> None:
    resource = v3.encrypt_notification_resource(
        '{"state":"DONE"}', api_v3_key=API_V3_KEY, associated_data="payscore", nonce="fdasflkja484"
    )
    assert resource["algorithm"] == "AEAD_AES_256_GCM" and resource["nonce"] == "fdasflkja484"
    assert v3.decrypt_resource(resource, api_v3_key=API_V3_KEY) == b'{"state":"DONE"}'
    raw = bytearray(base64.b64decode(resource["ciphertext"]))
    raw[0] ^= 1
    tampered = [
        {**resource, "ciphertext": base64.b64encode(bytes(raw)).decode()},
        {**resource, "associated_data": "other"},
        {**resource, "nonce": "fdasflkja485"},
        {**resource, "algorithm": "AES_128"},
        {**resource, "ciphertext": "%%%"},
    ]
    for bad in tampered:
        with pytest.raises(VerificationError):
            v3.decrypt_resource(bad, api_v3_key=API_V3_KEY)
    with pytest.raises(VerificationError):
        v3.decrypt_resource(resource, api_v3_key="x" * 32)


def test_gcm_layout_is_ciphertext_then_16_byte_tag() -> None:
    resource = v3.encrypt_notification_resource(b"abc", api_v3_key=API_V3_KEY, nonce="123456789012")
    assert len(base64.b64decode(resource["ciphertext"])) == 3 + 16
    assert resource["associated_data"] == ""
    assert v3.decrypt_resource({**resource, "associated_data": None}, api_v3_key=API_V3_KEY) == b"abc"


def notification_body(order: dict) -> bytes:
    resource = v3.encrypt_notification_resource(
        json.dumps(order), api_v3_key=API_V3_KEY, associated_data="payscore", original_type="payscore"
    )
    envelope = {
        "id": "EV-2018022511223320873",
        "create_time": "2020-12-01T14:27:01+08:00",
        "event_type": "PAYSCORE.USER_CONFIRM",
        "resource_type": "encrypt-resource",
        "summary": "用户确认",
        "resource": resource,
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def test_parse_notification(platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    body = notification_body(ORDER)
    headers = {k.lower(): v for k, v in signed(platform_keys, body).items()}  # as a server might pass them
    note = v3.parse_notification(headers, body, platform_keys=config.platform_keys, api_v3_key=API_V3_KEY, clock=clock)
    assert (note.id, note.event_type, note.resource["state"], note.serial) == (
        "EV-2018022511223320873",
        "PAYSCORE.USER_CONFIRM",
        "DOING",
        platform_keys.serial,
    )


def test_parse_notification_rejects_forgeries(platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    body = notification_body(ORDER)
    headers = signed(platform_keys, body)
    cases = [
        (headers, body.replace(b"USER_CONFIRM", b"USER_PAID")),
        ({k: v for k, v in headers.items() if k != "Wechatpay-Signature"}, body),
        (signed(platform_keys, b"not json"), b"not json"),
        (signed(platform_keys, b'{"id":"1"}'), b'{"id":"1"}'),
    ]
    for case_headers, case_body in cases:
        with pytest.raises(VerificationError):
            v3.parse_notification(
                case_headers, case_body, platform_keys=config.platform_keys, api_v3_key=API_V3_KEY, clock=clock
            )


# --- calls -------------------------------------------------------------------------------------------------------


def test_payscore_create_sends_signed_json_and_parses(
    merchant_keys: KeyPair, platform_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    platform = FakePlatform(merchant_keys, platform_keys, 200, {**ORDER, "state": "CREATED", "state_description": ""})
    request = v3.PayscoreCreateRequest(
        out_order_no="1234323JKHDFE1243252",
        service_id="500001",
        service_introduction="某某酒店",
        time_range=v3.TimeRange(start_time="OnAccept"),
        risk_fund=v3.RiskFund(name="ESTIMATE_ORDER_COST", amount=10000, description="就餐的预估费用"),
        notify_url="https://merchant.test/notify/wechatpay/payscore/",
        post_payments=[v3.PostPayment(name="就餐费用", amount=4000, count=1), {"name": "服务费", "amount": 100}],
        need_user_confirm=True,
    )
    result = v3.payscore_create(config, request, client=mock_client(platform), clock=clock)
    assert (result.outcome, result.state, result.order_id, result.package) == (
        Outcome.SUCCESS,
        "CREATED",
        "15646546545165651651",
        "DJIOSQPY",
    )
    method, path, sent = platform.seen[0]
    assert (method, path) == ("POST", "/v3/payscore/serviceorder")
    assert sent == {
        "out_order_no": "1234323JKHDFE1243252",
        "appid": "wxd678efh567hg6787",
        "service_id": "500001",
        "service_introduction": "某某酒店",
        "post_payments": [{"name": "就餐费用", "amount": 4000, "count": 1}, {"name": "服务费", "amount": 100}],
        "time_range": {"start_time": "OnAccept"},
        "risk_fund": {"name": "ESTIMATE_ORDER_COST", "amount": 10000, "description": "就餐的预估费用"},
        "notify_url": "https://merchant.test/notify/wechatpay/payscore/",
        "need_user_confirm": True,
    }


def test_payscore_query_complete_cancel_modify_sync_paths(
    merchant_keys: KeyPair, platform_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    platform = FakePlatform(merchant_keys, platform_keys, 200, ORDER)
    client = mock_client(platform)
    query = v3.payscore_query(config, service_id="500001", out_order_no="A|1", client=client, clock=clock)
    assert (query.outcome, query.state, query.state_description, query.collection_state, query.total_amount) == (
        Outcome.SUCCESS,
        "DOING",
        "USER_CONFIRM",
        "USER_PAYING",
        3900,
    )
    v3.payscore_complete(
        config,
        "A|1",
        service_id="500001",
        post_payments=[{"name": "x", "amount": 3900}],
        total_amount=3900,
        client=client,
        clock=clock,
    )
    v3.payscore_cancel(config, "A|1", service_id="500001", reason="用户取消", client=client, clock=clock)
    v3.payscore_modify(
        config,
        "A|1",
        service_id="500001",
        post_payments=[{"name": "x", "amount": 100}],
        total_amount=100,
        reason="改价",
        client=client,
        clock=clock,
    )
    v3.payscore_sync(config, "A|1", service_id="500001", paid_time="20091225091210", client=client, clock=clock)
    paths = [(m, p) for m, p, _ in platform.seen]
    assert paths == [
        ("GET", "/v3/payscore/serviceorder?service_id=500001&appid=wxd678efh567hg6787&out_order_no=A%7C1"),
        ("POST", "/v3/payscore/serviceorder/A%7C1/complete"),
        ("POST", "/v3/payscore/serviceorder/A%7C1/cancel"),
        ("POST", "/v3/payscore/serviceorder/A%7C1/modify"),
        ("POST", "/v3/payscore/serviceorder/A%7C1/sync"),
    ]
    assert platform.seen[0][2] is None
    assert platform.seen[1][2] == {
        "appid": "wxd678efh567hg6787",
        "service_id": "500001",
        "post_payments": [{"name": "x", "amount": 3900}],
        "total_amount": 3900,
    }
    assert platform.seen[4][2] == {
        "appid": "wxd678efh567hg6787",
        "service_id": "500001",
        "type": "Order_Paid",
        "detail": {"paid_time": "20091225091210"},
    }


def test_facemch_user(merchant_keys: KeyPair, platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    platform = FakePlatform(
        merchant_keys, platform_keys, 200, {"union_id": "abcdefg111", "openid": "o1", "sub_openid": "s1"}
    )
    result = v3.facemch_user(config, "aabbccdd12345", client=mock_client(platform), clock=clock)
    assert (result.outcome, result.union_id, result.openid, result.sub_openid) == (
        Outcome.SUCCESS,
        "abcdefg111",
        "o1",
        "s1",
    )
    assert platform.seen[0][:2] == (
        "GET",
        "/v3/facemch/users/aabbccdd12345?info_type=ASK_UNIONID&appid=wxd678efh567hg6787",
    )
    assert "aabbccdd12345" not in json.dumps(result.request_fields)


@pytest.mark.parametrize(
    ("status", "body", "outcome", "code"),
    [
        (400, {"code": "INVALID_ORDER_STATE", "message": "单据状态错误"}, Outcome.REJECTED, "INVALID_ORDER_STATE"),
        (404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, Outcome.REJECTED, "ORDER_NOT_EXIST"),
        (429, {"code": "FREQUENCY_LIMITED", "message": "频率超限"}, Outcome.TRANSIENT, "FREQUENCY_LIMITED"),
        (500, {"code": "SYSTEM_ERROR", "message": "系统错误"}, Outcome.UNKNOWN, "SYSTEM_ERROR"),
    ],
)
def test_payscore_complete_error_answers(
    status: int,
    body: dict,
    outcome: Outcome,
    code: str,
    merchant_keys: KeyPair,
    platform_keys: KeyPair,
    config: v3.WechatPayV3Config,
) -> None:
    platform = FakePlatform(merchant_keys, platform_keys, status, body)
    result = v3.payscore_complete(
        config,
        "A1",
        service_id="500001",
        post_payments=[{"name": "x", "amount": 1}],
        total_amount=1,
        client=mock_client(platform),
        clock=clock,
    )
    assert (result.outcome, result.code, result.http_status) == (outcome, code, status)


@pytest.mark.parametrize(
    ("platform_kwargs", "code"),
    [
        ({"sign": False}, "BAD_SIGNATURE"),
        ({"serial": "UNKNOWN_SERIAL"}, "BAD_SIGNATURE"),
        ({"timestamp": NOW - 3600}, "BAD_SIGNATURE"),
    ],
)
def test_unverifiable_success_is_unknown_for_state_changes_and_transient_for_reads(
    platform_kwargs: dict, code: str, merchant_keys: KeyPair, platform_keys: KeyPair, config: v3.WechatPayV3Config
) -> None:
    client = mock_client(FakePlatform(merchant_keys, platform_keys, 200, ORDER, **platform_kwargs))
    complete = v3.payscore_complete(
        config, "A1", service_id="500001", post_payments=[], total_amount=0, client=client, clock=clock
    )
    assert (complete.outcome, complete.code, complete.state) == (Outcome.UNKNOWN, code, "")
    query = v3.payscore_query(config, service_id="500001", out_order_no="A1", client=client, clock=clock)
    assert (query.outcome, query.code) == (Outcome.TRANSIENT, code)


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [
        (400, Outcome.UNKNOWN, "HTTP_400"),  # an unsigned refusal is not WeChat's word
        (404, Outcome.UNKNOWN, "HTTP_404"),
        (401, Outcome.REJECTED, "SIGN_ERROR"),  # WeChat did not accept our signature: it cannot sign its answer
    ],
)
def test_unsigned_error_answers(
    status: int, outcome: Outcome, code: str, merchant_keys: KeyPair, platform_keys: KeyPair, config
) -> None:
    platform = FakePlatform(
        merchant_keys,
        platform_keys,
        status,
        {"code": "SIGN_ERROR" if status == 401 else "PARAM_ERROR", "message": "m"},
        sign=False,
    )
    result = v3.payscore_complete(
        config, "A1", service_id="500001", post_payments=[], total_amount=0, client=mock_client(platform), clock=clock
    )
    assert (result.outcome, result.code) == (outcome, code)


def test_malformed_json_is_unknown(platform_keys: KeyPair, config: v3.WechatPayV3Config) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b'{"state": "DONE"'
        return httpx.Response(200, content=body, headers=signed(platform_keys, body))

    result = v3.payscore_complete(
        config, "A1", service_id="500001", post_payments=[], total_amount=0, client=mock_client(handler), clock=clock
    )
    assert (result.outcome, result.code) == (Outcome.UNKNOWN, "UNPARSEABLE")


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [(httpx.ReadTimeout, Outcome.UNKNOWN), (httpx.ConnectError, Outcome.TRANSIENT)],
)
def test_payscore_complete_transport(exc: type[Exception], outcome: Outcome, config: v3.WechatPayV3Config) -> None:
    result = v3.payscore_complete(
        config,
        "A1",
        service_id="500001",
        post_payments=[],
        total_amount=0,
        client=mock_client(raising(exc)),
        clock=clock,
    )
    assert result.outcome is outcome


def test_config_repr_hides_secrets(config: v3.WechatPayV3Config) -> None:
    text = repr(config)
    assert API_V3_KEY not in text and "PRIVATE KEY" not in text and "1230000109" in text
