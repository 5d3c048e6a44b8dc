"""WeChat Pay API v3 (JSON): request signing, response/notification verification, PayScore, facemch users, the
trade bill (reconciliation).

Rules: docs/protocols.md, "WeChat Pay API v3". Both sides of the protocol live here because the sandbox app
must speak it exactly: build_authorization / verify_response for the merchant side,
verify_request_authorization / sign_response / encrypt_notification_resource for the stand-in platform.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import http
from . import wechatpay_bill as bills
from .base import GatewayResult, Outcome, VerificationError, redact
from .http import DEFAULT_TIMEOUTS, Timeouts
from .keys import PrivateKeySource, rsa_sign, rsa_verify
from .keys import PublicKeySource as KeySource
from .keys import certificate_serial as certificate_serial  # re-exported: callers need serials of v3 certs
from .wechatpay_v2 import DownloadBillResult

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
AUTH_SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_CLOCK_SKEW_SECONDS = 300
# The message of an answer signed with a serial none of the configured keys has: WeChat may have started signing with
# a certificate not downloaded yet (payments.channels asks for a download at once when a call gets it).
UNKNOWN_SERIAL = "unknown Wechatpay-Serial"
# WeChat's deliberate bad-signature probes carry this prefix; they must fail verification like any other.
SIGN_TEST_PREFIX = "WECHATPAY/SIGNTEST/"

Clock = Callable[[], float]


# --- signatures --------------------------------------------------------------------------------------------------


def _rsa_sign(private_key: PrivateKeySource, message: bytes) -> str:
    return rsa_sign(private_key, message, hashes.SHA256())


def _rsa_verify(public_key: KeySource, message: bytes, signature_b64: str) -> bool:
    return rsa_verify(public_key, message, signature_b64, hashes.SHA256())


def _text(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def request_message(method: str, path_with_query: str, timestamp: str, nonce: str, body: str | bytes) -> bytes:
    # Five lines, each ending in "\n"; BODY is empty for GET; PATH has no host.
    return b"".join(
        [
            method.upper().encode(),
            b"\n",
            _text(path_with_query),
            b"\n",
            timestamp.encode(),
            b"\n",
            nonce.encode(),
            b"\n",
            _text(body),
            b"\n",
        ]
    )


def response_message(timestamp: str, nonce: str, body: str | bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + _text(body) + b"\n"


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


def build_authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: PrivateKeySource,
    method: str,
    path_with_query: str,
    body: str | bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    """The `Authorization` header value for one request."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    signature = _rsa_sign(private_key, request_message(method, path_with_query, timestamp_text, nonce, body))
    return (
        f'{AUTH_SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp_text}",serial_no="{serial_no}"'
    )


_AUTH_PARAM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*(?:,|$)')


def parse_authorization(header: str) -> dict[str, str]:
    schema, _, rest = (header or "").strip().partition(" ")
    if schema != AUTH_SCHEMA:
        raise VerificationError("unsupported authorization schema")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _AUTH_PARAM.match(rest, position)
        if match is None:
            raise VerificationError("malformed authorization header")
        params[match.group(1)] = match.group(2)
        position = match.end()
    missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - params.keys()
    if missing:
        raise VerificationError("authorization header lacks " + ", ".join(sorted(missing)))
    return params


def _check_timestamp(timestamp: str, clock: Clock, max_skew: int) -> None:
    try:
        value = int(timestamp)
    except ValueError:
        raise VerificationError("timestamp is not a number") from None
    if abs(clock() - value) > max_skew:
        raise VerificationError("timestamp too far from current time")


@dataclass(frozen=True)
class VerifiedAuthorization:
    mchid: str
    serial_no: str
    nonce: str
    timestamp: int


