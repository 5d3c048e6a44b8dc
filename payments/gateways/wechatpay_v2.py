"""WeChat Pay API v2 (XML): face authinfo, micropay, orderquery, reverse, refund, refundquery.

Rules (docs/protocols.md, "WeChat Pay API v2"): MD5 / HMAC-SHA256 `sign` over the sorted non-empty fields plus
`&key=`; responses verified over every returned field; `return_code` is the transport layer, `result_code` the
business layer.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

import httpx

from . import http
from . import wechatpay_bill as bills
from .base import GatewayResult, Outcome, redact
from .http import DEFAULT_TIMEOUTS, RawResponse, Timeouts

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
DEFAULT_FACE_BASE_URL = "https://payapp.weixin.qq.com"


class SignType(enum.StrEnum):
    MD5 = "MD5"
    HMAC_SHA256 = "HMAC-SHA256"


@dataclass(frozen=True, kw_only=True)
class WechatPayV2Config:
    """One merchant (or, in service-provider mode, the provider acting for sub_mch_id)."""

    appid: str
    mch_id: str
    api_key: str = field(repr=False)
    sign_type: SignType = SignType.HMAC_SHA256
    # Service-provider mode (服务商): appid/mch_id/api_key are the provider's; these name the merchant.
    sub_appid: str = ""
    sub_mch_id: str = ""
    # API client certificate, needed for secapi/* (reverse, refund).
    client_cert_pem: str = field(default="", repr=False)
    client_key_pem: str = field(default="", repr=False)
    base_url: str = DEFAULT_BASE_URL
    face_base_url: str = DEFAULT_FACE_BASE_URL


# --- signing ---------------------------------------------------------------------------------------------------


def _sign_source(fields: Mapping[str, Any]) -> str:
    # Every parameter except `sign`, empty ones (None or "") dropped but "0" kept, ASCII order, no URL encoding.
    pairs = [(k, str(v)) for k, v in fields.items() if k != "sign" and v is not None and str(v) != ""]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def sign(fields: Mapping[str, Any], api_key: str, sign_type: SignType | str = SignType.MD5) -> str:
    """The `sign` value for `fields` (uppercase hex)."""
    source = _sign_source(fields) + "&key=" + api_key
    if SignType(sign_type) is SignType.MD5:
        return hashlib.md5(source.encode("utf-8")).hexdigest().upper()
    return hmac.new(api_key.encode("utf-8"), source.encode("utf-8"), hashlib.sha256).hexdigest().upper()


def verify(fields: Mapping[str, Any], api_key: str) -> bool:
    """Check `sign` over every other field, including ones this code does not know about.

    The algorithm follows from the signature's length (MD5: 32 hex, HMAC-SHA256: 64 hex); both are keyed with the
    API key, so accepting either does not weaken the check.
    """
    received = fields.get("sign")
    if not isinstance(received, str):
        return False
    if len(received) == 32:
        sign_type = SignType.MD5
    elif len(received) == 64:
        sign_type = SignType.HMAC_SHA256
    else:
        return False
    return hmac.compare_digest(sign(fields, api_key, sign_type), received.upper())


def nonce_str() -> str:
    return secrets.token_hex(16)


# --- XML ---------------------------------------------------------------------------------------------------------


class XmlError(ValueError):
    pass


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# Checked on the bytes, before any parsing: a declaration (a DOCTYPE can declare entities, and expat expands them
# even while our handler refuses the document), and encodings in which such a pattern is invisible (UTF-16/32: their
# ASCII characters carry NUL bytes; WeChat answers in UTF-8).
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_WIDE_ENCODING = re.compile(rb"\x00|^(\xff\xfe|\xfe\xff)")


class _NoDoctype(ElementTree.TreeBuilder):
    """Defence in depth: refuses a document type declaration should one ever get past the byte checks."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise XmlError("DOCTYPE/ENTITY declarations are not accepted")


