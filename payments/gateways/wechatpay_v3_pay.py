"""WeChat Pay API v3 payment-code payments (付款码支付): pay, query, reverse, refund, refund query.

The v3 counterparts of wechatpay_v2's micropay, orderquery, reverse, refund and refundquery. Each call's outcome means
exactly what the v2 call's does, so the payment lifecycle (query → reverse → ATTENTION) and the refund lifecycle run
unchanged whichever API a merchant's credentials use. Signing, answer verification and the status-code layer are
wechatpay_v3's (`_call`: every answer's signature is checked there); this module adds the paths and bodies, each
call's mapping of answers to outcomes, and the checks that an answer is about the order it was asked about.

Direct merchant when `config.sub_mchid` is empty. Otherwise the service-provider variant: `mchid` / `appid` are the
provider's (sent as sp_mchid / sp_appid, and the provider signs), `sub_mchid` / `sub_appid` name the merchant.

Rules and the full mapping: docs/protocols.md, "WeChat Pay API v3 payments (付款码)".
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from . import http
from .base import Outcome
from .http import DEFAULT_TIMEOUTS, Timeouts
from .wechatpay_v2 import TRADE_STATE_OUTCOMES
from .wechatpay_v3 import Clock, V3Result, WechatPayV3Config, _call, _json_value

CURRENCY = "CNY"  # domestic merchants settle in CNY only

# codepay refusals after which the user may have been charged: the v3 names of v2's SYSTEMERROR, BANKERROR and
# USERPAYING (WeChat: result unknown, query the order).
CODEPAY_UNKNOWN_CODES = frozenset({"SYSTEM_ERROR", "BANK_ERROR", "USERPAYING"})
USERPAYING = "USERPAYING"
# "No such order" from the order query and the reverse. WeChat's PayScore pages also spell it with a space.
ORDER_NOT_EXIST_CODES = frozenset({"ORDER_NOT_EXIST", "ORDER_NOT_ EXIST"})
# A reverse refused with one of these is simply called again (v2: recall=Y, or USERPAYING whatever recall says).
REVERSE_RETRY_CODES = frozenset({"SYSTEM_ERROR", "USERPAYING", "FREQUENCY_LIMITED"})
# The refund query's "no such refund" (v2: REFUNDNOTEXIST): the refund never reached WeChat, send it again.
REFUND_NOT_EXIST_CODES = frozenset({"RESOURCE_NOT_EXISTS"})
# Refund states that end a refund without money moving back; ABNORMAL is v2's CHANGE (a person must arrange it).
REFUND_ABNORMAL = "ABNORMAL"
REFUND_CLOSED = "CLOSED"

_PAID_STATES = frozenset({"SUCCESS", "REFUND"})
_REFUND_STATUS_OUTCOMES = {
    "SUCCESS": Outcome.SUCCESS,
    "PROCESSING": Outcome.UNKNOWN,
    REFUND_CLOSED: Outcome.REJECTED,
    REFUND_ABNORMAL: Outcome.REJECTED,
}


# --- requests and results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CodepayRequest:
    out_trade_no: str
    total: int  # fen
    description: str
    auth_code: str = field(repr=False)  # payment code or face_code: a one-time credential, stored masked only
    device_ip: str  # scene_info.device_ip
    device_id: str = ""  # scene_info.device_id (the terminal)
    store_id: str = ""  # scene_info.store_info.out_id
    attach: str = ""


@dataclass(frozen=True, kw_only=True)
class TransactionResult(V3Result):
    """codepay: SUCCESS paid; REJECTED not charged; UNKNOWN maybe charged (USERPAYING: the user is entering a
    password), find out by querying; TRANSIENT nothing was sent or WeChat limited the rate, query as well.

    query: what the answer says about the payment, as v2's orderquery: SUCCESS paid (also REFUND), REJECTED
    definitely not paid (CLOSED, REVOKED, PAYERROR; ORDER_NOT_EXIST with `order_exists` False), UNKNOWN still open
    (USERPAYING, NOTPAY), TRANSIENT the query itself failed."""

    transaction_id: str = ""
    trade_state: str = ""  # SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR
    openid: str = ""  # payer's openid (direct: payer.openid; partner: sub_openid if given, else sp_openid)
    order_exists: bool | None = None  # False when WeChat says the order does not exist


@dataclass(frozen=True, kw_only=True)
class ReverseResult(V3Result):
    """SUCCESS reversed (closed if unpaid, refunded if paid); TRANSIENT call again (SYSTEM_ERROR, USERPAYING, rate
    limited); REJECTED stop (ORDER_NOT_EXIST: nothing reached WeChat; anything else: a person must look); UNKNOWN the
    answer was lost or unusable."""

    # v2's recall=Y/N. API v3 answers carry no such field, so this stays None; REVERSE_RETRY_CODES play its part.
    recall: bool | None = None


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    out_refund_no: str
    out_trade_no: str
    transaction_id: str = ""  # sent instead of out_trade_no when known (WeChat takes one of the two)
    total: int  # fen, the payment's total
    refund: int  # fen
    reason: str = ""
    notify_url: str = ""


@dataclass(frozen=True, kw_only=True)
class RefundResult(V3Result):
    """refund: SUCCESS accepted, not done (confirm with refund_query); REJECTED refused; UNKNOWN / TRANSIENT send
    again with the same out_refund_no.

    refund_query: SUCCESS refunded; UNKNOWN PROCESSING; REJECTED CLOSED or ABNORMAL (code = status; ABNORMAL is v2's
    CHANGE: a person must arrange it) or RESOURCE_NOT_EXISTS (`order_exists` False: send the refund again);
    TRANSIENT the query itself failed."""

    refund_id: str = ""
    status: str = ""  # SUCCESS, CLOSED, PROCESSING, ABNORMAL
    order_exists: bool | None = None


# --- shared pieces -----------------------------------------------------------------------------------------------


def _partner(config: WechatPayV3Config) -> bool:
    return bool(config.sub_mchid)


def _ids(config: WechatPayV3Config) -> dict[str, str]:
    """The ids a payment or reverse body carries; empty ones are dropped by `_json_value`."""
    if _partner(config):
        return {
            "sp_appid": config.appid,
            "sp_mchid": config.mchid,
            "sub_appid": config.sub_appid,
            "sub_mchid": config.sub_mchid,
        }
    return {"appid": config.appid, "mchid": config.mchid}


def _merchant_keys(config: WechatPayV3Config) -> tuple[str, ...]:
    # The ids every answer about a transaction carries (WeChat marks them required): who the order belongs to.
    return ("sp_mchid", "sub_mchid") if _partner(config) else ("mchid",)


def _transactions(config: WechatPayV3Config) -> str:
    return "/v3/pay/partner/transactions" if _partner(config) else "/v3/pay/transactions"


def _order_path(config: WechatPayV3Config, out_trade_no: str, action: str = "") -> str:
    return f"{_transactions(config)}/out-trade-no/{quote(out_trade_no, safe='')}{action}"


def _field(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _mismatch(answer: Mapping[str, Any], expected: Mapping[str, Any], *, required: Iterable[str] = ()) -> str:
    """The first way a verified answer is not about the order asked about ("" if none).

    `expected` maps answer fields (dotted for nested ones: "amount.total") to the order's values; empty expected
    values are skipped. A signed answer can be genuine and still be another order's (a proxy or a bug mixing answers
    up), so it must not be applied. A field the answer leaves out is only a problem when it is `required`: an answer
    that settles a payment as paid must say which order, merchant and amount it is about."""
    needed = set(required)
    for path, want in expected.items():
        if want is None or want == "":
            continue
        got = _field(answer, path)
        if got is None or got == "":
            if path in needed:
                return f"{path} missing"
            continue
        if isinstance(want, int):
            same = isinstance(got, int) and not isinstance(got, bool) and got == want
        else:
            same = str(got) == str(want)
        if not same:
            return f"{path}: {str(got)[:64]} (expected {want})"
    return ""


def _unusable(result: dict[str, Any], changes_state: bool, mismatch: str) -> None:
    # As v2: an answer about another order is unusable, a refusal as much as a success (UNKNOWN for the calls that
    # move money, TRANSIENT for queries); it stays in response_fields for support.
    result.update(
        outcome=http.failure_outcome(changes_state),
        code="MISMATCH",
        message=f"the answer is not about this order: {mismatch}"[:255],
    )


def _has_code(result: Mapping[str, Any]) -> bool:
    return bool(result.get("response_fields", {}).get("code"))


def _openid(config: WechatPayV3Config, data: Mapping[str, Any]) -> str:
    payer = data.get("payer") if isinstance(data.get("payer"), Mapping) else {}
    if _partner(config):
        return str(payer.get("sub_openid") or payer.get("sp_openid") or "")
    return str(payer.get("openid") or "")


def _transaction_expected(config: WechatPayV3Config, out_trade_no: str, total: int | None) -> dict[str, Any]:
    expected: dict[str, Any] = {**_ids(config), "out_trade_no": out_trade_no}
    if total is not None:
        expected["amount.total"] = int(total)
    return expected


def _transaction_check(
    config: WechatPayV3Config, data: Mapping[str, Any], out_trade_no: str, total: int | None, *, paid: bool
) -> str:
    required: tuple[str, ...] = ()
    if paid:
        if not data.get("transaction_id"):
            return "transaction_id missing"
        required = (*_merchant_keys(config), "out_trade_no", "amount.total")
    return _mismatch(data, _transaction_expected(config, out_trade_no, total), required=required)


def _transaction_result(
    config: WechatPayV3Config, result: dict[str, Any], data: Mapping[str, Any], **extra: Any
) -> TransactionResult:
    return TransactionResult(
        **result,
        data=dict(data),
        transaction_id=str(data.get("transaction_id") or ""),
        trade_state=str(data.get("trade_state") or ""),
        openid=_openid(config, data),
        **extra,
    )


# --- the calls -----------------------------------------------------------------------------------------------------


def codepay(
    config: WechatPayV3Config,
    request: CodepayRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> TransactionResult:
    """POST /v3/pay/transactions/codepay (partner: /v3/pay/partner/transactions/codepay).

    SUCCESS only for a verified answer with trade_state SUCCESS, a transaction_id, and this order's out_trade_no,
    amount.total and merchant ids. HTTP 202 (or USERPAYING in any form) is UNKNOWN with code USERPAYING.
    """
    store = {"out_id": request.store_id} if request.store_id else None
    payload = _json_value(
        {
            **_ids(config),
            "description": request.description,
            "out_trade_no": request.out_trade_no,
            "attach": request.attach,
            "payer": {"auth_code": request.auth_code},
            "amount": {"total": int(request.total), "currency": CURRENCY},
            "scene_info": {"device_id": request.device_id, "device_ip": request.device_ip, "store_info": store},
        }
    )
    result, data = _call(
        config,
        "POST",
        _transactions(config) + "/codepay",
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    if data is None:
        if result["outcome"] is Outcome.REJECTED and (result["code"] in CODEPAY_UNKNOWN_CODES or not _has_code(result)):
            # As v2: SYSTEMERROR/BANKERROR/USERPAYING, or a refusal that names no reason, may have charged the user.
            result["outcome"] = Outcome.UNKNOWN
        return TransactionResult(**result)
    state = str(data.get("trade_state") or "")
    accepted = result["http_status"] == 202
    mismatch = _transaction_check(
        config, data, request.out_trade_no, request.total, paid=state in _PAID_STATES and not accepted
    )
    if mismatch:
        _unusable(result, True, mismatch)
    elif accepted or state == USERPAYING:
        # 202: WeChat took the order but the user must still confirm (password): query it.
        result.update(outcome=Outcome.UNKNOWN, code=USERPAYING, message=str(data.get("trade_state_desc") or ""))
    else:
        # Our reading: a 200 answer normally says SUCCESS; any other state is read like the order query's.
        outcome = TRADE_STATE_OUTCOMES.get(state, Outcome.UNKNOWN)
        result.update(
            outcome=outcome,
            code="" if outcome is Outcome.SUCCESS else (state or "NO_TRADE_STATE"),
            message=str(data.get("trade_state_desc") or ""),
        )
    return _transaction_result(config, result, data)


def query(
    config: WechatPayV3Config,
    *,
    out_trade_no: str,
    total: int | None = None,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> TransactionResult:
    """GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=… (partner: /v3/pay/partner/transactions/
    out-trade-no/{out_trade_no}?sp_mchid=…&sub_mchid=…).

    `total`: the order's amount (fen), not sent; an answer naming another amount is unusable (TRANSIENT, MISMATCH).
    """
    params = {"sp_mchid": config.mchid, "sub_mchid": config.sub_mchid} if _partner(config) else {"mchid": config.mchid}
    result, data = _call(
        config,
        "GET",
        f"{_order_path(config, out_trade_no)}?{urlencode(params)}",
        None,
        client=client,
        timeouts=timeouts,
        changes_state=False,
        clock=clock,
    )
    if data is None:
        if result["outcome"] is Outcome.REJECTED:
            if result["code"] in ORDER_NOT_EXIST_CODES:
                # Definite: WeChat has no such order. (Right after a lost payment call it may not have recorded it
                # yet: the services leave the payment open until the reverse settles it, as with v2.)
                return TransactionResult(**result, order_exists=False)
            # A refused *query* says nothing about the payment.
            result["outcome"] = Outcome.TRANSIENT
        return TransactionResult(**result)
    state = str(data.get("trade_state") or "")
    mismatch = _transaction_check(config, data, out_trade_no, total, paid=state in _PAID_STATES)
    if mismatch:
        _unusable(result, False, mismatch)
        return _transaction_result(config, result, data)
    outcome = TRADE_STATE_OUTCOMES.get(state, Outcome.UNKNOWN)
    result.update(
        outcome=outcome,
        code="" if outcome is Outcome.SUCCESS else (state or "NO_TRADE_STATE"),
        message=str(data.get("trade_state_desc") or ""),
    )
    return _transaction_result(config, result, data, order_exists=True)


def reverse(
    config: WechatPayV3Config,
    *,
    out_trade_no: str,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> ReverseResult:
    """POST /v3/pay/transactions/out-trade-no/{out_trade_no}/reverse with {appid, mchid} (partner: /v3/pay/partner/
    transactions/out-trade-no/{out_trade_no}/reverse with {sp_appid, sp_mchid, sub_appid, sub_mchid}).

    WeChat answers 200 with the order's ids; an empty 2xx body is taken as success too (our reading: nothing to
    compare, the status says it was done). Ids the answer does carry must be this order's.
    """
    result, data = _call(
        config,
        "POST",
        _order_path(config, out_trade_no, "/reverse"),
        _json_value(_ids(config)),
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    if data is None:
        if result["code"] in REVERSE_RETRY_CODES:
            # Codes only come from verified answers (or transport trouble, never in this set). WeChat's advice for
            # SYSTEM_ERROR is to call again; USERPAYING clears once the user finishes or WeChat closes the order.
            result["outcome"] = Outcome.TRANSIENT
        return ReverseResult(**result)
    mismatch = _mismatch(data, {**_ids(config), "out_trade_no": out_trade_no})
    if mismatch:
        _unusable(result, True, mismatch)
    return ReverseResult(**result, data=data)


def refund(
    config: WechatPayV3Config,
    request: RefundRequest,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> RefundResult:
    """POST /v3/refund/domestic/refunds (both modes; the partner names the merchant with sub_mchid).

    A verified 2xx is SUCCESS (accepted) whatever its status; refund_query settles it. The answer must name this
    out_refund_no and refund amount.
    """
    payload = _json_value(
        {
            "sub_mchid": config.sub_mchid,
            "transaction_id": request.transaction_id,
            "out_trade_no": "" if request.transaction_id else request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "reason": request.reason,
            "notify_url": request.notify_url,
            "amount": {"refund": int(request.refund), "total": int(request.total), "currency": CURRENCY},
        }
    )
    result, data = _call(
        config,
        "POST",
        "/v3/refund/domestic/refunds",
        payload,
        client=client,
        timeouts=timeouts,
        changes_state=True,
        clock=clock,
    )
    if data is None:
        if result["outcome"] is Outcome.REJECTED and not _has_code(result):
            # As v2 (result_code FAIL without err_code): a refusal that names no reason leaves the refund undecided.
            result["outcome"] = Outcome.UNKNOWN
        return RefundResult(**result)
    expected = {
        "out_refund_no": request.out_refund_no,
        "out_trade_no": request.out_trade_no,
        "transaction_id": request.transaction_id,
        "amount.refund": int(request.refund),
        "amount.total": int(request.total),
    }
    mismatch = _mismatch(data, expected, required=("out_refund_no", "amount.refund"))
    if mismatch:
        _unusable(result, True, mismatch)
    return RefundResult(
        **result,
        data=data,
        refund_id=str(data.get("refund_id") or ""),
        status=str(data.get("status") or ""),
    )


def refund_query(
    config: WechatPayV3Config,
    *,
    out_refund_no: str,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> RefundResult:
    """GET /v3/refund/domestic/refunds/{out_refund_no} (partner: + ?sub_mchid=…)."""
    path = f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"
    if _partner(config):
        path += "?" + urlencode({"sub_mchid": config.sub_mchid})
    result, data = _call(config, "GET", path, None, client=client, timeouts=timeouts, changes_state=False, clock=clock)
    if data is None:
        if result["outcome"] is Outcome.REJECTED:
            if result["code"] in REFUND_NOT_EXIST_CODES:
                return RefundResult(**result, order_exists=False)
            result["outcome"] = Outcome.TRANSIENT
        return RefundResult(**result)
    mismatch = _mismatch(data, {"out_refund_no": out_refund_no}, required=("out_refund_no",))
    status = str(data.get("status") or "")
    if mismatch:
        # v2's NOT_LISTED: another refund's status is not this refund's.
        _unusable(result, False, mismatch)
        return RefundResult(**result, data=data, refund_id=str(data.get("refund_id") or ""), status=status)
    outcome = _REFUND_STATUS_OUTCOMES.get(status, Outcome.UNKNOWN)
    result.update(outcome=outcome, code="" if outcome is Outcome.SUCCESS else (status or "NO_STATUS"))
    return RefundResult(
        **result, data=data, refund_id=str(data.get("refund_id") or ""), status=status, order_exists=True
    )
