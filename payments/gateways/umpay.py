"""UMF / 联动优势 service-provider platform (JSON over HTTP POST): wxface, micropay, queryOrder, cancelOrder,
refund, refundQuery, plus the trade notification sent to backUrl.

Signature rules (docs/protocols.md, "UMF"; checked against UMF's published examples signed with the test keys):
- request:      SHA1withRSA over `k1=v1&k2=v2` of the sorted non-empty fields except `signature`;
- response:     SHA1withRSA over `v1|v2|…`, VALUES of the sorted non-null, non-"" fields except `signature`;
- notification: form-encoded, signature field `sign`, same values-only rule with `sign` left out (it is the
                signature there; UMF's published notification verifies only that way).
"""

from __future__ import annotations

import decimal
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import httpx
from cryptography.hazmat.primitives import hashes

from . import http
from .base import GatewayResult, Outcome, redact
from .http import DEFAULT_TIMEOUTS, Timeouts
from .keys import PrivateKeySource, PublicKeySource, rsa_sign, rsa_verify

DEFAULT_BASE_URL = "http://provider.umfintech.com/entry-provider-plat-client"
INTEGRATION_BASE_URL = "http://111.205.18.100:8011/entry-provider-plat-client"
SUCCESS_CODE = "00"  # compared exactly: 8-character codes such as "001100WN" are failures
# China has had no daylight saving time since 1991: a fixed offset needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")


class OrderType(enum.StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"
    UNIONPAY = "unionpay"


# --- signing -----------------------------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return value is not None and value != ""


def request_plaintext(fields: Mapping[str, Any]) -> str:
    """`k1=v1&k2=v2…` over the sorted fields except `signature`, empty ones left out."""
    parts = []
    for name in sorted(fields):
        value = fields[name]
        if name == "signature" or not _present(value):
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"UMF request field {name!r} must be text or an integer")
        parts.append(f"{name}={value}")
    return "&".join(parts)


def _value_text(value: Any) -> str:
    # JSON values as UMF's Java side prints them: numbers as their text, booleans lower-case.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _values(fields: Mapping[str, Any], excluded: str) -> list[str]:
    values: list[str] = []
    for name in sorted(fields):
        value = fields[name]
        if name == excluded or not _present(value):
            continue
        if isinstance(value, Mapping):
            # Nested objects contribute their own sorted values in place (UMF's nested-JSON rule).
            values.extend(_values(value, excluded=""))
        else:
            values.append(_value_text(value))
    return values


def response_plaintext(fields: Mapping[str, Any], *, signature_field: str = "signature") -> str:
    """`v1|v2|…`: values of the sorted fields except the signature field, null and "" left out.

    For responses only `signature` is excluded — a field named `sign` is signed like any other.
    """
    return "|".join(_values(fields, excluded=signature_field))


def sign_request(fields: Mapping[str, Any], private_key: PrivateKeySource) -> dict[str, Any]:
    """The request to send: empty fields dropped (they are neither signed nor sent), `signature` added."""
    sent = {k: v for k, v in fields.items() if k != "signature" and _present(v)}
    sent["signature"] = rsa_sign(private_key, request_plaintext(sent).encode("utf-8"), hashes.SHA1())
    return sent


def verify_request(fields: Mapping[str, Any], public_key: PublicKeySource) -> bool:
    """Server side (sandbox): check a merchant's request signature with the merchant's public key."""
    signature = fields.get("signature")
    if not isinstance(signature, str) or not signature:
        return False
    try:
        plaintext = request_plaintext(fields)
    except TypeError:
        return False
    return rsa_verify(public_key, plaintext.encode("utf-8"), signature, hashes.SHA1())


def sign_response(fields: Mapping[str, Any], private_key: PrivateKeySource) -> dict[str, Any]:
    """Server side (sandbox): a response body with `signature` over the values-only rule."""
    signed = {k: v for k, v in fields.items() if k != "signature"}
    signed["signature"] = rsa_sign(private_key, response_plaintext(signed).encode("utf-8"), hashes.SHA1())
    return signed


def verify_response(fields: Mapping[str, Any], public_key: PublicKeySource) -> bool:
    signature = fields.get("signature")
    if not isinstance(signature, str) or not signature:
        return False
    plaintext = response_plaintext(fields)
    return rsa_verify(public_key, plaintext.encode("utf-8"), signature, hashes.SHA1())