def to_xml(fields: Mapping[str, Any]) -> str:
    """`<xml>` with one element per field; text in CDATA so no escaping questions arise."""
    parts = ["<xml>"]
    for name, value in fields.items():
        if not _FIELD_NAME.match(name):
            raise XmlError("invalid field name")
        if value is None:
            continue
        text = str(value)
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"<{name}>{text}</{name}>")
        else:
            # "]]>" cannot appear inside CDATA: close and reopen the section around it.
            parts.append(f"<{name}><![CDATA[{text.replace(']]>', ']]]]><![CDATA[>')}]]></{name}>")
    parts.append("</xml>")
    return "".join(parts)


def from_xml(body: bytes | str) -> dict[str, str]:
    """Parse a flat `<xml>` document. Rejects DTDs and entity declarations (no XXE, no entity expansion), nested,
    repeated or attributed elements (nothing we could sign-check sensibly). Values keep their exact text.

    The standard library's C parser: about a fifth of xmltodict's CPU for a micropay answer (bench/protocol.py).
    """
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if _DECLARATION.search(raw):
        raise XmlError("DOCTYPE/ENTITY declarations are not accepted")
    if _WIDE_ENCODING.search(raw):
        raise XmlError("not an 8-bit encoding (WeChat answers in UTF-8)")
    parser = ElementTree.XMLParser(target=_NoDoctype())
    try:
        parser.feed(raw)
        root = parser.close()
    except XmlError:
        raise
    except (ElementTree.ParseError, ValueError, LookupError) as exc:
        # Not well-formed; or a declared encoding expat cannot read (multi-byte: ValueError; unknown: LookupError).
        raise XmlError("malformed XML") from exc
    if root.tag != "xml":
        return {}
    if root.text and root.text.strip():
        raise XmlError("unexpected XML structure")
    result: dict[str, str] = {}
    for element in root:
        if len(element) or element.attrib or element.tag in result or not isinstance(element.tag, str):
            raise XmlError("unexpected XML structure")
        result[element.tag] = element.text or ""
    return result


# --- requests and results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FaceAuthinfoRequest:
    store_id: str
    store_name: str
    device_id: str
    rawdata: str = field(repr=False)
    attach: str = ""
    now: int | None = None  # 10-digit unix time; None = current time


@dataclass(frozen=True, kw_only=True)
class FaceAuthinfoResult(GatewayResult):
    authinfo: str = field(default="", repr=False)
    expires_in: int | None = None


@dataclass(frozen=True, kw_only=True)
class MicropayRequest:
    out_trade_no: str
    total_fee: int  # fen
    body: str
    auth_code: str = field(repr=False)  # 18-digit payment code or face_code
    spbill_create_ip: str
    device_info: str = ""
    attach: str = ""
    detail: str = ""
    goods_tag: str = ""
    time_start: str = ""
    time_expire: str = ""
    scene_info: str = ""


@dataclass(frozen=True, kw_only=True)
class MicropayResult(GatewayResult):
    transaction_id: str = ""
    openid: str = ""
    sub_openid: str = ""
    total_fee: int | None = None
    cash_fee: int | None = None
    bank_type: str = ""
    time_end: str = ""


@dataclass(frozen=True, kw_only=True)
class OrderQueryRequest:
    # WeChat prefers transaction_id when both are known (then out_trade_no is not sent, only compared).
    transaction_id: str = ""
    out_trade_no: str = ""
    total_fee: int | None = None  # the order's amount (fen): not sent; an answer naming another one is unusable


@dataclass(frozen=True, kw_only=True)
class OrderQueryResult(GatewayResult):
    """`outcome` says what the query tells about the payment: SUCCESS paid (also REFUND: it was paid),
    REJECTED definitely not paid (CLOSED, REVOKED, PAYERROR, ORDERNOTEXIST), UNKNOWN still open (USERPAYING,
    NOTPAY), TRANSIENT the query itself failed."""

    trade_state: str = ""
    trade_state_desc: str = ""
    order_exists: bool | None = None
    transaction_id: str = ""
    out_trade_no: str = ""
    openid: str = ""
    total_fee: int | None = None
    cash_fee: int | None = None
    time_end: str = ""


