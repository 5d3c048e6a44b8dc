"""WeChat Pay API v3 stand-in for payment-code payments (付款码支付), their query and reverse, and domestic refunds,
for direct merchants and service providers (partner paths, sp_mchid + sub_mchid).

The order book and its rules are sandbox/wechat_trade.py's, shared with the v2 endpoints: the same scenarios (amount
code, preset, X-Sandbox-Scenario header), the same settle and refund timing, the same bills and ledger; an order
paid over v2 can be queried or refunded over v3 and the other way round. This module speaks v3's words for them:

- codepay: 200 + the transaction when paid; 202 {"code": "USERPAYING", "message"} while the user enters the
  password (the error-table form; then query); a failed payment as {code, message} with its HTTP status (403
  NOT_ENOUGH, 403 TRADE_ERROR for an expired payment code, 500 BANK_ERROR, 500 SYSTEM_ERROR — charged all the same,
  as v2's SYSTEMERROR scenario).
- query by out_trade_no: 200 + the transaction; 404 ORDER_NOT_EXIST.
- reverse: 200 {appid, mchid, out_trade_no} (partner: sp_/sub_ ids); a refusal as {code, message}.
- refunds: 200 + the refund (status PROCESSING, then SUCCESS once done); 404 RESOURCE_NOT_EXISTS.

Every request's Authorization is verified (sandbox/v3_http.py); one that does not verify gets an unsigned 401, as
WeChat signs only answers to requests it authenticated. Every other answer to a known merchant is signed. The ids in
the body or query must be the signer's: mchid / sp_mchid the Authorization's mchid (403 NO_AUTH), sub_mchid one of its
sub-merchants (403 NO_AUTH), appid / sp_appid the one bound to it (400 APPID_MCHID_NOT_MATCH). Malformed input is 400
PARAM_ERROR.

Where WeChat's documents do not say which code a refusal carries, the sandbox chooses the nearest documented one:
a repeated out_trade_no is 403 OUT_TRADE_NO_USED (another amount, or a failed order), 400 ORDER_PAID / ORDER_REVERSED
/ ORDER_CLOSED, or 202 USERPAYING; a reverse refused is 500 SYSTEM_ERROR (the REVERSE_RECALL_ONCE scenario: call
again), 403 TRADE_ERROR (too old, or already refunded: refund instead) or 403 USERPAYING (the user is still paying:
call again later); an out_trade_no WeChat never saw reverses with 200 (nothing to undo), as over v2.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import book, chaos, identity, scenarios, v3_http
from . import wechat_trade as trade
from .models import SandboxWechatMerchant, SandboxWechatOrder, SandboxWechatRefund
from .scenarios import Scenario
from .v3_http import ApiError
from .wechat_trade import Refusal

State = SandboxWechatOrder.State
# WeChat: out_trade_no is at most 32 of digits, letters, _ - * (and | on the newer pages); out_refund_no 64 of those
# and @.
_OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{1,32}")
_OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_MAX_FEN = 2**31 - 1

_PAY_FAILURES: dict[Scenario, tuple[int, str, str]] = {
    Scenario.SYSTEMERROR_PAID: (500, "SYSTEM_ERROR", "系统繁忙，请稍后查询订单"),
    Scenario.NOTENOUGH: (403, "NOT_ENOUGH", "用户账号余额不足"),
    Scenario.AUTHCODEEXPIRE: (403, "TRADE_ERROR", "二维码已过期，请用户在微信上刷新后再试"),
    Scenario.BANKERROR_NOT_PAID: (500, "BANK_ERROR", "银行系统异常"),
}
_USERPAYING = (202, "USERPAYING", "用户支付中，需要输入密码")
_REFUSALS: dict[Refusal, tuple[int, str, str]] = {
    Refusal.ORDER_NOT_FOUND: (404, "ORDER_NOT_EXIST", "订单不存在"),
    Refusal.OUT_TRADE_NO_USED: (403, "OUT_TRADE_NO_USED", "商户订单号重复"),
    Refusal.ORDER_PAID: (400, "ORDER_PAID", "订单已支付"),
    Refusal.ORDER_REVERSED: (400, "ORDER_REVERSED", "订单已撤销"),
    Refusal.ORDER_CLOSED: (400, "ORDER_CLOSED", "订单已关闭"),
    Refusal.USERPAYING: _USERPAYING,
    Refusal.REVERSE_RETRY: (500, "SYSTEM_ERROR", "系统超时，请重新调用撤销"),
    Refusal.REVERSE_EXPIRED: (403, "TRADE_ERROR", "订单已超过撤销期限，请使用退款"),
    Refusal.REVERSE_REFUNDED: (403, "TRADE_ERROR", "订单已退款，不能撤销"),
    Refusal.REVERSE_USERPAYING: (403, "USERPAYING", "用户支付中，请稍后再撤销"),
    Refusal.REFUND_AMOUNT_CHANGED: (400, "INVALID_REQUEST", "同一退款单号退款金额不一致"),
    Refusal.REFUND_NOT_PAID: (400, "INVALID_REQUEST", "订单未支付成功，不能退款"),
    Refusal.REFUND_TOTAL_DIFFERS: (400, "INVALID_REQUEST", "订单金额与原订单不一致"),
    Refusal.REFUND_EXCEEDS: (400, "INVALID_REQUEST", "累计退款金额大于支付金额"),
}
# A refund of an order WeChat does not know: the refund API's own code for it.
_REFUND_ORDER_NOT_FOUND = (404, "RESOURCE_NOT_EXISTS", "订单不存在")


def _endpoint(methods: set[str]) -> Callable:
    """Authenticate, then run the view with the v3 chaos (chaos.py), answering ApiError, trade refusals and unknown
    scenarios as signed JSON."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable:
        @csrf_exempt
        def wrapper(request: HttpRequest, **kwargs: str) -> HttpResponse:
            if request.method not in methods:
                return v3_http.unsigned(405, "METHOD_NOT_ALLOWED", "method not allowed")
            merchant = v3_http.authenticate(request, sign_refusal=False)
            if isinstance(merchant, HttpResponse):
                return merchant

            def process() -> HttpResponse:
                try:
                    return view(request, merchant, **kwargs)
                except ApiError as exc:
                    return v3_http.error(merchant, exc.status, exc.code, exc.message)
                except trade.Refused as refused:
                    return v3_http.error(merchant, *_REFUSALS[refused.reason])
                except scenarios.UnknownScenario as exc:
                    return v3_http.error(merchant, 400, "PARAM_ERROR", str(exc))

            return chaos.apply(request, process, spoil=chaos.spoil_v3_signature, partial=b'{"code":')

        wrapper.__name__ = view.__name__
        return wrapper

    return decorate


