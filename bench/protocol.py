"""Protocol cost: CPU time per WeChat Pay v2 round (sign + XML encode + parse + verify), per v3 request signature
and per v3 payment call (a codepay and an order query: build the JSON, sign, send through the HTTP library to an
in-process answer, verify the answer's signature, parse it), ours against the community SDKs wechatpy and
wechatpayv3 doing the same work, in one process.

    python -m bench.protocol [--rounds 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

V2_KEY = "abcdefghijklmnopqrstuvwxyz012345"
# A micropay answer: the largest v2 message on the payment path.
V2_FIELDS = {
    "return_code": "SUCCESS",
    "return_msg": "OK",
    "appid": "wx2421b1c4370ec43b",
    "mch_id": "10000100",
    "device_info": "DEMO-DEVICE-01",
    "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
    "result_code": "SUCCESS",
    "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
    "is_subscribe": "N",
    "trade_type": "MICROPAY",
    "bank_type": "CMC",
    "total_fee": "1234",
    "fee_type": "CNY",
    "transaction_id": "1217752501201407033233368018",
    "out_trade_no": "20261122125505D3BF0A4081B2",
    "attach": "订单额外描述",
    "time_end": "20261122125505",
    "cash_fee": "1234",
}


def cpu_per_call(ours: Callable[[], object], sdk: Callable[[], object], rounds: int, passes: int = 5) -> tuple:
    """Microseconds of process CPU time per call, ours and the SDK's: the best of `passes` passes each, after a
    warm-up, passes alternating (ours, SDK, ours, …) so that the machine's drift affects both alike."""
    for work in (ours, sdk):
        for _ in range(min(200, rounds)):
            work()
    best = {ours: float("inf"), sdk: float("inf")}
    for _ in range(passes):
        for work in (ours, sdk):
            started = time.process_time()
            for _ in range(rounds):
                work()
            best[work] = min(best[work], time.process_time() - started)
    return best[ours] / rounds * 1e6, best[sdk] / rounds * 1e6


def v2_ours(sign_type: str) -> Callable[[], object]:
    from payments.gateways import wechatpay_v2 as v2

    def round_trip() -> bool:
        fields = dict(V2_FIELDS, sign_type=sign_type)
        fields["sign"] = v2.sign(fields, V2_KEY, sign_type)
        parsed = v2.from_xml(v2.to_xml(fields).encode("utf-8"))
        assert v2.verify(parsed, V2_KEY)
        return True

    return round_trip


def v2_wechatpy(sign_type: str) -> Callable[[], object]:
    import xmltodict
    from wechatpy.pay import utils

    calculate = utils.calculate_signature if sign_type == "MD5" else utils.calculate_signature_hmac

    def round_trip() -> bool:
        fields = dict(V2_FIELDS, sign_type=sign_type)
        xml = utils.dict_to_xml(fields, calculate(fields, V2_KEY))
        parsed = dict(xmltodict.parse(xml)["xml"])  # what WeChatPay.parse_payment_result / _handle_result do
        received = parsed.pop("sign")
        assert received == calculate(parsed, V2_KEY)
        return True

    return round_trip


def v3_ours(private_pem: str) -> Callable[[], object]:
    from payments.gateways import wechatpay_v3 as v3

    body = json.dumps({"out_order_no": "1234323JKHDFE1243252", "service_id": "500001"})

    def authorization() -> str:
        return v3.build_authorization(
            mchid="1900000109",
            serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            private_key=private_pem,
            method="POST",
            path_with_query="/v3/payscore/serviceorder",
            body=body,
        )

    return authorization


def v3_wechatpayv3(private_pem: str) -> Callable[[], object]:
    from wechatpayv3.utils import build_authorization, load_private_key

    key = load_private_key(private_pem)  # the SDK loads the key once, in WeChatPay(...)
    body = json.dumps({"out_order_no": "1234323JKHDFE1243252", "service_id": "500001"})

    def authorization() -> str:
        return build_authorization(
            "/v3/payscore/serviceorder", "POST", "1900000109", "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", key, body
        )

    return authorization