def sign_notification(fields: Mapping[str, Any], private_key: PrivateKeySource) -> dict[str, str]:
    """Server side (sandbox): notification form fields with `sign` over the values-only rule."""
    signed = {k: str(v) for k, v in fields.items() if k != "sign" and v is not None}
    signed["sign"] = rsa_sign(
        private_key, response_plaintext(signed, signature_field="sign").encode("utf-8"), hashes.SHA1()
    )
    return signed


def parse_notification_form(body: bytes | str) -> dict[str, str]:
    """Form-urlencoded notification body to fields (values URL-decoded, blanks kept)."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"))


def verify_notification(fields: Mapping[str, Any], public_key: PublicKeySource) -> bool:
    """Check a backUrl notification (already form-decoded) against UMF's public key."""
    signature = fields.get("sign")
    if not isinstance(signature, str) or not signature:
        return False
    plaintext = response_plaintext(fields, signature_field="sign")
    return rsa_verify(public_key, plaintext.encode("utf-8"), signature, hashes.SHA1())


def notification_ack(private_key: PrivateKeySource, *, received: bool = True, message: str = "") -> dict[str, Any]:
    """Body to answer a notification with (UMF's table: respCode, respMsg, signature): respCode 00 stops UMF's
    retries (at most 4, 1 minute apart), anything else asks for the notification again. Signed as every message we
    send to UMF: our private key over the sorted `k=v&…` of the other fields."""
    fields = {
        "respCode": SUCCESS_CODE if received else "99",
        "respMsg": message or ("received" if received else "retry"),
    }
    return sign_request(fields, private_key)


# --- configuration, requests, results ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UmpayConfig:
    acq_sp_id: str  # acqSpId, the service provider (代理商编号)
    acq_mer_id: str  # acqMerId, the merchant at UMF
    private_key: str | bytes = field(repr=False)  # ours: PKCS#8 DER (`*.key.p8`) or PEM
    umpay_certificate: str | bytes = field(repr=False)  # UMF's certificate, DER or PEM; only its key is used
    base_url: str = DEFAULT_BASE_URL


@dataclass(frozen=True, kw_only=True)
class UmpayResult(GatewayResult):
    transaction_id: str = ""  # UMF's order number
    order_no: str = ""
    txn_amt: int | None = None


@dataclass(frozen=True, kw_only=True)
class WxfaceRequest:
    raw_data: str = field(repr=False)  # the SDK's rawdata, sent as `rawDate` (sic)
    appid: str = ""
    mch_id: str = ""
    sub_mch_id: str = ""


@dataclass(frozen=True, kw_only=True)
class WxfaceResult(GatewayResult):
    authinfo: str = field(default="", repr=False)
    expires_in: int | None = None
    appid: str = ""
    mch_id: str = ""
    sub_mch_id: str = ""


@dataclass(frozen=True, kw_only=True)
class MicropayRequest:
    order_no: str
    txn_amt: int  # fen
    auth_code: str = field(repr=False)
    goods_id: str
    goods_info: str
    order_type: OrderType = OrderType.WECHAT
    order_time: datetime | None = None  # None = now; sent as yyyyMMddHHmmss in China time
    back_url: str = ""
    mer_priv: str = ""
    is_face_pay: bool = False  # faceFlag=1: the code came from the face SDK (face_code_type "1")


@dataclass(frozen=True, kw_only=True)
class MicropayResult(UmpayResult):
    pay_seq: str = ""
    dep_bank_seq: str = ""  # WeChat/Alipay/UnionPay transaction id
    payer_info: str = ""
    plat_date: str = ""


@dataclass(frozen=True, kw_only=True)
class QueryOrderResult(UmpayResult):
    """`outcome` is the payment's state: SUCCESS paid (origRespCode 00, also 01 = paid then refunded), REJECTED
    03 closed / 04 revoked / 06 failed or respCode 17 (no such order), UNKNOWN 02 or anything unrecognised,
    TRANSIENT the query failed (or its answer is not about this order)."""

    orig_resp_code: str = ""
    orig_resp_desc_code: str = ""
    order_exists: bool | None = None  # False: respCode 17, UMF has no order with this number


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    order_no: str  # the refund's own order number; retry with the same one
    orig_order_no: str
    orig_txn_amt: int
    txn_amt: int
    order_time: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class RefundQueryResult(UmpayResult):
    orig_resp_code: str = ""


# --- transport ---------------------------------------------------------------------------------------------------