# --- input -------------------------------------------------------------------------------------------------------


def _param_error(message: str) -> ApiError:
    return ApiError(400, "PARAM_ERROR", message)


def _body(request: HttpRequest) -> dict[str, Any]:
    body = v3_http.json_body(request)
    if body is None:
        raise _param_error("请求体不是JSON对象")
    return body


def _string(values: Mapping[str, Any], name: str, *, max_length: int, required: bool = True) -> str:
    value = values.get(name)
    if value is None or value == "":
        if required:
            raise _param_error(f"缺少参数{name}")
        return ""
    if not isinstance(value, str):
        raise _param_error(f"{name}应为字符串")
    if len(value) > max_length:
        raise _param_error(f"{name}长度不能超过{max_length}")
    return value


def _object(values: Mapping[str, Any], name: str, *, required: bool = True) -> dict[str, Any]:
    value = values.get(name)
    if value is None:
        if required:
            raise _param_error(f"缺少参数{name}")
        return {}
    if not isinstance(value, dict):
        raise _param_error(f"{name}应为对象")
    return value


def _fen(values: Mapping[str, Any], name: str) -> int:
    value = values.get(name)
    if value is None:
        raise _param_error(f"缺少参数{name}")
    # Amounts are JSON integers: not "100", not 1.0, not true.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_FEN:
        raise _param_error(f"{name}应为大于0的整数（分）")
    return value