@dataclass(frozen=True, kw_only=True)
class ReverseRequest:
    transaction_id: str = ""
    out_trade_no: str = ""


@dataclass(frozen=True, kw_only=True)
class ReverseResult(GatewayResult):
    """SUCCESS reversed; TRANSIENT call again (recall=Y, USERPAYING); REJECTED stop, a person must look (recall=N,
    REVERSE_EXPIRE: use refund); UNKNOWN the answer was lost."""

    recall: bool | None = None


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    out_refund_no: str
    total_fee: int
    refund_fee: int
    transaction_id: str = ""
    out_trade_no: str = ""
    refund_desc: str = ""
    notify_url: str = ""


@dataclass(frozen=True, kw_only=True)
class RefundResult(GatewayResult):
    """SUCCESS means accepted, not done: confirm with refundquery. Retry with the same out_refund_no."""

    refund_id: str = ""
    refund_fee: int | None = None
    transaction_id: str = ""


@dataclass(frozen=True, kw_only=True)
class RefundQueryRequest:
    out_refund_no: str = ""
    refund_id: str = ""
    transaction_id: str = ""
    out_trade_no: str = ""


@dataclass(frozen=True)
class RefundItem:
    out_refund_no: str
    refund_id: str
    refund_fee: int | None
    refund_status: str  # SUCCESS, REFUNDCLOSE, PROCESSING, CHANGE
    refund_success_time: str


@dataclass(frozen=True, kw_only=True)
class RefundQueryResult(GatewayResult):
    """`outcome` is the state of the refund asked about (or the first one): SUCCESS refunded, UNKNOWN PROCESSING,
    REJECTED REFUNDCLOSE / CHANGE (abnormal: needs a person) / REFUNDNOTEXIST, TRANSIENT the query failed."""

    refunds: tuple[RefundItem, ...] = ()
    refund_status: str = ""


# --- the calls ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    """A verified answer, or the result fields to use when there is none."""

    fields: dict[str, str] | None
    outcome: Outcome = Outcome.UNKNOWN
    code: str = ""
    message: str = ""


def _common_fields(config: WechatPayV2Config) -> dict[str, Any]:
    return {
        "appid": config.appid,
        "mch_id": config.mch_id,
        "sub_appid": config.sub_appid,
        "sub_mch_id": config.sub_mch_id,
        "nonce_str": nonce_str(),
        "sign_type": config.sign_type.value,
    }


def _prune(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != ""}