def verify_request_authorization(
    header: str,
    *,
    method: str,
    path_with_query: str,
    body: str | bytes,
    merchant_keys: Mapping[str, KeySource],
    clock: Clock = time.time,
    max_skew: int = MAX_CLOCK_SKEW_SECONDS,
) -> VerifiedAuthorization:
    """Server side (sandbox): check a merchant's Authorization against its keys by certificate serial.

    The caller must still check that the returned mchid owns the serial, and may reject reused nonces.
    """
    params = parse_authorization(header)
    key = merchant_keys.get(params["serial_no"])
    if key is None:
        raise VerificationError("unknown merchant certificate serial")
    _check_timestamp(params["timestamp"], clock, max_skew)
    message = request_message(method, path_with_query, params["timestamp"], params["nonce_str"], body)
    if not _rsa_verify(key, message, params["signature"]):
        raise VerificationError("request signature does not verify")
    return VerifiedAuthorization(params["mchid"], params["serial_no"], params["nonce_str"], int(params["timestamp"]))


def _header(headers: Mapping[str, str], name: str) -> str:
    # Accept httpx.Headers, Django's HttpHeaders or a plain dict with any capitalisation.
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""


def verify_response(
    headers: Mapping[str, str],
    body: str | bytes,
    *,
    platform_keys: Mapping[str, KeySource],
    clock: Clock = time.time,
    max_skew: int = MAX_CLOCK_SKEW_SECONDS,
) -> str:
    """Check a response's or notification's Wechatpay-* headers; return the serial/key id used.

    `platform_keys` maps platform certificate serials and/or platform public-key ids (`PUB_KEY_ID_…`) to keys:
    the header names which one signed, both kinds are looked up the same way.
    """
    timestamp = _header(headers, "Wechatpay-Timestamp")
    nonce = _header(headers, "Wechatpay-Nonce")
    signature = _header(headers, "Wechatpay-Signature")
    serial = _header(headers, "Wechatpay-Serial")
    if not (timestamp and nonce and signature and serial):
        raise VerificationError("Wechatpay-* signature headers missing")
    key = platform_keys.get(serial)
    if key is None:
        raise VerificationError(UNKNOWN_SERIAL)
    _check_timestamp(timestamp, clock, max_skew)
    if not _rsa_verify(key, response_message(timestamp, nonce, body), signature):
        raise VerificationError("response signature does not verify")
    return serial


def sign_response(
    body: str | bytes,
    *,
    serial: str,
    private_key: PrivateKeySource,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Server side (sandbox): the Wechatpay-* headers for a response or notification body."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or new_nonce()
    return {
        "Wechatpay-Timestamp": timestamp_text,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": _rsa_sign(private_key, response_message(timestamp_text, nonce, body)),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": AUTH_SCHEMA,
    }


# --- notification resources (AEAD_AES_256_GCM) ------------------------------------------------------------------


def _aes_key(api_v3_key: str | bytes) -> AESGCM:
    key = _text(api_v3_key)
    if len(key) != 32:
        raise ValueError("APIv3 key must be 32 bytes")
    return AESGCM(key)


def encrypt_notification_resource(
    plaintext: str | bytes,
    *,
    api_v3_key: str | bytes,
    associated_data: str = "",
    nonce: str | None = None,
    original_type: str = "",
) -> dict[str, str]:
    """Server side (sandbox): the `resource` object of a notification."""
    nonce = nonce or secrets.token_hex(6)  # 12 characters, used as text bytes like WeChat's
    ciphertext = _aes_key(api_v3_key).encrypt(nonce.encode(), _text(plaintext), associated_data.encode() or None)
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
        "associated_data": associated_data,
        "nonce": nonce,
    }
    if original_type:
        resource["original_type"] = original_type
    return resource


