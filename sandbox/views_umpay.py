"""UMF / 联动优势 stand-in: pay/wxface, micropay, queryOrder, cancelOrder, refund, refundQuery.

Requests are JSON with `signature` (SHA1withRSA over sorted `k=v&…`), verified with the provider's registered
public key; every answer, refusals included, is signed with UMF's key (values-only rule), as UMF does.

The sandbox's refusals (RESP_*) use the codes of UMF's published return-code table, each for the nearest meaning;
which situation gets which code is the sandbox's choice (UMF does not say which code each refusal carries).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.gateways import umpay

from . import book, chaos, clock, identity, scenarios
from .models import SandboxAuthinfo, SandboxUmpayOrder, SandboxUmpayProvider, SandboxUmpayRefund
from .scenarios import Scenario
from .services import preset_for

RESP_SIGNATURE = ("11", "验证签名失败")
RESP_PARAM = ("13", "报文交易要素缺失")
RESP_MERCHANT = ("31", "商户或机构状态不正确")
RESP_NO_ORDER = ("17", "交易不存在")
RESP_DUPLICATE = ("16", "订单号重复")
RESP_STATE = ("35", "原交易不存在或状态不正确")
RESP_AMOUNT = ("33", "交易金额超限")
RESP_NOT_TODAY = ("39", "交易不在受理时间范围内：非当日订单不能撤销，请使用退款")
RESP_DECLINED = ("15", "账户余额不足")
AUTHINFO_EXPIRES_IN = 3600


@dataclass
class Call:
    provider: SandboxUmpayProvider
    fields: dict[str, Any]
    scenario_header: str | None


def _respond(fields: dict[str, Any]) -> HttpResponse:
    signed = umpay.sign_response({k: v for k, v in fields.items() if v not in (None, "")}, book.umpay_key())
    return HttpResponse(json.dumps(signed, ensure_ascii=False), content_type="application/json; charset=utf-8")


def _refuse(code: tuple[str, str], **extra: Any) -> HttpResponse:
    return _respond({"respCode": code[0], "respMsg": code[1], **extra})


def _authenticate(request: HttpRequest) -> Call | HttpResponse:
    try:
        fields = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return _refuse(RESP_PARAM)
    if not isinstance(fields, dict) or not all(isinstance(v, str | int) for v in fields.values()):
        return _refuse(RESP_PARAM)
    provider = SandboxUmpayProvider.objects.filter(acq_sp_id=str(fields.get("acqSpId", ""))).first()
    if provider is None or str(fields.get("acqMerId", "")) not in provider.acq_mer_ids:
        return _refuse(RESP_MERCHANT)
    if not umpay.verify_request(fields, provider.merchant_public_pem):
        return _refuse(RESP_SIGNATURE)
    return Call(provider, {k: str(v) for k, v in fields.items()}, request.META.get(scenarios.META_HEADER))


def _endpoint(view: Callable[[Call], HttpResponse], *, has_chaos: bool = False) -> Callable:
    """`has_chaos`: the endpoint misbehaves for a fraction of calls when SANDBOX_CHAOS is set (chaos.py)."""

    @csrf_exempt
    @require_POST
    def wrapper(request: HttpRequest) -> HttpResponse:
        call = _authenticate(request)
        if isinstance(call, HttpResponse):
            return call

        def process() -> HttpResponse:
            try:
                return view(call)
            except scenarios.UnknownScenario as exc:
                return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")

        if has_chaos:
            return chaos.apply(request, process, spoil=chaos.spoil_umpay_signature)
        return process()

    wrapper.__name__ = view.__name__
    return wrapper


def _missing(call: Call, *names: str) -> HttpResponse | None:
    absent = [n for n in names if not call.fields.get(n)]
    return _refuse(RESP_PARAM, respMsg="缺少参数" + ",".join(absent)) if absent else None


def _today() -> str:
    return book.china_time(clock.now(), "%Y%m%d")


# --- wxface ------------------------------------------------------------------------------------------------------


def _wxface(call: Call) -> HttpResponse:
    if problem := _missing(call, "rawDate"):
        return problem
    authinfo = identity.random_token(96)
    SandboxAuthinfo.objects.create(
        authinfo=authinfo,
        appid=call.fields.get("appid", ""),
        mch_id=call.fields.get("mchId", ""),
        sub_mch_id=call.fields.get("subMchId", ""),
        expires_at=clock.now() + timedelta(seconds=AUTHINFO_EXPIRES_IN),
    )
    return _respond(
        {
            "respCode": "00",
            "respMsg": "处理成功",
            "authinfo": authinfo,
            "expiresIn": AUTHINFO_EXPIRES_IN,
            "appid": call.fields.get("appid", ""),
            "mchId": call.fields.get("mchId", ""),
            "subMchId": call.fields.get("subMchId", ""),
        }
    )


wxface = _endpoint(_wxface)


# --- micropay / queryOrder / cancelOrder -------------------------------------------------------------------------

_FIRST_ANSWER = {
    Scenario.SUCCESS: ("00", "交易成功"),
    Scenario.UMF_TIMEOUT_PAID: ("00", "交易成功"),
    Scenario.UMF_PAYING_THEN_SUCCESS: ("02", "交易结果未明，用户支付中"),
    Scenario.UMF_PASSWORD_THEN_FAIL: ("62", "用户输入密码中"),
    Scenario.UMF_UNKNOWN_PAID: ("04", "交易结果未知"),
    Scenario.UMF_DECLINED: RESP_DECLINED,
}
_ORIG_DESC = {"00": "交易成功", "01": "已退款", "02": "交易处理中", "03": "交易关闭", "04": "已撤销", "06": "交易失败"}


def _order_fields(order: SandboxUmpayOrder) -> dict[str, Any]:
    paid = order.paid_at is not None
    return {
        "orderNo": order.order_no,
        "transactionId": order.transaction_id,
        "txnAmt": str(order.txn_amt),
        "orderTime": order.order_time,
        "platDate": book.china_time(order.created_at, "%Y%m%d"),
        "depBankSeq": order.dep_bank_seq if paid else "",
        "payerInfo": order.openid if paid else "",
        "paySeq": order.transaction_id if paid else "",
    }


def _micropay_answer(order: SandboxUmpayOrder) -> HttpResponse:
    code, message = _FIRST_ANSWER[Scenario(order.scenario)]
    fields = _order_fields(order)
    if code != "00":
        fields.update(depBankSeq="", payerInfo="", paySeq="")
    return _respond({"respCode": code, "respMsg": message, **fields})


def _micropay(call: Call) -> HttpResponse:
    f = call.fields
    if problem := _missing(call, "orderTime", "orderNo", "txnAmt", "orderType", "authCode", "goodsId", "goodsInfo"):
        return problem
    if not f["txnAmt"].isdigit() or int(f["txnAmt"]) <= 0 or len(f["orderTime"]) != 14:
        return _refuse(RESP_PARAM)
    if f["orderType"] not in {t.value for t in umpay.OrderType}:
        return _refuse(RESP_PARAM, respMsg="orderType错误")
    if f.get("backUrl") and not f["backUrl"].startswith("http://"):
        return _refuse(RESP_PARAM, respMsg="backUrl必须以http://开始")  # UMF: backUrl must start with http://
    if f["orderType"] == umpay.OrderType.WECHAT and not identity.is_wechat_payment_code(f["authCode"]):
        return _refuse(RESP_PARAM, respMsg="付款码错误")
    txn_amt = int(f["txnAmt"])
    existing = SandboxUmpayOrder.objects.filter(acq_mer_id=f["acqMerId"], order_no=f["orderNo"]).first()
    if existing is not None:
        return _refuse(RESP_DUPLICATE, orderNo=existing.order_no, transactionId=existing.transaction_id)
    scenario = scenarios.resolve(
        header=call.scenario_header, preset=preset_for(f["orderNo"]), amount=txn_amt, table=scenarios.UMF_AMOUNT_CODES
    )
    if scenario not in _FIRST_ANSWER:
        raise scenarios.UnknownScenario(f"scenario {scenario} does not apply to UMF micropay")
    now = clock.now()
    code = _FIRST_ANSWER[scenario][0]
    try:
        with transaction.atomic():
            order = SandboxUmpayOrder.objects.create(
                acq_sp_id=call.provider.acq_sp_id,
                acq_mer_id=f["acqMerId"],
                order_no=f["orderNo"],
                transaction_id=identity.umpay_transaction_id(),
                txn_amt=txn_amt,
                order_time=f["orderTime"],
                order_type=f["orderType"],
                face_flag=f.get("faceFlag", ""),
                back_url=f.get("backUrl", ""),
                mer_priv=f.get("merPriv", ""),
                orig_resp_code="06" if scenario == Scenario.UMF_DECLINED else "02",
                scenario=scenario.value,
                dep_bank_seq=identity.wechat_transaction_id(),
                openid=identity.openid_for(identity.user_of_code(f["authCode"])),
                created_at=now,
                settles_at=now + timedelta(seconds=scenarios.settle_seconds()) if code in ("02", "62") else None,
            )
            if code == "00":
                book.mark_umpay_paid(order, now)
            elif scenario == Scenario.UMF_UNKNOWN_PAID:
                book.mark_umpay_paid(order, now)  # "04" answered, but the charge went through
    except IntegrityError:
        return _refuse(RESP_DUPLICATE)
    if scenario == Scenario.UMF_TIMEOUT_PAID:
        clock.sleep(scenarios.timeout_sleep_seconds())
    return _micropay_answer(order)


micropay = _endpoint(_micropay, has_chaos=True)


def _find(call: Call, *, for_update: bool = False) -> SandboxUmpayOrder | None:
    orders = SandboxUmpayOrder.objects.filter(acq_mer_id=call.fields["acqMerId"])
    if for_update:
        orders = orders.select_for_update()
    if call.fields.get("transactionId"):
        return orders.filter(transaction_id=call.fields["transactionId"]).first()
    return orders.filter(order_no=call.fields.get("orderNo", "")).first()


def _query_order(call: Call) -> HttpResponse:
    if not (call.fields.get("orderNo") or call.fields.get("transactionId")):
        return _refuse(RESP_PARAM)
    with transaction.atomic():
        order = _find(call, for_update=True)
        if order is None:
            return _refuse(RESP_NO_ORDER)
        book.settle_umpay(order)
    return _respond(
        {
            "respCode": "00",
            "respMsg": "查询成功",
            "origRespCode": order.orig_resp_code,
            "origRespMsg": _ORIG_DESC.get(order.orig_resp_code, ""),
            "orderType": order.order_type,
            **_order_fields(order),
        }
    )


query_order = _endpoint(_query_order, has_chaos=True)


def _cancel_order(call: Call) -> HttpResponse:
    if problem := _missing(call, "orderNo"):
        return problem
    with transaction.atomic():
        order = _find(call, for_update=True)
        if order is None:
            return _refuse(RESP_NO_ORDER)
        book.settle_umpay(order)
        if book.china_time(order.created_at, "%Y%m%d") != _today():
            return _refuse(RESP_NOT_TODAY)
        if order.orig_resp_code == "01" or order.refunds.exists():
            return _refuse(RESP_STATE)
        if order.orig_resp_code not in ("03", "04", "06"):
            order.reversed_after_payment = order.paid_at is not None
            order.orig_resp_code, order.settles_at = "04", None
            order.save(update_fields=["orig_resp_code", "settles_at", "reversed_after_payment"])
    return _respond({"respCode": "00", "respMsg": "撤销成功", "orderNo": order.order_no, "txnAmt": str(order.txn_amt)})


cancel_order = _endpoint(_cancel_order, has_chaos=True)


# --- refund / refundQuery ----------------------------------------------------------------------------------------


def _refund_answer(refund: SandboxUmpayRefund) -> HttpResponse:
    return _respond(
        {
            "respCode": "00",
            "respMsg": "退款受理成功",
            "orderNo": refund.order_no,
            "transactionId": refund.transaction_id,
            "txnAmt": str(refund.txn_amt),
            "origOrderNo": refund.order.order_no,
        }
    )


def _refund(call: Call) -> HttpResponse:
    f = call.fields
    if problem := _missing(call, "orderTime", "origOrderNo", "origTxnAmt", "orderNo", "txnAmt"):
        return problem
    if not (f["txnAmt"].isdigit() and f["origTxnAmt"].isdigit()) or int(f["txnAmt"]) <= 0:
        return _refuse(RESP_PARAM)
    amount = int(f["txnAmt"])
    with transaction.atomic():
        order = (
            SandboxUmpayOrder.objects.select_for_update()
            .filter(acq_mer_id=f["acqMerId"], order_no=f["origOrderNo"])
            .first()
        )
        if order is None:
            return _refuse(RESP_NO_ORDER)
        book.settle_umpay(order)
        existing = order.refunds.filter(order_no=f["orderNo"]).first()
        if existing is not None:
            if existing.txn_amt != amount:
                return _refuse(RESP_DUPLICATE)
            return _refund_answer(existing)
        if order.paid_at is None or order.orig_resp_code not in ("00", "01"):
            return _refuse(RESP_STATE)
        if int(f["origTxnAmt"]) != order.txn_amt:
            return _refuse(RESP_PARAM, respMsg="原交易金额不符")
        if order.created_at < clock.now() - timedelta(days=90):
            return _refuse(RESP_STATE, respMsg="超过退款期限")
        if sum(r.txn_amt for r in order.refunds.all()) + amount > order.txn_amt:
            return _refuse(RESP_AMOUNT)
        now = clock.now()
        refund = SandboxUmpayRefund.objects.create(
            order=order,
            order_no=f["orderNo"],
            transaction_id=identity.umpay_transaction_id(),
            txn_amt=amount,
            orig_resp_code="02",
            created_at=now,
            succeeds_at=now + timedelta(seconds=scenarios.refund_seconds()),
        )
        order.orig_resp_code = "01"
        order.save(update_fields=["orig_resp_code"])
    return _refund_answer(refund)


refund = _endpoint(_refund, has_chaos=True)


def _refund_query(call: Call) -> HttpResponse:
    if problem := _missing(call, "orderNo"):
        return problem
    refund_row = (
        SandboxUmpayRefund.objects.filter(order__acq_mer_id=call.fields["acqMerId"], order_no=call.fields["orderNo"])
        .select_related("order")
        .first()
    )
    if refund_row is None:
        return _refuse(RESP_NO_ORDER)
    book.settle_umpay(refund_row.order)
    refund_row.refresh_from_db()
    return _respond(
        {
            "respCode": "00",
            "respMsg": "查询成功",
            "origRespCode": refund_row.orig_resp_code,
            "origRespMsg": "退款成功" if refund_row.orig_resp_code == "00" else "退款处理中",
            "orderNo": refund_row.order_no,
            "transactionId": refund_row.transaction_id,
            "txnAmt": str(refund_row.txn_amt),
            "origOrderNo": refund_row.order.order_no,
        }
    )


refund_query = _endpoint(_refund_query, has_chaos=True)