def _order_time(value: datetime | None) -> str:
    moment = value or datetime.now(CHINA_TZ)
    if moment.tzinfo is not None:
        moment = moment.astimezone(CHINA_TZ)
    return moment.strftime("%Y%m%d%H%M%S")


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if _present(value) else None
    except ValueError:
        return None


# Fields an answer repeats from its request (or from the order it is about). UMF answers carry no nonce and travel
# over plain HTTP, so a validly signed answer to another order (or amount) could be replayed: one that names different
# values is unusable, never this order's outcome. An answer that leaves them out is taken as is. `merId` / `agentId`
# are the older names of acqMerId / acqSpId in UMF's documents; `orderDate` is the order's day (yyyyMMdd).
_ECHOED = (
    "acqSpId", "acqMerId", "agentId", "merId", "orderNo", "origOrderNo", "txnAmt", "origTxnAmt", "transactionId",
    "orderTime", "orderDate",
)  # fmt: skip
_AMOUNTS = frozenset({"txnAmt", "origTxnAmt"})


def _echo_mismatch(expected: Mapping[str, Any], answer: Mapping[str, Any]) -> str:
    """The first echoed field whose value differs from what the order says, as `name: answered (expected …)`."""
    for name in _ECHOED:
        if not _present(expected.get(name)) or not _present(answer.get(name)):
            continue
        if name in _AMOUNTS:
            same = _int(answer[name]) == int(expected[name])
        else:
            same = str(answer[name]) == str(expected[name])
        if not same:
            return f"{name}: {answer[name]} (expected {expected[name]})"
    return ""