def decrypt_resource(resource: Mapping[str, Any], *, api_v3_key: str | bytes) -> bytes:
    """Plaintext of a notification `resource` (ciphertext = base64(ciphertext‖16-byte tag))."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise VerificationError("unsupported resource algorithm")
    nonce = resource.get("nonce")
    ciphertext = resource.get("ciphertext")
    associated_data = resource.get("associated_data") or ""
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(associated_data, str):
        raise VerificationError("resource fields missing")
    try:
        raw = base64.b64decode(ciphertext, validate=True)
        return _aes_key(api_v3_key).decrypt(nonce.encode(), raw, associated_data.encode() or None)
    except (binascii.Error, InvalidTag, ValueError):
        raise VerificationError("resource does not decrypt") from None


@dataclass(frozen=True)
class Notification:
    id: str
    create_time: str
    event_type: str
    resource_type: str
    summary: str
    resource: dict[str, Any]  # the decrypted plaintext, parsed (for PayScore: the whole service order)
    serial: str  # platform certificate serial / public key id that signed it


def parse_notification(
    headers: Mapping[str, str],
    body: str | bytes,
    *,
    platform_keys: Mapping[str, KeySource],
    api_v3_key: str | bytes,
    clock: Clock = time.time,
) -> Notification:
    """Verify the signature over the raw body, then decrypt the resource. Raises VerificationError."""
    serial = verify_response(headers, body, platform_keys=platform_keys, clock=clock)
    try:
        envelope = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("notification body is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
        raise VerificationError("notification has no resource")
    plaintext = decrypt_resource(envelope["resource"], api_v3_key=api_v3_key)
    try:
        resource = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        raise VerificationError("decrypted resource is not JSON") from None
    if not isinstance(resource, dict):
        raise VerificationError("decrypted resource is not an object")
    return Notification(
        id=str(envelope.get("id", "")),
        create_time=str(envelope.get("create_time", "")),
        event_type=str(envelope.get("event_type", "")),
        resource_type=str(envelope.get("resource_type", "")),
        summary=str(envelope.get("summary", "")),
        resource=resource,
        serial=serial,
    )


# --- client configuration and calls ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WechatPayV3Config:
    mchid: str
    appid: str
    merchant_private_key_pem: str = field(repr=False)
    merchant_serial_no: str
    api_v3_key: str = field(repr=False)
    # Platform certificate serial → certificate/public key, and/or PUB_KEY_ID_… → public key.
    platform_keys: Mapping[str, KeySource] = field(default_factory=dict, repr=False)
    base_url: str = DEFAULT_BASE_URL
    sub_mchid: str = ""
    sub_appid: str = ""


@dataclass(frozen=True, kw_only=True)
class V3Result(GatewayResult):
    data: dict[str, Any] = field(default_factory=dict)  # verified JSON body (unredacted; contains no secrets)


@dataclass(frozen=True, kw_only=True)
class PayscoreOrderResult(V3Result):
    out_order_no: str = ""
    order_id: str = ""
    state: str = ""  # CREATED, DOING, DONE, REVOKED, EXPIRED
    state_description: str = ""  # USER_CONFIRM, MCH_COMPLETE (only while DOING)
    total_amount: int | None = None
    need_collection: bool | None = None
    collection_state: str = ""  # USER_PAYING, USER_PAID
    package: str = ""


@dataclass(frozen=True, kw_only=True)
class FacemchUserResult(V3Result):
    union_id: str = ""
    openid: str = ""
    sub_openid: str = ""


@dataclass(frozen=True)
class TimeRange:
    start_time: str  # yyyyMMddHHmmss or "OnAccept"
    end_time: str | None = None


@dataclass(frozen=True)
class RiskFund:
    name: str  # DEPOSIT, ADVANCE, CASH_DEPOSIT, ESTIMATE_ORDER_COST
    amount: int  # fen
    description: str | None = None


@dataclass(frozen=True)
class PostPayment:
    name: str
    amount: int | None = None  # fen
    description: str | None = None
    count: int | None = None


@dataclass(frozen=True)
class PostDiscount:
    name: str
    description: str
    amount: int | None = None  # fen
    count: int | None = None


@dataclass(frozen=True)
class Location:
    start_location: str | None = None
    end_location: str | None = None


@dataclass(frozen=True)
class PayscoreDevice:
    """device (2025-03) on create, modify and complete: the terminal that started / ended the service, and the
    merchant's materiel URL (物料URL: for merchants in a WeChat Pay policy the URL its operations gave them, else
    their own)."""

    start_device_id: str | None = None
    end_device_id: str | None = None
    materiel_no: str | None = None


@dataclass(frozen=True, kw_only=True)
class PayscoreCreateRequest:
    out_order_no: str
    service_id: str
    service_introduction: str
    time_range: TimeRange | Mapping[str, Any]
    risk_fund: RiskFund | Mapping[str, Any]
    notify_url: str
    post_payments: Iterable[PostPayment | Mapping[str, Any]] = ()
    post_discounts: Iterable[PostDiscount | Mapping[str, Any]] = ()
    location: Location | Mapping[str, Any] | None = None
    attach: str = ""
    openid: str = ""
    need_user_confirm: bool | None = None
    device: PayscoreDevice | Mapping[str, Any] | None = None


def _json_value(value: Any) -> Any:
    """Dataclasses and dicts to JSON-ready values, dropping None so optional fields are simply absent."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