def _currency(amount: Mapping[str, Any], *, required: bool) -> None:
    currency = _string(amount, "currency", max_length=16, required=required)
    if currency and currency != "CNY":
        raise _param_error("currency仅支持CNY")


def _out_trade_no(value: str) -> str:
    if not _OUT_TRADE_NO.fullmatch(value):
        raise _param_error("out_trade_no应为1-32位数字、字母或_-|*")
    return value


@dataclass(frozen=True)
class Payee:
    """Whose order a call is about: the signer, and for a partner call its sub-merchant."""

    merchant: SandboxWechatMerchant
    sub_mch_id: str = ""
    sub_appid: str = ""

    @property
    def partner(self) -> bool:
        return bool(self.sub_mch_id)


def _own_mchid(merchant: SandboxWechatMerchant, values: Mapping[str, Any], name: str) -> None:
    if _string(values, name, max_length=32) != merchant.mch_id:
        raise ApiError(403, "NO_AUTH", f"{name}与签名商户号不一致")


def _own_appid(merchant: SandboxWechatMerchant, values: Mapping[str, Any], name: str, *, required: bool) -> None:
    appid = _string(values, name, max_length=32, required=required)
    if appid and appid != merchant.appid:
        raise ApiError(400, "APPID_MCHID_NOT_MATCH", f"{name}和商户号不匹配")


def _sub_mchid(merchant: SandboxWechatMerchant, values: Mapping[str, Any], *, required: bool) -> str:
    sub_mchid = _string(values, "sub_mchid", max_length=32, required=required)
    if sub_mchid and not merchant.sub_merchants.filter(sub_mch_id=sub_mchid).exists():
        raise ApiError(403, "NO_AUTH", "sub_mchid不是该服务商的特约商户")
    return sub_mchid


def _direct(merchant: SandboxWechatMerchant, values: Mapping[str, Any], *, appid_required: bool) -> Payee:
    _own_mchid(merchant, values, "mchid")
    _own_appid(merchant, values, "appid", required=appid_required)
    return Payee(merchant)


def _partner(merchant: SandboxWechatMerchant, values: Mapping[str, Any], *, sp_appid_required: bool) -> Payee:
    _own_mchid(merchant, values, "sp_mchid")
    _own_appid(merchant, values, "sp_appid", required=sp_appid_required)
    sub_mchid = _sub_mchid(merchant, values, required=True)
    return Payee(merchant, sub_mchid, _string(values, "sub_appid", max_length=32, required=False))


# --- answers -----------------------------------------------------------------------------------------------------


def _ids(payee: Payee, order: SandboxWechatOrder | None = None) -> dict[str, str]:
    merchant = payee.merchant
    if not payee.partner:
        return {"appid": merchant.appid, "mchid": merchant.mch_id}
    ids = {"sp_appid": merchant.appid, "sp_mchid": merchant.mch_id, "sub_mchid": payee.sub_mch_id}
    # The order's appid is the sub_appid it was paid under, if any (wechat_trade.pay).
    sub_appid = payee.sub_appid or (order.appid if order is not None and order.appid != merchant.appid else "")
    if sub_appid:
        ids["sub_appid"] = sub_appid
    return ids