V3_MCHID, V3_APPID = "1900000109", "wxd678efh567hg6787"
V3_ORDER = "1217752501201407033233368018"
PLATFORM_KEY_ID = "PUB_KEY_ID_0119000001092025010100000000000001"
# A codepay answer as WeChat documents it (payment succeeded); the query answers the same transaction.
V3_TRANSACTION = {
    "appid": V3_APPID,
    "mchid": V3_MCHID,
    "out_trade_no": V3_ORDER,
    "transaction_id": "1217752501201407033233368018",
    "trade_type": "MICROPAY",
    "trade_state": "SUCCESS",
    "trade_state_desc": "支付成功",
    "bank_type": "CMC",
    "attach": "",
    "success_time": "2026-12-07T10:34:56+08:00",
    "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
    "amount": {"total": 1234, "payer_total": 1234, "currency": "CNY", "payer_currency": "CNY"},
}


class _V3Answer:
    """The answer a fake WeChat gives every call: the transaction, signed once with the platform key (the signing is
    WeChat's work, not the client's), at a fixed timestamp both clients accept."""

    def __init__(self, platform_private_pem: str):
        from payments.gateways import wechatpay_v3 as v3

        self.timestamp = int(time.time())
        self.body = json.dumps(V3_TRANSACTION, ensure_ascii=False).encode()
        self.headers = {
            "Content-Type": "application/json",
            **v3.sign_response(
                self.body, serial=PLATFORM_KEY_ID, private_key=platform_private_pem, timestamp=self.timestamp
            ),
        }


def _ours_call(answer: _V3Answer) -> tuple:
    """(an httpx client whose transport gives `answer`, the codepay request, a clock at the answer's time)."""
    import httpx

    from payments.gateways import wechatpay_v3_pay as pay

    client = httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, headers=answer.headers, content=answer.body))
    )
    request = pay.CodepayRequest(
        out_trade_no=V3_ORDER,
        total=1234,
        description="image形象店-深圳腾大-QQ公仔",
        auth_code="134567890123456789",
        device_ip="127.0.0.1",
        device_id="DEMO-DEVICE-01",
        store_id="SZ-NS-001",
    )
    return client, request, lambda: float(answer.timestamp)


def v3_pay_ours_stored(private_pem: str, answer: _V3Answer) -> Callable[[], object]:
    """The codepay as payments.channels makes it: the merchant's config built from its credentials row as read from
    the database (keys still sealed, decrypted on use), every call."""

    from payments import channels
    from payments.gateways import wechatpay_v3_pay as pay
    from portal.fields import Secret, encrypt
    from portal.models import ChannelCredentials, Merchant

    merchant = Merchant(channel=Merchant.Channel.WECHAT_DIRECT, mch_id=V3_MCHID, appid=V3_APPID)
    sealed_key, sealed_v3_key = encrypt(private_pem), encrypt("0123456789abcdef0123456789abcdef")
    client, request, clock = _ours_call(answer)

    def codepay() -> bool:
        credentials = ChannelCredentials(
            merchant=merchant,
            wechat_private_key=Secret.sealed(sealed_key),
            wechat_api_v3_key=Secret.sealed(sealed_v3_key),
            wechat_cert_serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
            wechat_platform_public_key=answer.platform_public_pem,
            wechat_platform_public_key_id=PLATFORM_KEY_ID,
        )
        config = channels.wechat_v3_config(merchant, credentials=credentials)
        assert pay.codepay(config, request, client=client, clock=clock).is_success
        return True

    return codepay


def v3_pay_ours(private_pem: str, answer: _V3Answer, call: str) -> Callable[[], object]:

    from payments.gateways import wechatpay_v3_pay as pay
    from payments.gateways.keys import load_public_key
    from payments.gateways.wechatpay_v3 import WechatPayV3Config

    public_key = load_public_key(answer.platform_public_pem)
    config = WechatPayV3Config(
        mchid=V3_MCHID,
        appid=V3_APPID,
        merchant_private_key_pem=private_pem,
        merchant_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        api_v3_key="0123456789abcdef0123456789abcdef",
        platform_keys={PLATFORM_KEY_ID: public_key},
    )
    client, request, clock = _ours_call(answer)

    def codepay() -> bool:
        assert pay.codepay(config, request, client=client, clock=clock).is_success
        return True

    def query() -> bool:
        assert pay.query(config, out_trade_no=V3_ORDER, total=1234, client=client, clock=clock).is_success
        return True

    return codepay if call == "codepay" else query