def _call(
    config: UmpayConfig,
    path: str,
    fields: dict[str, Any],
    *,
    client: httpx.Client | None,
    timeouts: Timeouts,
    changes_state: bool,
    expected: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(result keyword arguments, verified response fields or None). `expected`: what the order says about fields
    the request does not carry (an answer naming other values is unusable, like one that does not verify)."""
    body = sign_request({"acqSpId": config.acq_sp_id, "acqMerId": config.acq_mer_id, **fields}, config.private_key)
    result: dict[str, Any] = {"request_fields": redact(body)}
    client = client or http.shared_client()
    request = client.build_request(
        "POST",
        config.base_url.rstrip("/") + "/" + path,
        content=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=timeouts.as_httpx(),
    )
    sent = http.send(client, request, changes_state=changes_state)
    if isinstance(sent, http.TransportFailure):
        result.update(outcome=sent.outcome, code=sent.code, message=sent.message, latency_ms=sent.latency_ms)
        return result, None
    result.update(http_status=sent.status, latency_ms=sent.latency_ms)
    unusable = http.failure_outcome(changes_state)
    if sent.status != 200:
        result.update(outcome=unusable, code=f"HTTP_{sent.status}", message="unexpected HTTP status")
        return result, None
    try:
        # Decimal keeps a number's text exactly as sent, which the values-only signature covers.
        data = json.loads(sent.body, parse_float=decimal.Decimal)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        result.update(outcome=unusable, code="UNPARSEABLE", message="response body is not a JSON object")
        return result, None
    result["response_fields"] = redact(data)
    if not verify_response(data, config.umpay_certificate):
        result.update(outcome=unusable, code="BAD_SIGNATURE", message="response signature does not verify")
        return result, None
    echo = {"agentId": config.acq_sp_id, "merId": config.acq_mer_id, **(expected or {}), **body}
    mismatch = _echo_mismatch(echo, data)
    if mismatch:
        result.update(outcome=unusable, code="MISMATCH", message=f"the answer is not about this order: {mismatch}")
        return result, None
    result.update(code=str(data.get("respCode") or ""), message=str(data.get("respMsg") or ""))
    result.update(
        transaction_id=str(data.get("transactionId") or ""),
        order_no=str(data.get("orderNo") or ""),
        txn_amt=_int(data.get("txnAmt")),
    )
    return result, data


def _finish(result: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    result["outcome"] = outcome
    if outcome is Outcome.SUCCESS:
        result["code"] = result.get("code") or SUCCESS_CODE
    return result


# respCode values that certainly mean "refused, nothing happened" (UMF's return-code table). Only these are
# REJECTED; every other code but "00" leaves the result open (UNKNOWN: find out by querying) — among them 02 user
# paying, 62 entering password, 04 state unknown, 01000000 sync the status, 01 system error, 06 system busy,
# 99 system exception, 05 already paid, 12 / 16 duplicate, and any code not in UMF's table. docs/protocols.md, "UMF",
# gives each mapping and its reason.
MICROPAY_REFUSED_CODES = frozenset(
    {
        "08",  # invalid amount
        "10",  # malformed message
        "11",  # signature does not verify
        "13",  # required field missing
        "15",  # insufficient balance
        "20",  # payment code expired
        "21",  # too many payment attempts
        "23",  # no such payment code
        "31",  # merchant or institution not in a usable state
        "32",  # no permission for this transaction
        "33",  # amount over the limit
        "38",  # refused by risk control
        "39",  # outside the accepted time range
        "43",  # card in an abnormal state
        "001100WN",  # UMF's published failure answer: the payment code was already used ("每个二维码仅限使用一次")
    }
)
ORDER_NOT_FOUND = "17"  # 交易不存在: UMF has no order with this number
CANCEL_REFUSED_CODES = frozenset({"10", "11", "13", "31", "32", "35", "36", "39", ORDER_NOT_FOUND})
REFUND_REFUSED_CODES = frozenset({"08", "10", "11", "13", "31", "32", "33", "35", "36", "38", "39", ORDER_NOT_FOUND})


def _money_outcome(resp_code: str, refused: frozenset[str]) -> Outcome:
    if resp_code == SUCCESS_CODE:
        return Outcome.SUCCESS
    if resp_code in refused:
        return Outcome.REJECTED
    return Outcome.UNKNOWN


# --- calls -------------------------------------------------------------------------------------------------------


def wxface(
    config: UmpayConfig,
    request: WxfaceRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> WxfaceResult:
    fields = {
        "rawDate": request.raw_data,
        "appid": request.appid,
        "mchId": request.mch_id,
        "subMchId": request.sub_mch_id,
    }
    result, data = _call(config, "pay/wxface", fields, client=client, timeouts=timeouts, changes_state=False)
    result = {k: v for k, v in result.items() if k not in ("transaction_id", "order_no", "txn_amt")}
    if data is None:
        return WxfaceResult(**result)
    if data.get("respCode") != SUCCESS_CODE or not data.get("authinfo"):
        return WxfaceResult(**_finish(result, Outcome.REJECTED))
    return WxfaceResult(
        **_finish(result, Outcome.SUCCESS),
        authinfo=str(data["authinfo"]),
        expires_in=_int(data.get("expiresIn")),
        appid=str(data.get("appid") or ""),
        mch_id=str(data.get("mchId") or ""),
        sub_mch_id=str(data.get("subMchId") or ""),
    )


def micropay(
    config: UmpayConfig,
    request: MicropayRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> MicropayResult:
    fields = {
        "orderTime": _order_time(request.order_time),
        "orderNo": request.order_no,
        "txnAmt": str(int(request.txn_amt)),
        "orderType": OrderType(request.order_type).value,
        "authCode": request.auth_code,
        "goodsId": request.goods_id,
        "goodsInfo": request.goods_info,
        "backUrl": request.back_url,
        "merPriv": request.mer_priv,
        "faceFlag": "1" if request.is_face_pay else "",
    }
    result, data = _call(config, "pay/micropay", fields, client=client, timeouts=timeouts, changes_state=True)
    if data is None:
        return MicropayResult(**result)
    return MicropayResult(
        **_finish(result, _money_outcome(str(data.get("respCode") or ""), MICROPAY_REFUSED_CODES)),
        pay_seq=str(data.get("paySeq") or ""),
        dep_bank_seq=str(data.get("depBankSeq") or ""),
        payer_info=str(data.get("payerInfo") or ""),
        plat_date=str(data.get("platDate") or ""),
    )


_ORIG_OUTCOMES = {
    "00": Outcome.SUCCESS,
    "01": Outcome.SUCCESS,  # refund in progress / refunded: the payment itself went through
    "02": Outcome.UNKNOWN,
    "03": Outcome.REJECTED,
    "04": Outcome.REJECTED,
    "06": Outcome.REJECTED,
}


def query_order(
    config: UmpayConfig,
    *,
    order_no: str,
    transaction_id: str = "",
    txn_amt: int | None = None,
    order_time: str = "",
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> QueryOrderResult:
    """pay/queryOrder (UMF's "订单状态同步", order status sync): respCode 00 means the query worked, origRespCode is the
    payment's state.

    `txn_amt` (fen) and `order_time` (yyyyMMddHHmmss) are the order's: the answer must name the same amount, order
    number, merchant and (where it echoes them) transaction id, order time and order date, or it is unusable — a
    genuine signed answer about another order with the same number must not settle this one. `transaction_id`, when
    known, is compared the same way (it is not sent: orderNo finds the order). respCode 17 (交易不存在) is REJECTED
    with `order_exists` False: UMF has no such order; the services decide what that means at that point."""
    expected = {
        "txnAmt": txn_amt,
        "transactionId": transaction_id,
        "orderTime": order_time,
        "orderDate": order_time[:8],
    }
    result, data = _call(
        config,
        "pay/queryOrder",
        {"orderNo": order_no},
        client=client,
        timeouts=timeouts,
        changes_state=False,
        expected=expected,
    )
    if data is None:
        return QueryOrderResult(**result)
    orig = str(data.get("origRespCode") or "")
    extra = {"orig_resp_code": orig, "orig_resp_desc_code": str(data.get("origRespDescCode") or "")}
    resp_code = data.get("respCode")
    if resp_code == ORDER_NOT_FOUND:
        return QueryOrderResult(**_finish(result, Outcome.REJECTED), **extra, order_exists=False)
    if resp_code != SUCCESS_CODE:
        return QueryOrderResult(**_finish(result, Outcome.TRANSIENT), **extra)
    outcome = _ORIG_OUTCOMES.get(orig, Outcome.UNKNOWN)
    result["code"] = orig
    return QueryOrderResult(**_finish(result, outcome), **extra, order_exists=True)


def cancel_order(
    config: UmpayConfig,
    *,
    order_no: str,
    txn_amt: int | None = None,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> UmpayResult:
    """pay/cancelOrder: same-day payment-code orders only; later use refund. `txn_amt`: the order's amount, which an
    answer that echoes one must name."""
    result, data = _call(
        config,
        "pay/cancelOrder",
        {"orderNo": order_no},
        client=client,
        timeouts=timeouts,
        changes_state=True,
        expected={"txnAmt": txn_amt},
    )
    if data is None:
        return UmpayResult(**result)
    return UmpayResult(**_finish(result, _money_outcome(str(data.get("respCode") or ""), CANCEL_REFUSED_CODES)))


def refund(
    config: UmpayConfig,
    request: RefundRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> UmpayResult:
    """pay/refund: "00" = accepted; confirm with refund_query. Partial refunds allowed, up to 90 days."""
    fields = {
        "orderTime": _order_time(request.order_time),
        "origOrderNo": request.orig_order_no,
        "origTxnAmt": str(int(request.orig_txn_amt)),
        "orderNo": request.order_no,
        "txnAmt": str(int(request.txn_amt)),
    }
    result, data = _call(config, "pay/refund", fields, client=client, timeouts=timeouts, changes_state=True)
    if data is None:
        return UmpayResult(**result)
    return UmpayResult(**_finish(result, _money_outcome(str(data.get("respCode") or ""), REFUND_REFUSED_CODES)))


def refund_query(
    config: UmpayConfig,
    *,
    order_no: str,
    txn_amt: int | None = None,
    orig_order_no: str = "",
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> RefundQueryResult:
    """pay/refundQuery by the refund's order number. respCode 00 means the query worked; origRespCode is the refund's
    state: 00 refunded, 01 failed, 02 processing (UMF's refundQuery document; other codes are read as unknown).
    `txn_amt` (the refund's amount) and `orig_order_no` (the payment's number), where the answer echoes them, must
    match."""
    result, data = _call(
        config,
        "pay/refundQuery",
        {"orderNo": order_no},
        client=client,
        timeouts=timeouts,
        changes_state=False,
        expected={"txnAmt": txn_amt, "origOrderNo": orig_order_no},
    )
    if data is None:
        return RefundQueryResult(**result)
    orig = str(data.get("origRespCode") or "")
    if data.get("respCode") != SUCCESS_CODE:
        return RefundQueryResult(**_finish(result, Outcome.TRANSIENT), orig_resp_code=orig)
    outcome = {"00": Outcome.SUCCESS, "01": Outcome.REJECTED, "02": Outcome.UNKNOWN}.get(orig, Outcome.UNKNOWN)
    result["code"] = orig
    return RefundQueryResult(**_finish(result, outcome), orig_resp_code=orig)