def _status_outcome(status: int, code: str, changes_state: bool) -> Outcome:
    if status >= 500 or code == "SYSTEM_ERROR":
        return http.failure_outcome(changes_state)
    if status == 429 or code == "FREQUENCY_LIMITED":
        return Outcome.TRANSIENT
    # Other 4xx (PARAM_ERROR, INVALID_ORDER_STATE, ORDER_NOT_EXIST, ...) are definite refusals.
    return Outcome.REJECTED


def _signed_request(
    config: WechatPayV3Config,
    client: httpx.Client,
    method: str,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    timeouts: Timeouts,
    clock: Clock,
) -> httpx.Request:
    """The request with its Authorization, signed over exactly what goes on the wire: the path+query as httpx
    encoded it (no host), and the body."""
    request = client.build_request(
        method, url, content=body or None, headers=dict(headers), timeout=timeouts.as_httpx()
    )
    request.headers["Authorization"] = build_authorization(
        mchid=config.mchid,
        serial_no=config.merchant_serial_no,
        private_key=config.merchant_private_key_pem,
        method=method,
        path_with_query=request.url.raw_path.decode("ascii"),
        body=body,
        timestamp=int(clock()),
    )
    return request


def _call(
    config: WechatPayV3Config,
    method: str,
    path_with_query: str,
    payload: Mapping[str, Any] | None,
    *,
    client: httpx.Client | None,
    timeouts: Timeouts,
    changes_state: bool,
    clock: Clock,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(result keyword arguments, verified JSON body or None)."""
    body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    client = client or http.shared_client()
    request = _signed_request(
        config,
        client,
        method,
        config.base_url.rstrip("/") + path_with_query,
        body,
        headers={"Accept": "application/json", "Content-Type": "application/json"},
        timeouts=timeouts,
        clock=clock,
    )
    logged_request = {"method": method, "path": path_with_query, "body": redact(payload)}
    result: dict[str, Any] = {"request_fields": logged_request}
    sent = http.send(client, request, changes_state=changes_state)
    if isinstance(sent, http.TransportFailure):
        result.update(outcome=sent.outcome, code=sent.code, message=sent.message, latency_ms=sent.latency_ms)
        return result, None
    result.update(http_status=sent.status, latency_ms=sent.latency_ms)
    unusable = http.failure_outcome(changes_state)
    signed = bool(_header(sent.headers, "Wechatpay-Signature"))
    if 200 <= sent.status < 300 or signed:
        # Success answers must be signed; error answers are checked whenever they carry a signature.
        try:
            verify_response(sent.headers, sent.body, platform_keys=config.platform_keys, clock=clock)
        except VerificationError as exc:
            result.update(outcome=unusable, code="BAD_SIGNATURE", message=str(exc))
            return result, None
    elif sent.status != 401:
        # WeChat signs every answer to a request whose signature it accepted; only a 401 (it did not) comes unsigned.
        # An unsigned refusal is not WeChat's word (a proxy, or someone in between): it decides nothing.
        result.update(outcome=unusable, code=f"HTTP_{sent.status}", message="error answer without a signature")
        return result, None
    try:
        data = json.loads(sent.body) if sent.body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        result.update(outcome=unusable, code="UNPARSEABLE", message="response body is not a JSON object")
        return result, None
    result["response_fields"] = redact(data)
    if 200 <= sent.status < 300:
        result.update(outcome=Outcome.SUCCESS)
        return result, data
    code = str(data.get("code") or f"HTTP_{sent.status}")
    result.update(
        outcome=_status_outcome(sent.status, code, changes_state), code=code, message=str(data.get("message", ""))
    )
    return result, None


def _payscore_result(result: dict[str, Any], data: dict[str, Any] | None) -> PayscoreOrderResult:
    if data is None:
        return PayscoreOrderResult(**result)
    collection = data.get("collection") if isinstance(data.get("collection"), dict) else {}
    total = data.get("total_amount")
    return PayscoreOrderResult(
        **result,
        data=data,
        out_order_no=str(data.get("out_order_no", "")),
        order_id=str(data.get("order_id", "")),
        state=str(data.get("state", "")),
        state_description=str(data.get("state_description") or ""),
        total_amount=total if isinstance(total, int) else None,
        need_collection=data.get("need_collection") if isinstance(data.get("need_collection"), bool) else None,
        collection_state=str(collection.get("state", "")),
        package=str(data.get("package", "")),
    )


_PAYSCORE = "/v3/payscore/serviceorder"


def _order_path(out_order_no: str, action: str) -> str:
    return f"{_PAYSCORE}/{quote(out_order_no, safe='')}/{action}"


def payscore_create(
    config: WechatPayV3Config,
    request: PayscoreCreateRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    """Identical re-submission is idempotent upstream, so UNKNOWN can be settled by repeating or querying."""
    payload = _json_value(
        {
            "out_order_no": request.out_order_no,
            "appid": config.appid,
            "service_id": request.service_id,
            "service_introduction": request.service_introduction,
            "post_payments": list(request.post_payments) or None,
            "post_discounts": list(request.post_discounts) or None,
            "time_range": request.time_range,
            "location": request.location,
            "risk_fund": request.risk_fund,
            "attach": request.attach,
            "notify_url": request.notify_url,
            "openid": request.openid,
            "need_user_confirm": request.need_user_confirm,
            "device": request.device,
        }
    )
    result, data = _call(
        config, "POST", _PAYSCORE, payload, client=client, timeouts=timeouts, changes_state=True, clock=clock
    )
    return _payscore_result(result, data)


def payscore_query(
    config: WechatPayV3Config,
    *,
    service_id: str,
    out_order_no: str = "",
    query_id: str = "",
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    if bool(out_order_no) == bool(query_id):
        raise ValueError("exactly one of out_order_no and query_id is required")
    query = {"service_id": service_id, "appid": config.appid}
    query.update({"out_order_no": out_order_no} if out_order_no else {"query_id": query_id})
    result, data = _call(
        config,
        "GET",
        f"{_PAYSCORE}?{urlencode(query)}",
        None,
        client=client,
        timeouts=timeouts,
        changes_state=False,
        clock=clock,
    )
    return _payscore_result(result, data)


def payscore_cancel(
    config: WechatPayV3Config,
    out_order_no: str,
    *,
    service_id: str,
    reason: str,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    payload = {"appid": config.appid, "service_id": service_id, "reason": reason}
    result, data = _call(
        config,
        "POST",
        _order_path(out_order_no, "cancel"),
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    return _payscore_result(result, data)


def payscore_modify(
    config: WechatPayV3Config,
    out_order_no: str,
    *,
    service_id: str,
    post_payments: Iterable[PostPayment | Mapping[str, Any]],
    total_amount: int,
    reason: str,
    post_discounts: Iterable[PostDiscount | Mapping[str, Any]] = (),
    device: PayscoreDevice | Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    payload = _json_value(
        {
            "appid": config.appid,
            "service_id": service_id,
            "post_payments": list(post_payments),
            "post_discounts": list(post_discounts) or None,
            "total_amount": int(total_amount),
            "reason": reason,
            "device": device,
        }
    )
    result, data = _call(
        config,
        "POST",
        _order_path(out_order_no, "modify"),
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    return _payscore_result(result, data)


def payscore_complete(
    config: WechatPayV3Config,
    out_order_no: str,
    *,
    service_id: str,
    post_payments: Iterable[PostPayment | Mapping[str, Any]],
    total_amount: int,
    post_discounts: Iterable[PostDiscount | Mapping[str, Any]] = (),
    time_range: TimeRange | Mapping[str, Any] | None = None,
    location: Location | Mapping[str, Any] | None = None,
    profit_sharing: bool | None = None,
    goods_tag: str = "",
    device: PayscoreDevice | Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    """Completing starts WeChat's deduction: a lost answer is UNKNOWN, settle it with payscore_query."""
    payload = _json_value(
        {
            "appid": config.appid,
            "service_id": service_id,
            "post_payments": list(post_payments),
            "post_discounts": list(post_discounts) or None,
            "total_amount": int(total_amount),
            "time_range": time_range,
            "location": location,
            "profit_sharing": profit_sharing,
            "goods_tag": goods_tag,
            "device": device,
        }
    )
    result, data = _call(
        config,
        "POST",
        _order_path(out_order_no, "complete"),
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    return _payscore_result(result, data)


def payscore_sync(
    config: WechatPayV3Config,
    out_order_no: str,
    *,
    service_id: str,
    paid_time: str,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> PayscoreOrderResult:
    """Tell WeChat the user paid through another channel (type Order_Paid, paid_time yyyyMMddHHmmss)."""
    payload = {
        "appid": config.appid,
        "service_id": service_id,
        "type": "Order_Paid",
        "detail": {"paid_time": paid_time},
    }
    result, data = _call(
        config,
        "POST",
        _order_path(out_order_no, "sync"),
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    return _payscore_result(result, data)


def facemch_user(
    config: WechatPayV3Config,
    face_sid: str,
    *,
    appid: str = "",
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> FacemchUserResult:
    """GET /v3/facemch/users/{face_sid}?info_type=ASK_UNIONID → union_id, openid, sub_openid."""
    query = {"info_type": "ASK_UNIONID", "appid": appid or config.appid}
    if config.sub_mchid:
        query["sub_mchid"] = config.sub_mchid
    if config.sub_appid:
        query["sub_appid"] = config.sub_appid
    path = f"/v3/facemch/users/{quote(face_sid, safe='')}?{urlencode(query)}"
    result, data = _call(config, "GET", path, None, client=client, timeouts=timeouts, changes_state=False, clock=clock)
    # The face_sid is a credential for this lookup: keep it out of the stored request.
    result["request_fields"]["path"] = "/v3/facemch/users/" + (face_sid[:4] + "***") + "?" + urlencode(query)
    if data is None:
        return FacemchUserResult(**result)
    return FacemchUserResult(
        **result,
        data=data,
        union_id=str(data.get("union_id", "")),
        openid=str(data.get("openid", "")),
        sub_openid=str(data.get("sub_openid", "")),
    )


# --- trade bill (reconciliation) -----------------------------------------------------------------------------------

_TRADEBILL = "/v3/bill/tradebill"
# v3 `code` of a tradebill refusal: no bill for that day (nothing was traded) — an answer, like v2's "No Bill Exist";
# not generated yet (WeChat publishes from about 10:00 China time on T+1) — ask again later.
NO_BILL_CODES = frozenset({"NO_STATEMENT_EXIST"})
BILL_NOT_READY_CODES = frozenset({"STATEMENT_CREATING"})


@dataclass(frozen=True, kw_only=True)
class TradeBillRequest:
    bill_date: date | str  # China calendar day: a date or "YYYY-MM-DD"
    sub_mchid: str = ""  # service-provider mode: the sub-merchant's bill (default: the config's sub_mchid)
    bill_type: str = "ALL"
    gzip: bool = True  # tar_type=GZIP: the file comes compressed


def _bill_day(value: date | str) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"bill_date must be a date or YYYY-MM-DD, not {value!r}")
    return date.fromisoformat(value).isoformat()


def _sha1_matches(expected: str, *candidates: bytes) -> bool:
    wanted = expected.strip().lower()
    return any(hmac.compare_digest(hashlib.sha1(c, usedforsecurity=False).hexdigest(), wanted) for c in candidates)


def _without_query(url: httpx.URL) -> str:
    # The download token is a credential for the file: never stored.
    return str(url.copy_with(query=None, fragment=None)) + ("?token=***" if url.query else "")


def tradebill(
    config: WechatPayV3Config,
    request: TradeBillRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> DownloadBillResult:
    """The day's trade bill over API v3 (申请交易账单 then 下载账单), shaped like v2's downloadbill result.

    1. `GET /v3/bill/tradebill?bill_date=…&bill_type=ALL&tar_type=GZIP[&sub_mchid=…]`: a signed JSON answer (verified
       like every v3 answer) with `hash_type`, `hash_value` and `download_url`.
    2. `GET download_url`, signed over the URL's path+query: the file itself, unsigned by WeChat; its integrity is
       the SHA1 of the answer `hash_value` names. WeChat's documents do not say plainly whether a GZIP file's hash
       is of the compressed or of the decompressed bill, so either is accepted. A mismatch is TRANSIENT (download
       again), never imported.

    SUCCESS: `content` is the bill's text (decompressed). REJECTED with `no_bill`: NO_STATEMENT_EXIST. TRANSIENT:
    STATEMENT_CREATING, 429/5xx, transport trouble, an unverifiable answer, a failed download or a hash mismatch.
    REJECTED otherwise (INVALID_REQUEST, PARAM_ERROR, NO_AUTH…).
    """
    query = {"bill_date": _bill_day(request.bill_date), "bill_type": request.bill_type}
    if request.gzip:
        query["tar_type"] = "GZIP"
    sub_mchid = request.sub_mchid or config.sub_mchid
    if sub_mchid:
        query["sub_mchid"] = sub_mchid
    client = client or http.shared_client()
    result, data = _call(
        config,
        "GET",
        f"{_TRADEBILL}?{urlencode(query)}",
        None,
        client=client,
        timeouts=timeouts,
        changes_state=False,
        clock=clock,
    )
    if data is None:
        code = result.get("code", "")
        if code in NO_BILL_CODES:
            result.update(outcome=Outcome.REJECTED, no_bill=True)
        elif code in BILL_NOT_READY_CODES:
            result.update(outcome=Outcome.TRANSIENT)
        return DownloadBillResult(**result)
    hash_type, hash_value = str(data.get("hash_type", "")), str(data.get("hash_value", ""))
    try:
        download_url = httpx.URL(str(data.get("download_url", "")))
    except httpx.InvalidURL:
        download_url = httpx.URL("")
    result["response_fields"] = {**redact(data), "download_url": _without_query(download_url)}

    def failed(outcome: Outcome, code: str, message: str) -> DownloadBillResult:
        result.update(outcome=outcome, code=code, message=message[:255])
        return DownloadBillResult(**result)

    if download_url.scheme not in ("https", "http") or not download_url.host:
        return failed(Outcome.TRANSIENT, "UNPARSEABLE", "answer has no usable download_url")
    if hash_type.upper() != "SHA1" or not hash_value:
        return failed(Outcome.REJECTED, "UNSUPPORTED_HASH", f"hash_type {hash_type[:20]!r} is not SHA1")
    # The answer is verified, so its download_url is WeChat's word: the file is fetched where it says.
    download = _signed_request(
        config, client, "GET", str(download_url), b"", headers={}, timeouts=timeouts, clock=clock
    )
    result["request_fields"]["download"] = _without_query(download_url)
    first_latency = result.get("latency_ms", 0)
    sent = http.send(client, download, changes_state=False)
    if isinstance(sent, http.TransportFailure):
        result["latency_ms"] = first_latency + sent.latency_ms
        return failed(Outcome.TRANSIENT, sent.code, sent.message)
    result.update(http_status=sent.status, latency_ms=first_latency + sent.latency_ms)
    body = sent.body
    if sent.status != 200:
        # The token expired, or the file is not there: a new tradebill call gets a new download_url.
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        return failed(
            Outcome.TRANSIENT, str(answer.get("code") or f"HTTP_{sent.status}"), str(answer.get("message", ""))
        )
    try:
        content = bills.decompressed(body)
    except (OSError, EOFError) as exc:
        return failed(Outcome.TRANSIENT, "BAD_GZIP", type(exc).__name__)
    if not _sha1_matches(hash_value, body, content):
        return failed(Outcome.TRANSIENT, "HASH_MISMATCH", "the downloaded bill does not match hash_value")
    result.update(outcome=Outcome.SUCCESS)
    return DownloadBillResult(**result, content=content)