def v3_pay_wechatpayv3(private_pem: str, answer: _V3Answer, call: str) -> Callable[[], object]:
    import requests
    from wechatpayv3 import WeChatPay, WeChatPayType

    def send(adapter, request, **kwargs) -> requests.Response:
        # The transport's place (requests' adapter): the SDK's request building, signing and checks all still run.
        response = requests.Response()
        response.status_code, response._content, response.request = 200, answer.body, request
        response.headers.update(answer.headers)
        response.encoding = "utf-8"
        return response

    requests.adapters.HTTPAdapter.send = send  # this process only measures
    client = WeChatPay(
        wechatpay_type=WeChatPayType.CODEPAY,
        mchid=V3_MCHID,
        private_key=private_pem,
        cert_serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        appid=V3_APPID,
        apiv3_key="0123456789abcdef0123456789abcdef",
        public_key=answer.platform_public_pem,
        public_key_id=PLATFORM_KEY_ID,
    )
    # The SDK's answer is the status and the text; reading the result out of it is the caller's part of the work.

    def codepay() -> bool:
        status, text = client.pay(
            description="image形象店-深圳腾大-QQ公仔",
            out_trade_no=V3_ORDER,
            amount={"total": 1234, "currency": "CNY"},
            payer={"auth_code": "134567890123456789"},
            scene_info={"device_ip": "127.0.0.1", "device_id": "DEMO-DEVICE-01", "store_info": {"out_id": "SZ-NS-001"}},
            pay_type=WeChatPayType.CODEPAY,
        )
        data = json.loads(text)
        assert status == 200 and data["trade_state"] == "SUCCESS" and data["out_trade_no"] == V3_ORDER
        return True

    def query() -> bool:
        status, text = client.query(out_trade_no=V3_ORDER)
        data = json.loads(text)
        assert status == 200 and data["trade_state"] == "SUCCESS" and data["amount"]["total"] == 1234
        return True

    return codepay if call == "codepay" else query


def run(rounds: int = 20000) -> dict[str, dict[str, float]]:
    from portal.credentials import generate_key_and_certificate, load_private_key

    def public_key_pem(private: str) -> str:
        from cryptography.hazmat.primitives import serialization

        public = load_private_key("bench", private).public_key()
        return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
            "ascii"
        )

    private_pem, _cert = generate_key_and_certificate("bench v3")
    rsa_rounds = max(200, rounds // 20)  # RSA-2048 signing is ~1 ms: fewer rounds give the same precision
    results: dict[str, dict[str, float]] = {}
    for sign_type in ("MD5", "HMAC-SHA256"):
        ours_us, sdk_us = cpu_per_call(v2_ours(sign_type), v2_wechatpy(sign_type), rounds)
        results[f"v2 round ({sign_type})"] = {"ours_us": ours_us, "sdk_us": sdk_us, "sdk": "wechatpy 1.8.18"}
    ours_us, sdk_us = cpu_per_call(v3_ours(private_pem), v3_wechatpayv3(private_pem), rsa_rounds)
    results["v3 request signature (RSA-2048)"] = {"ours_us": ours_us, "sdk_us": sdk_us, "sdk": "wechatpayv3 2.0.4"}
    platform_pem, _platform_cert = generate_key_and_certificate("bench v3 platform")
    answer = _V3Answer(platform_pem)
    answer.platform_public_pem = public_key_pem(platform_pem)
    for call in ("codepay", "query"):
        ours_us, sdk_us = cpu_per_call(
            v3_pay_ours(private_pem, answer, call), v3_pay_wechatpayv3(private_pem, answer, call), rsa_rounds
        )
        results[f"v3 {call} call (sign, send, verify)"] = {
            "ours_us": ours_us,
            "sdk_us": sdk_us,
            "sdk": "wechatpayv3 2.0.4",
        }
    # Ours as the channel calls it (the config from the stored, encrypted credentials at every call) against the SDK
    # with its client built once.
    ours_us, sdk_us = cpu_per_call(
        v3_pay_ours_stored(private_pem, answer), v3_pay_wechatpayv3(private_pem, answer, "codepay"), rsa_rounds
    )
    results["v3 codepay call, config from stored credentials"] = {
        "ours_us": ours_us,
        "sdk_us": sdk_us,
        "sdk": "wechatpayv3 2.0.4",
    }
    for row in results.values():
        row["ours_vs_sdk"] = row["ours_us"] / row["sdk_us"]
    return results


def main() -> None:
    import django

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10000)
    args = parser.parse_args()
    django.setup()
    for name, row in run(args.rounds).items():
        print(f"{name:<34} ours {row['ours_us']:8.1f} µs   {row['sdk']:<18} {row['sdk_us']:8.1f} µs   "
              f"ratio {row['ours_vs_sdk']:.2f}")  # fmt: skip


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    main()