def _transaction(payee: Payee, order: SandboxWechatOrder) -> dict[str, Any]:
    """The transaction as codepay and the query answer it. Payment details (transaction_id, payer, success_time,
    attach…) only once paid, as WeChat documents them."""
    data: dict[str, Any] = {
        **_ids(payee, order),
        "out_trade_no": order.out_trade_no,
        "trade_type": "MICROPAY",
        "trade_state": order.state,
        "trade_state_desc": trade.TRADE_STATE_DESC[State(order.state)],
        "amount": {"total": order.total_fee, "currency": "CNY"},
    }
    if order.paid_at is not None:
        data["transaction_id"] = order.transaction_id
    if order.paid_at is not None and order.state in (State.SUCCESS, State.REFUND):
        data.update(
            {
                "bank_type": "OTHERS",
                "success_time": book.rfc3339(order.paid_at),
                "amount": {
                    "total": order.total_fee,
                    "payer_total": order.total_fee,
                    "currency": "CNY",
                    "payer_currency": "CNY",
                },
            }
        )
        if payee.partner:
            payer = {"sp_openid": order.openid}
            if order.sub_openid:
                payer["sub_openid"] = order.sub_openid
            data["payer"] = payer
        else:
            data["payer"] = {"openid": order.openid}
        if order.attach:
            data["attach"] = order.attach
    if order.device_info:
        data["scene_info"] = {"device_id": order.device_info}
    return data


def _pay_answer(payee: Payee, order: SandboxWechatOrder) -> HttpResponse:
    failure = trade.pay_failure(order)
    if failure is not None:
        return v3_http.error(payee.merchant, *_PAY_FAILURES[failure])
    if order.state == State.USERPAYING:
        return v3_http.error(payee.merchant, *_USERPAYING)
    return v3_http.signed(payee.merchant, 200, _transaction(payee, order))


# --- codepay -----------------------------------------------------------------------------------------------------


def _codepay(request: HttpRequest, payee: Payee, body: Mapping[str, Any]) -> HttpResponse:
    description = _string(body, "description", max_length=127)
    out_trade_no = _out_trade_no(_string(body, "out_trade_no", max_length=32))
    attach = _string(body, "attach", max_length=128, required=False)
    amount = _object(body, "amount")
    total = _fen(amount, "total")
    _currency(amount, required=False)
    auth_code = _string(_object(body, "payer"), "auth_code", max_length=128)
    if not identity.is_wechat_payment_code(auth_code):
        raise _param_error("付款码无效，请扫描微信支付付款码(以10、11、12、13、14、15开头的18位数字)")
    scene_info = _object(body, "scene_info")
    _string(scene_info, "device_ip", max_length=45)
    device_id = _string(scene_info, "device_id", max_length=32, required=False)
    store_info = _object(scene_info, "store_info", required=False)
    _string(store_info, "out_id", max_length=32, required=False)
    order = trade.pay(
        trade.PayRequest(
            mch_id=payee.merchant.mch_id,
            sub_mch_id=payee.sub_mch_id,
            appid=payee.merchant.appid,
            sub_appid=payee.sub_appid,
            out_trade_no=out_trade_no,
            total_fee=total,
            body=description,
            attach=attach,
            device_info=device_id,
            auth_code=auth_code,
            scenario_header=request.META.get(scenarios.META_HEADER),
        )
    )
    return _pay_answer(payee, order)


