"""WeChat Pay API v2 stand-in (XML): get_wxpayface_authinfo, micropay, orderquery, reverse, refund, refundquery.
The order book's rules (scenarios, repeats, reverse and refund conditions) are sandbox/wechat_trade.py's, shared
with the v3 endpoints; this module speaks v2's words for them.

Requests are checked like WeChat does: POST only, flat XML, known mch_id, appid bound to it, sub_mch_id registered
under the provider, `sign` recomputed with the registered API v2 key and the declared `sign_type` (MD5 default).
Communication-layer refusals are `return_code FAIL` and unsigned; business answers are signed with the request's
sign_type.

Limitation: the sandbox is plain HTTP, so it cannot check the mutual-TLS client certificate that `secapi/*`
(reverse, refund) require at WeChat. A client that forgets its certificate works here and fails in production.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.gateways import wechatpay_v2 as v2

from . import bills as bill_book
from . import book, chaos, clock, identity, scenarios
from . import wechat_trade as trade
from .models import SandboxAuthinfo, SandboxWechatMerchant, SandboxWechatOrder, SandboxWechatRefund
from .scenarios import Scenario
from .wechat_trade import Refusal

State = SandboxWechatOrder.State
AUTHINFO_EXPIRES_IN = 3600


@dataclass
class Call:
    merchant: SandboxWechatMerchant
    fields: dict[str, str]
    sign_type: v2.SignType
    sub_mch_id: str
    scenario_header: str | None


def _xml(fields: dict[str, str]) -> HttpResponse:
    return HttpResponse(v2.to_xml(fields), content_type="text/xml; charset=utf-8")


def _fail(message: str) -> HttpResponse:
    return _xml({"return_code": "FAIL", "return_msg": message})


def _authenticate(request: HttpRequest, *, sign_type_required: bool = False) -> Call | HttpResponse:
    try:
        fields = v2.from_xml(request.body)
    except v2.XmlError:
        return _fail("XML格式错误")
    try:
        merchant = SandboxWechatMerchant.objects.get(mch_id=fields.get("mch_id", ""))
    except SandboxWechatMerchant.DoesNotExist:
        return _fail("商户号mch_id不存在")
    if fields.get("appid") != merchant.appid:
        return _fail("appid和mch_id不匹配")
    declared = fields.get("sign_type", "")
    if sign_type_required and not declared:
        return _fail("缺少参数sign_type")
    try:
        sign_type = v2.SignType(declared or "MD5")
    except ValueError:
        return _fail("签名类型错误")
    received = fields.get("sign", "")
    expected = v2.sign(fields, merchant.api_v2_key.reveal(), sign_type)
    if not received or not hmac.compare_digest(expected, received):
        return _fail("签名错误")
    sub_mch_id = fields.get("sub_mch_id", "")
    if sub_mch_id and not merchant.sub_merchants.filter(sub_mch_id=sub_mch_id).exists():
        return _fail("sub_mch_id与mch_id不匹配")
    return Call(merchant, fields, sign_type, sub_mch_id, request.META.get(scenarios.META_HEADER))


def _answer(call: Call, fields: dict[str, object]) -> HttpResponse:
    common = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": call.merchant.appid,
        "mch_id": call.merchant.mch_id,
        "sub_appid": call.fields.get("sub_appid", ""),
        "sub_mch_id": call.sub_mch_id,
        "nonce_str": v2.nonce_str(),
    }
    answer = {k: str(v) for k, v in {**common, **fields}.items() if v is not None and v != ""}
    answer["sign"] = v2.sign(answer, call.merchant.api_v2_key.reveal(), call.sign_type)
    return _xml(answer)


def _error(call: Call, err_code: str, err_code_des: str, **extra: object) -> HttpResponse:
    return _answer(call, {"result_code": "FAIL", "err_code": err_code, "err_code_des": err_code_des, **extra})


def _endpoint(
    view: Callable[[Call], HttpResponse], *, sign_type_required: bool = False, has_chaos: bool = False
) -> Callable:
    """`has_chaos`: the endpoint misbehaves for a fraction of calls when SANDBOX_CHAOS is set (chaos.py)."""

    @csrf_exempt
    @require_POST
    def wrapper(request: HttpRequest) -> HttpResponse:
        call = _authenticate(request, sign_type_required=sign_type_required)
        if isinstance(call, HttpResponse):
            return call

        def process() -> HttpResponse:
            try:
                return view(call)
            except scenarios.UnknownScenario as exc:
                return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")

        if has_chaos:
            return chaos.apply(request, process, spoil=chaos.spoil_v2_signature)
        return process()

    wrapper.__name__ = view.__name__
    return wrapper


def _china_time(moment) -> str:
    return book.china_time(moment, "%Y%m%d%H%M%S")


# --- face authinfo -----------------------------------------------------------------------------------------------


def _authinfo(call: Call) -> HttpResponse:
    required = ("store_id", "store_name", "device_id", "rawdata", "now", "version")
    missing = [n for n in required if not call.fields.get(n)]
    if missing:
        return _fail("缺少参数" + ",".join(missing))
    authinfo = identity.random_token(96)
    SandboxAuthinfo.objects.create(
        authinfo=authinfo,
        appid=call.fields.get("sub_appid") or call.merchant.appid,
        mch_id=call.merchant.mch_id,
        sub_mch_id=call.sub_mch_id,
        expires_at=clock.now() + timedelta(seconds=AUTHINFO_EXPIRES_IN),
    )
    # No result_code on this endpoint: return_code SUCCESS carries the authinfo.
    return _answer(call, {"return_msg": "请求成功", "authinfo": authinfo, "expires_in": AUTHINFO_EXPIRES_IN})


get_wxpayface_authinfo = _endpoint(_authinfo, sign_type_required=True)


# --- micropay ----------------------------------------------------------------------------------------------------

_MICROPAY_FAILURES = {
    Scenario.SYSTEMERROR_PAID: ("SYSTEMERROR", "系统超时"),
    Scenario.NOTENOUGH: ("NOTENOUGH", "余额不足"),
    Scenario.AUTHCODEEXPIRE: ("AUTHCODEEXPIRE", "二维码已过期，请用户在微信上刷新后再试"),
    Scenario.BANKERROR_NOT_PAID: ("BANKERROR", "银行系统异常"),
}
_REPEAT_ERRORS = {
    Refusal.OUT_TRADE_NO_USED: ("OUT_TRADE_NO_USED", "商户订单号重复"),
    Refusal.ORDER_PAID: ("ORDERPAID", "订单已支付"),
    Refusal.ORDER_REVERSED: ("ORDERREVERSED", "订单已撤销"),
    Refusal.ORDER_CLOSED: ("ORDERCLOSED", "订单已关闭"),
    Refusal.USERPAYING: ("USERPAYING", "需要用户输入支付密码"),
}


def _paid_fields(order: SandboxWechatOrder) -> dict[str, object]:
    return {
        "openid": order.openid,
        "is_subscribe": "N",
        "trade_type": "MICROPAY",
        "bank_type": "OTHERS",
        "fee_type": "CNY",
        "total_fee": order.total_fee,
        "cash_fee_type": "CNY",
        "cash_fee": order.total_fee,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "attach": order.attach,
        "device_info": order.device_info,
        "time_end": _china_time(order.paid_at),
    }


def _micropay(call: Call) -> HttpResponse:
    f = call.fields
    missing = [n for n in ("body", "out_trade_no", "total_fee", "spbill_create_ip", "auth_code") if not f.get(n)]
    if missing:
        return _error(call, "PARAM_ERROR", "缺少参数" + ",".join(missing))
    if not f["total_fee"].isdigit() or int(f["total_fee"]) <= 0:
        return _error(call, "PARAM_ERROR", "total_fee参数错误")
    if not identity.is_wechat_payment_code(f["auth_code"]):
        return _error(call, "AUTH_CODE_INVALID", "请扫描微信支付授权码(以10、11、12、13、14、15开头的18位数字)")
    try:
        order = trade.pay(
            trade.PayRequest(
                mch_id=call.merchant.mch_id,
                sub_mch_id=call.sub_mch_id,
                appid=call.merchant.appid,
                sub_appid=f.get("sub_appid", ""),
                out_trade_no=f["out_trade_no"],
                total_fee=int(f["total_fee"]),
                body=f["body"],
                attach=f.get("attach", ""),
                device_info=f.get("device_info", ""),
                auth_code=f["auth_code"],
                scenario_header=call.scenario_header,
            )
        )
    except trade.Refused as refused:
        return _error(call, *_REPEAT_ERRORS[refused.reason])
    failure = trade.pay_failure(order)
    if failure is not None:
        return _error(call, *_MICROPAY_FAILURES[failure])
    if order.state == State.USERPAYING:
        return _error(call, "USERPAYING", "需要用户输入支付密码")
    return _answer(call, {"result_code": "SUCCESS", **_paid_fields(order)})


micropay = _endpoint(_micropay, has_chaos=True)


# --- orderquery / reverse ----------------------------------------------------------------------------------------


def _order_keys(call: Call) -> dict[str, str]:
    return {
        "mch_id": call.merchant.mch_id,
        "sub_mch_id": call.sub_mch_id,
        "transaction_id": call.fields.get("transaction_id", ""),
        "out_trade_no": call.fields.get("out_trade_no", ""),
    }


def _orderquery(call: Call) -> HttpResponse:
    if not (call.fields.get("transaction_id") or call.fields.get("out_trade_no")):
        return _error(call, "PARAM_ERROR", "transaction_id或out_trade_no必填")
    try:
        order = trade.query(**_order_keys(call))
    except trade.Refused:
        return _error(call, "ORDERNOTEXIST", "此交易订单号不存在")
    fields: dict[str, object] = {
        "result_code": "SUCCESS",
        "trade_state": order.state,
        "trade_state_desc": trade.TRADE_STATE_DESC[State(order.state)],
        "out_trade_no": order.out_trade_no,
        "transaction_id": order.transaction_id,
        "total_fee": order.total_fee,
        "device_info": order.device_info,
        "attach": order.attach,
        "trade_type": "MICROPAY",
    }
    if order.paid_at is not None and order.state in (State.SUCCESS, State.REFUND):
        fields.update(_paid_fields(order))
    return _answer(call, fields)


orderquery = _endpoint(_orderquery, has_chaos=True)

_REVERSE_ERRORS = {
    Refusal.REVERSE_RETRY: ("SYSTEMERROR", "系统超时", "Y"),
    Refusal.REVERSE_EXPIRED: ("REVERSE_EXPIRE", "订单无法撤销", "N"),
    Refusal.REVERSE_REFUNDED: ("TRADE_ERROR", "订单已退款，不能撤销", "N"),
    # WeChat's documents give no recall value for this refusal; Y — ask again — is what a merchant must do.
    Refusal.REVERSE_USERPAYING: ("USERPAYING", "用户支付中", "Y"),
}


def _reverse(call: Call) -> HttpResponse:
    if not (call.fields.get("transaction_id") or call.fields.get("out_trade_no")):
        return _error(call, "PARAM_ERROR", "transaction_id或out_trade_no必填", recall="N")
    try:
        trade.reverse(**_order_keys(call))
    except trade.Refused as refused:
        code, description, recall = _REVERSE_ERRORS[refused.reason]
        return _error(call, code, description, recall=recall)
    return _answer(call, {"result_code": "SUCCESS", "recall": "N"})


reverse = _endpoint(_reverse, has_chaos=True)


# --- refund / refundquery ----------------------------------------------------------------------------------------


def _refund_fields(order: SandboxWechatOrder, refund: SandboxWechatRefund) -> dict[str, object]:
    return {
        "result_code": "SUCCESS",
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_fee": refund.refund_fee,
        "total_fee": order.total_fee,
        "cash_fee": order.total_fee,
        "cash_refund_fee": refund.refund_fee,
    }


_REFUND_ERRORS = {
    Refusal.ORDER_NOT_FOUND: ("ORDERNOTEXIST", "订单不存在"),
    Refusal.REFUND_AMOUNT_CHANGED: ("PARAM_ERROR", "同一退款单号退款金额不一致"),
    Refusal.REFUND_NOT_PAID: ("TRADE_STATE_ERROR", "订单状态错误"),
    Refusal.REFUND_TOTAL_DIFFERS: ("PARAM_ERROR", "订单金额与原订单不一致"),
    Refusal.REFUND_EXCEEDS: ("PARAM_ERROR", "累计退款金额大于支付金额"),
}


def _refund(call: Call) -> HttpResponse:
    f = call.fields
    missing = [n for n in ("out_refund_no", "total_fee", "refund_fee") if not f.get(n)]
    if missing or not (f.get("transaction_id") or f.get("out_trade_no")):
        return _error(call, "PARAM_ERROR", "缺少参数" + ",".join(missing or ["transaction_id/out_trade_no"]))
    if not (f["total_fee"].isdigit() and f["refund_fee"].isdigit()) or int(f["refund_fee"]) <= 0:
        return _error(call, "PARAM_ERROR", "金额参数错误")
    try:
        order, accepted = trade.refund(
            trade.RefundRequest(
                **_order_keys(call),
                out_refund_no=f["out_refund_no"],
                total_fee=int(f["total_fee"]),
                refund_fee=int(f["refund_fee"]),
            )
        )
    except trade.Refused as refused:
        return _error(call, *_REFUND_ERRORS[refused.reason])
    return _answer(call, _refund_fields(order, accepted))


refund = _endpoint(_refund, has_chaos=True)


def _refundquery(call: Call) -> HttpResponse:
    f = call.fields
    refunds = SandboxWechatRefund.objects.filter(
        order__mch_id=call.merchant.mch_id, order__sub_mch_id=call.sub_mch_id
    ).select_related("order")
    if f.get("refund_id"):
        refunds = refunds.filter(refund_id=f["refund_id"])
    elif f.get("out_refund_no"):
        refunds = refunds.filter(out_refund_no=f["out_refund_no"])
    elif f.get("transaction_id"):
        refunds = refunds.filter(order__transaction_id=f["transaction_id"])
    elif f.get("out_trade_no"):
        refunds = refunds.filter(order__out_trade_no=f["out_trade_no"])
    else:
        return _error(call, "PARAM_ERROR", "缺少查询参数")
    first = refunds.order_by("pk").first()
    if first is None:
        return _error(call, "REFUNDNOTEXIST", "退款订单查询失败")
    order = book.settle_wechat(first.order)
    listed = list(refunds.order_by("pk"))
    fields: dict[str, object] = {
        "result_code": "SUCCESS",
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "total_fee": order.total_fee,
        "cash_fee": order.total_fee,
        "refund_count": len(listed),
    }
    for n, item in enumerate(listed):
        fields.update(
            {
                f"out_refund_no_{n}": item.out_refund_no,
                f"refund_id_{n}": item.refund_id,
                f"refund_fee_{n}": item.refund_fee,
                f"refund_status_{n}": item.state,
                f"refund_recv_accout_{n}": "支付用户零钱",
                f"refund_success_time_{n}": book.china_time(item.succeeded_at, "%Y-%m-%d %H:%M:%S")
                if item.succeeded_at
                else "",
            }
        )
    return _answer(call, fields)


refundquery = _endpoint(_refundquery, has_chaos=True)


def _downloadbill(call: Call) -> HttpResponse:
    bill_date = call.fields.get("bill_date", "")
    try:
        day = datetime.strptime(bill_date, "%Y%m%d").date() if len(bill_date) == 8 else None
    except ValueError:
        day = None
    if day is None:
        return _xml({"return_code": "FAIL", "return_msg": "invalid bill_date", "error_code": "20001"})
    if call.fields.get("bill_type", "ALL") != "ALL":
        return _xml({"return_code": "FAIL", "return_msg": "invalid bill_type", "error_code": "20001"})
    window = bill_book.window(day)
    if window is None:
        return _xml({"return_code": "FAIL", "return_msg": "Bill Creating", "error_code": "20003"})
    book.advance()
    rows = bill_book.rows(mch_id=call.merchant.mch_id, sub_mch_id=call.sub_mch_id, start=window[0], end=window[1])
    if not rows:
        return _xml({"return_code": "FAIL", "return_msg": "No Bill Exist", "error_code": "20002"})
    if call.fields.get("tar_type") == "GZIP":
        return HttpResponse(bill_book.file(rows, gzipped=True), content_type="application/x-gzip")
    return HttpResponse(bill_book.file(rows, gzipped=False), content_type="text/plain; charset=utf-8")


downloadbill = _endpoint(_downloadbill)