def _call(
    config: WechatPayV2Config,
    url: str,
    fields: dict[str, Any],
    *,
    client: httpx.Client | None,
    timeouts: Timeouts,
    changes_state: bool,
    needs_client_cert: bool = False,
    expected: Mapping[str, Any] | None = None,
    check_echo: bool = True,
) -> tuple[_Answer, dict[str, Any], RawResponse | None, int]:
    """`expected`: what the order says about fields the request does not carry (compared like the sent ones).
    `check_echo`: compare the answer's echoed identifiers with the request (every call about an order)."""
    fields = _prune(fields)
    fields["sign"] = sign(fields, config.api_key, config.sign_type)
    logged_request = redact(fields)
    if client is None:
        if needs_client_cert:
            if not (config.client_cert_pem and config.client_key_pem):
                return (
                    _Answer(None, Outcome.TRANSIENT, "NO_CLIENT_CERT", "client certificate not configured"),
                    logged_request,
                    None,
                    0,
                )
            try:
                client = http.client_for_certificate(config.client_cert_pem, config.client_key_pem)
            except ValueError as exc:
                return _Answer(None, Outcome.TRANSIENT, "BAD_CLIENT_CERT", str(exc)), logged_request, None, 0
        else:
            client = http.shared_client()
    request = client.build_request(
        "POST",
        url,
        content=to_xml(fields).encode("utf-8"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=timeouts.as_httpx(),
    )
    sent = http.send(client, request, changes_state=changes_state)
    if isinstance(sent, http.TransportFailure):
        return _Answer(None, sent.outcome, sent.code, sent.message), logged_request, None, sent.latency_ms
    answer = _interpret(sent, config, changes_state)
    if check_echo and answer.fields is not None and not answer.code:
        mismatch = _echo_mismatch({**{k: v for k, v in (expected or {}).items() if v not in (None, "")}, **fields},
                                  answer.fields)  # fmt: skip
        if mismatch:
            answer = _Answer(
                answer.fields,
                http.failure_outcome(changes_state),
                "MISMATCH",
                f"the answer is not about this order: {mismatch}",
            )
    return answer, logged_request, sent, sent.latency_ms


# Fields a verified answer repeats from its request (or from the order it is about): an answer naming other values
# is about another merchant or order — a signed answer can be genuine and still not be this order's (a proxy or a
# bug mixing answers up) — so it is unusable, never applied. A field the answer leaves out is not compared.
_ECHOED = (
    "appid",
    "mch_id",
    "sub_mch_id",
    "out_trade_no",
    "transaction_id",
    "out_refund_no",
    "total_fee",
    "refund_fee",
)
_AMOUNTS = frozenset({"total_fee", "refund_fee"})


def _echo_mismatch(expected: Mapping[str, Any], answer: Mapping[str, str]) -> str:
    for name in _ECHOED:
        if name not in expected or answer.get(name) in (None, ""):
            continue
        same = _int(answer[name]) == int(expected[name]) if name in _AMOUNTS else answer[name] == str(expected[name])
        if not same:
            return f"{name}: {answer[name]} (expected {expected[name]})"
    return ""


def _interpret(raw: RawResponse, config: WechatPayV2Config, changes_state: bool) -> _Answer:
    unusable = http.failure_outcome(changes_state)
    if raw.status != 200:
        return _Answer(None, unusable, f"HTTP_{raw.status}", "unexpected HTTP status")
    try:
        fields = from_xml(raw.body)
    except XmlError as exc:
        return _Answer(None, unusable, "UNPARSEABLE", str(exc))
    return_code = fields.get("return_code", "")
    if return_code != "SUCCESS":
        if "sign" in fields and not verify(fields, config.api_key):
            return _Answer(fields, unusable, "BAD_SIGNATURE", "response signature does not verify")
        message = fields.get("return_msg", "")
        if return_code == "FAIL":
            # Communication-layer refusal (bad signature, missing parameter...): WeChat did not process the
            # request. These answers are unsigned by design.
            return _Answer(fields, Outcome.REJECTED, "FAIL", message)
        # SYSTEMERROR and other non-FAIL values: not a definite answer.
        return _Answer(fields, unusable, return_code or "UNPARSEABLE", message)
    if not verify(fields, config.api_key):
        # WeChat sends bad signatures on purpose to check merchants verify; an unverified answer is no answer.
        return _Answer(fields, unusable, "BAD_SIGNATURE", "response signature does not verify")
    return _Answer(fields)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _base(answer: _Answer, logged_request: dict[str, Any], raw: RawResponse | None, latency_ms: int) -> dict[str, Any]:
    return {
        "outcome": answer.outcome,
        "code": answer.code,
        "message": answer.message,
        "request_fields": logged_request,
        "response_fields": redact(answer.fields),
        "http_status": raw.status if raw else None,
        "latency_ms": latency_ms,
    }


def _business(fields: dict[str, str]) -> tuple[bool, str, str]:
    """(result_code is SUCCESS, err_code, err_code_des)."""
    return fields.get("result_code") == "SUCCESS", fields.get("err_code", ""), fields.get("err_code_des", "")


def get_wxpayface_authinfo(
    config: WechatPayV2Config,
    request: FaceAuthinfoRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> FaceAuthinfoResult:
    fields = {
        **_common_fields(config),
        "store_id": request.store_id,
        "store_name": request.store_name,
        "device_id": request.device_id,
        "attach": request.attach,
        "rawdata": request.rawdata,
        "now": str(request.now if request.now is not None else int(time.time())),
        "version": "1",
    }
    url = config.face_base_url.rstrip("/") + "/face/get_wxpayface_authinfo"
    # Not about an order: the SDK credential is checked by the SDK itself.
    answer, logged, raw, latency = _call(
        config, url, fields, client=client, timeouts=timeouts, changes_state=False, check_echo=False
    )
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        return FaceAuthinfoResult(**base)
    # This endpoint has no result_code: a verified return_code SUCCESS carries the authinfo.
    authinfo = answer.fields.get("authinfo", "")
    if not authinfo:
        base.update(outcome=Outcome.TRANSIENT, code="NO_AUTHINFO", message=answer.fields.get("return_msg", ""))
        return FaceAuthinfoResult(**base)
    base.update(outcome=Outcome.SUCCESS)
    return FaceAuthinfoResult(**base, authinfo=authinfo, expires_in=_int(answer.fields.get("expires_in")))


# micropay err_codes after which the user may have been charged (WeChat marks them 支付结果未知, result unknown).
MICROPAY_UNKNOWN_CODES = frozenset({"SYSTEMERROR", "BANKERROR", "USERPAYING"})


def micropay(
    config: WechatPayV2Config,
    request: MicropayRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> MicropayResult:
    fields = {
        **_common_fields(config),
        "device_info": request.device_info,
        "body": request.body,
        "detail": request.detail,
        "attach": request.attach,
        "out_trade_no": request.out_trade_no,
        "total_fee": int(request.total_fee),
        "spbill_create_ip": request.spbill_create_ip,
        "goods_tag": request.goods_tag,
        "time_start": request.time_start,
        "time_expire": request.time_expire,
        "auth_code": request.auth_code,
        "scene_info": request.scene_info,
    }
    url = config.base_url.rstrip("/") + "/pay/micropay"
    answer, logged, raw, latency = _call(config, url, fields, client=client, timeouts=timeouts, changes_state=True)
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        return MicropayResult(**base)
    ok, err_code, err_des = _business(answer.fields)
    if ok:
        base.update(outcome=Outcome.SUCCESS)
    elif err_code in MICROPAY_UNKNOWN_CODES or not err_code:
        base.update(outcome=Outcome.UNKNOWN, code=err_code or "NO_ERR_CODE", message=err_des)
    else:
        # Every other err_code is 支付确认失败: the user was not charged.
        base.update(outcome=Outcome.REJECTED, code=err_code, message=err_des)
    f = answer.fields
    return MicropayResult(
        **base,
        transaction_id=f.get("transaction_id", ""),
        openid=f.get("openid", ""),
        sub_openid=f.get("sub_openid", ""),
        total_fee=_int(f.get("total_fee")),
        cash_fee=_int(f.get("cash_fee")),
        bank_type=f.get("bank_type", ""),
        time_end=f.get("time_end", ""),
    )


# An order's trade_state → what it says about the payment (shared with API v3, whose states are the same).
TRADE_STATE_OUTCOMES = {
    "SUCCESS": Outcome.SUCCESS,
    "REFUND": Outcome.SUCCESS,  # it was paid; a refund is under way
    "NOTPAY": Outcome.UNKNOWN,
    "USERPAYING": Outcome.UNKNOWN,
    "CLOSED": Outcome.REJECTED,
    "REVOKED": Outcome.REJECTED,
    "PAYERROR": Outcome.REJECTED,
}


def orderquery(
    config: WechatPayV2Config,
    request: OrderQueryRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> OrderQueryResult:
    if not (request.transaction_id or request.out_trade_no):
        raise ValueError("transaction_id or out_trade_no is required")
    fields = {
        **_common_fields(config),
        "transaction_id": request.transaction_id,
        "out_trade_no": "" if request.transaction_id else request.out_trade_no,
    }
    url = config.base_url.rstrip("/") + "/pay/orderquery"
    expected = {"out_trade_no": request.out_trade_no, "total_fee": request.total_fee}
    answer, logged, raw, latency = _call(
        config, url, fields, client=client, timeouts=timeouts, changes_state=False, expected=expected
    )
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        if base["outcome"] is Outcome.REJECTED:
            # A refused *query* says nothing about the payment.
            base["outcome"] = Outcome.TRANSIENT
        return OrderQueryResult(**base)
    f = answer.fields
    ok, err_code, err_des = _business(f)
    if not ok:
        if err_code == "ORDERNOTEXIST":
            # Definite: the order never reached WeChat, so nobody was charged.
            base.update(outcome=Outcome.REJECTED, code=err_code, message=err_des)
            return OrderQueryResult(**base, order_exists=False)
        base.update(outcome=Outcome.TRANSIENT, code=err_code or "NO_ERR_CODE", message=err_des)
        return OrderQueryResult(**base)
    trade_state = f.get("trade_state", "")
    outcome = TRADE_STATE_OUTCOMES.get(trade_state, Outcome.UNKNOWN)
    base.update(outcome=outcome, code="" if outcome is Outcome.SUCCESS else trade_state)
    base["message"] = f.get("trade_state_desc", "")
    return OrderQueryResult(
        **base,
        trade_state=trade_state,
        trade_state_desc=f.get("trade_state_desc", ""),
        order_exists=True,
        transaction_id=f.get("transaction_id", ""),
        out_trade_no=f.get("out_trade_no", ""),
        openid=f.get("openid", ""),
        total_fee=_int(f.get("total_fee")),
        cash_fee=_int(f.get("cash_fee")),
        time_end=f.get("time_end", ""),
    )


def reverse(
    config: WechatPayV2Config,
    request: ReverseRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> ReverseResult:
    """secapi: needs the merchant's client certificate (or an injected client that presents it)."""
    if not (request.transaction_id or request.out_trade_no):
        raise ValueError("transaction_id or out_trade_no is required")
    fields = {
        **_common_fields(config),
        "transaction_id": request.transaction_id,
        "out_trade_no": request.out_trade_no,
    }
    url = config.base_url.rstrip("/") + "/secapi/pay/reverse"
    answer, logged, raw, latency = _call(
        config, url, fields, client=client, timeouts=timeouts, changes_state=True, needs_client_cert=True
    )
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        return ReverseResult(**base)
    f = answer.fields
    recall_text = f.get("recall", "")
    recall = {"Y": True, "N": False}.get(recall_text)
    ok, err_code, err_des = _business(f)
    if ok:
        base.update(outcome=Outcome.SUCCESS)
    elif recall is True or err_code == "USERPAYING":
        base.update(outcome=Outcome.TRANSIENT, code=err_code or "RECALL", message=err_des)
    elif recall is None and err_code == "SYSTEMERROR":
        base.update(outcome=Outcome.UNKNOWN, code=err_code, message=err_des)
    else:
        # recall=N, REVERSE_EXPIRE (older than 7 days: refund instead) and other definite refusals.
        base.update(outcome=Outcome.REJECTED, code=err_code or "NO_ERR_CODE", message=err_des)
    return ReverseResult(**base, recall=recall)


# refund err_codes that leave the refund undecided (WeChat: retry with the same out_refund_no).
REFUND_UNKNOWN_CODES = frozenset({"SYSTEMERROR", "BIZERR_NEED_RETRY"})
REFUND_TRANSIENT_CODES = frozenset({"FREQUENCY_LIMITED", "USER_ACCOUNT_ABNORMAL_RETRY"})


def refund(
    config: WechatPayV2Config,
    request: RefundRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> RefundResult:
    if not (request.transaction_id or request.out_trade_no):
        raise ValueError("transaction_id or out_trade_no is required")
    fields = {
        **_common_fields(config),
        "transaction_id": request.transaction_id,
        "out_trade_no": request.out_trade_no,
        "out_refund_no": request.out_refund_no,
        "total_fee": int(request.total_fee),
        "refund_fee": int(request.refund_fee),
        "refund_desc": request.refund_desc,
        "notify_url": request.notify_url,
    }
    url = config.base_url.rstrip("/") + "/secapi/pay/refund"
    answer, logged, raw, latency = _call(
        config, url, fields, client=client, timeouts=timeouts, changes_state=True, needs_client_cert=True
    )
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        return RefundResult(**base)
    f = answer.fields
    ok, err_code, err_des = _business(f)
    if ok:
        base.update(outcome=Outcome.SUCCESS)
    elif err_code in REFUND_UNKNOWN_CODES or not err_code:
        base.update(outcome=Outcome.UNKNOWN, code=err_code or "NO_ERR_CODE", message=err_des)
    elif err_code in REFUND_TRANSIENT_CODES:
        base.update(outcome=Outcome.TRANSIENT, code=err_code, message=err_des)
    else:
        base.update(outcome=Outcome.REJECTED, code=err_code, message=err_des)
    return RefundResult(
        **base,
        refund_id=f.get("refund_id", ""),
        refund_fee=_int(f.get("refund_fee")),
        transaction_id=f.get("transaction_id", ""),
    )


_REFUND_STATUS_OUTCOMES = {
    "SUCCESS": Outcome.SUCCESS,
    "PROCESSING": Outcome.UNKNOWN,
    "REFUNDCLOSE": Outcome.REJECTED,
    "CHANGE": Outcome.REJECTED,  # refund abnormal (e.g. card closed): a person must arrange it
}


def refundquery(
    config: WechatPayV2Config,
    request: RefundQueryRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> RefundQueryResult:
    if not (request.out_refund_no or request.refund_id or request.transaction_id or request.out_trade_no):
        raise ValueError("one of out_refund_no, refund_id, transaction_id, out_trade_no is required")
    fields = {
        **_common_fields(config),
        "transaction_id": request.transaction_id,
        "out_trade_no": request.out_trade_no,
        "out_refund_no": request.out_refund_no,
        "refund_id": request.refund_id,
    }
    url = config.base_url.rstrip("/") + "/pay/refundquery"
    answer, logged, raw, latency = _call(config, url, fields, client=client, timeouts=timeouts, changes_state=False)
    base = _base(answer, logged, raw, latency)
    if answer.fields is None or answer.code:
        if base["outcome"] is Outcome.REJECTED:
            base["outcome"] = Outcome.TRANSIENT
        return RefundQueryResult(**base)
    f = answer.fields
    ok, err_code, err_des = _business(f)
    if not ok:
        outcome = Outcome.REJECTED if err_code == "REFUNDNOTEXIST" else Outcome.TRANSIENT
        base.update(outcome=outcome, code=err_code or "NO_ERR_CODE", message=err_des)
        return RefundQueryResult(**base)
    refunds = tuple(
        RefundItem(
            out_refund_no=f.get(f"out_refund_no_{n}", ""),
            refund_id=f.get(f"refund_id_{n}", ""),
            refund_fee=_int(f.get(f"refund_fee_{n}")),
            refund_status=f.get(f"refund_status_{n}", ""),
            refund_success_time=f.get(f"refund_success_time_{n}", ""),
        )
        for n in range(_int(f.get("refund_count")) or 0)
    )
    named = request.out_refund_no or request.refund_id
    wanted = next(
        (
            item
            for item in refunds
            if (request.out_refund_no and item.out_refund_no == request.out_refund_no)
            or (request.refund_id and item.refund_id == request.refund_id)
        ),
        # Asked about one refund: another refund's status is not its status. Asked by the payment: the first.
        None if named else (refunds[0] if refunds else None),
    )
    if wanted is None:
        code, message = ("NOT_LISTED", "the refund asked about is not listed") if named else ("NO_REFUNDS", "")
        base.update(outcome=Outcome.TRANSIENT, code=code, message=message or "no refund listed")
        return RefundQueryResult(**base, refunds=refunds)
    outcome = _REFUND_STATUS_OUTCOMES.get(wanted.refund_status, Outcome.UNKNOWN)
    base.update(outcome=outcome, code="" if outcome is Outcome.SUCCESS else wanted.refund_status)
    return RefundQueryResult(**base, refunds=refunds, refund_status=wanted.refund_status)


# --- downloadbill (reconciliation) ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DownloadBillRequest:
    bill_date: str  # yyyyMMdd, China time
    bill_type: str = "ALL"
    gzip: bool = True  # tar_type=GZIP: the bill comes compressed


@dataclass(frozen=True, kw_only=True)
class DownloadBillResult(GatewayResult):
    """SUCCESS: `content` is the bill's text (decompressed). REJECTED with `no_bill`: WeChat has no bill for that day
    ("No Bill Exist": nothing was traded) — an answer, not an error. TRANSIENT: not generated yet ("Bill Creating")
    or the call failed; ask again later. REJECTED otherwise: refused (permissions, parameters)."""

    content: bytes = field(default=b"", repr=False)
    no_bill: bool = False


# return_msg of a downloadbill refusal (WeChat's error table for the call).
NO_BILL_MESSAGES = frozenset({"No Bill Exist"})
BILL_NOT_READY_MESSAGES = frozenset({"Bill Creating", "CompressGZip Error", "UnCompressGZip Error", "SYSTEMERROR"})


def downloadbill(
    config: WechatPayV2Config,
    request: DownloadBillRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> DownloadBillResult:
    """The day's trade bill. A success is the bill itself (text or GZIP, unsigned); a refusal is the usual XML."""

    fields = _prune(
        {
            **_common_fields(config),
            "bill_date": request.bill_date,
            "bill_type": request.bill_type,
            "tar_type": "GZIP" if request.gzip else "",
        }
    )
    fields["sign"] = sign(fields, config.api_key, config.sign_type)
    logged = redact(fields)
    client = client or http.shared_client()
    built = client.build_request(
        "POST",
        config.base_url.rstrip("/") + "/pay/downloadbill",
        content=to_xml(fields).encode("utf-8"),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=timeouts.as_httpx(),
    )
    sent = http.send(client, built, changes_state=False)
    if isinstance(sent, http.TransportFailure):
        return DownloadBillResult(
            outcome=sent.outcome, code=sent.code, message=sent.message, request_fields=logged,
            latency_ms=sent.latency_ms,
        )  # fmt: skip
    base = {"request_fields": logged, "http_status": sent.status, "latency_ms": sent.latency_ms}
    if sent.status != 200:
        return DownloadBillResult(outcome=Outcome.TRANSIENT, code=f"HTTP_{sent.status}", **base)
    body = sent.body
    if body.lstrip()[:5] == b"<xml>":
        try:
            answer = from_xml(body)
        except XmlError as exc:
            return DownloadBillResult(outcome=Outcome.TRANSIENT, code="UNPARSEABLE", message=str(exc), **base)
        message = answer.get("return_msg", "")
        code = answer.get("error_code", "") or answer.get("return_code", "") or "FAIL"
        base["response_fields"] = redact(answer)
        if message in NO_BILL_MESSAGES:
            return DownloadBillResult(outcome=Outcome.REJECTED, code="NO_BILL", message=message, no_bill=True, **base)
        if message in BILL_NOT_READY_MESSAGES or answer.get("return_code") != "FAIL":
            return DownloadBillResult(outcome=Outcome.TRANSIENT, code=code, message=message, **base)
        return DownloadBillResult(outcome=Outcome.REJECTED, code=code, message=message, **base)
    try:
        content = bills.decompressed(body)
    except (OSError, EOFError) as exc:
        return DownloadBillResult(outcome=Outcome.TRANSIENT, code="BAD_GZIP", message=type(exc).__name__, **base)
    return DownloadBillResult(outcome=Outcome.SUCCESS, content=content, **base)