@_endpoint({"POST"})
def codepay(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    body = _body(request)
    return _codepay(request, _direct(merchant, body, appid_required=True), body)


@_endpoint({"POST"})
def partner_codepay(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    body = _body(request)
    return _codepay(request, _partner(merchant, body, sp_appid_required=True), body)


# --- query by out_trade_no / reverse -----------------------------------------------------------------------------


def _query(payee: Payee, out_trade_no: str) -> HttpResponse:
    order = trade.query(
        mch_id=payee.merchant.mch_id, sub_mch_id=payee.sub_mch_id, out_trade_no=_out_trade_no(out_trade_no)
    )
    return v3_http.signed(payee.merchant, 200, _transaction(payee, order))


@_endpoint({"GET"})
def query(request: HttpRequest, merchant: SandboxWechatMerchant, out_trade_no: str) -> HttpResponse:
    return _query(_direct(merchant, request.GET, appid_required=False), out_trade_no)


@_endpoint({"GET"})
def partner_query(request: HttpRequest, merchant: SandboxWechatMerchant, out_trade_no: str) -> HttpResponse:
    return _query(_partner(merchant, request.GET, sp_appid_required=False), out_trade_no)


def _reverse(payee: Payee, out_trade_no: str) -> HttpResponse:
    trade.reverse(mch_id=payee.merchant.mch_id, sub_mch_id=payee.sub_mch_id, out_trade_no=_out_trade_no(out_trade_no))
    return v3_http.signed(payee.merchant, 200, {**_ids(payee), "out_trade_no": out_trade_no})


@_endpoint({"POST"})
def reverse(request: HttpRequest, merchant: SandboxWechatMerchant, out_trade_no: str) -> HttpResponse:
    return _reverse(_direct(merchant, _body(request), appid_required=True), out_trade_no)


@_endpoint({"POST"})
def partner_reverse(request: HttpRequest, merchant: SandboxWechatMerchant, out_trade_no: str) -> HttpResponse:
    return _reverse(_partner(merchant, _body(request), sp_appid_required=False), out_trade_no)


# --- refunds -----------------------------------------------------------------------------------------------------


def _refund_json(order: SandboxWechatOrder, refund: SandboxWechatRefund) -> dict[str, Any]:
    data: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": book.rfc3339(refund.created_at),
        "status": refund.state,
        "funds_account": "AVAILABLE",
        "amount": {
            "total": order.total_fee,
            "refund": refund.refund_fee,
            "from": [],
            "payer_total": order.total_fee,
            "payer_refund": refund.refund_fee,
            "settlement_refund": refund.refund_fee,
            "settlement_total": order.total_fee,
            "discount_refund": 0,
            "currency": "CNY",
        },
        "promotion_detail": [],
    }
    if refund.succeeded_at is not None:
        data["success_time"] = book.rfc3339(refund.succeeded_at)
    return data


@_endpoint({"POST"})
def refunds(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    """申请退款. With sub_mchid: a sub-merchant's order (the provider signs); without: the signer's own. The
    notify_url is accepted but no refund notification is sent."""
    body = _body(request)
    sub_mchid = _sub_mchid(merchant, body, required=False)
    transaction_id = _string(body, "transaction_id", max_length=32, required=False)
    out_trade_no = _string(body, "out_trade_no", max_length=32, required=False)
    if not (transaction_id or out_trade_no):
        raise _param_error("transaction_id和out_trade_no必须二选一")
    out_refund_no = _string(body, "out_refund_no", max_length=64)
    if not _OUT_REFUND_NO.fullmatch(out_refund_no):
        raise _param_error("out_refund_no应为1-64位数字、字母或_-|*@")
    _string(body, "reason", max_length=80, required=False)
    _string(body, "notify_url", max_length=256, required=False)
    amount = _object(body, "amount")
    refund_fee, total = _fen(amount, "refund"), _fen(amount, "total")
    _currency(amount, required=True)
    try:
        order, accepted = trade.refund(
            trade.RefundRequest(
                mch_id=merchant.mch_id,
                sub_mch_id=sub_mchid,
                transaction_id=transaction_id,
                out_trade_no=out_trade_no,
                out_refund_no=out_refund_no,
                total_fee=total,
                refund_fee=refund_fee,
            )
        )
    except trade.Refused as refused:
        if refused.reason == Refusal.ORDER_NOT_FOUND:
            return v3_http.error(merchant, *_REFUND_ORDER_NOT_FOUND)
        raise
    return v3_http.signed(merchant, 200, _refund_json(order, accepted))


@_endpoint({"GET"})
def refund_query(request: HttpRequest, merchant: SandboxWechatMerchant, out_refund_no: str) -> HttpResponse:
    """查询单笔退款（按商户退款单号）; `?sub_mchid=` for a sub-merchant's refund."""
    sub_mchid = _sub_mchid(merchant, request.GET, required=False)
    found = trade.find_refund(mch_id=merchant.mch_id, sub_mch_id=sub_mchid, out_refund_no=out_refund_no)
    if found is None:
        return v3_http.error(merchant, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    return v3_http.signed(merchant, 200, _refund_json(found.order, found))
