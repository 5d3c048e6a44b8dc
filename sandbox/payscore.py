"""PayScore service orders: the state machine WeChat runs (docs/protocols.md, "PayScore service orders").

CREATED --user confirms--> DOING/USER_CONFIRM --complete--> DOING/MCH_COMPLETE (collection USER_PAYING)
--user pays or sync Order_Paid--> DONE (collection USER_PAID). CREATED/DOING(unpaid) --cancel--> REVOKED.
Errors are raised as PayscoreError(status, code, message) and the view renders them like WeChat's v3 errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import clock, identity, outbox
from .models import SandboxPayscoreOrder, SandboxWechatMerchant
from .scenarios import Scenario

State = SandboxPayscoreOrder.State
RISK_FUND_NAMES = frozenset({"DEPOSIT", "ADVANCE", "CASH_DEPOSIT", "ESTIMATE_ORDER_COST"})


class PayscoreError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _param(message: str) -> PayscoreError:
    return PayscoreError(400, "PARAM_ERROR", message)


def as_dict(order: SandboxPayscoreOrder) -> dict[str, Any]:
    """The service order as WeChat returns it (query answer, notification resource)."""
    data: dict[str, Any] = {
        "appid": order.appid,
        "mchid": order.mchid,
        "service_id": order.service_id,
        "out_order_no": order.out_order_no,
        "service_introduction": order.service_introduction,
        "state": order.state,
        "state_description": order.state_description,
        "post_payments": order.post_payments,
        "post_discounts": order.post_discounts,
        "risk_fund": order.risk_fund,
        "time_range": order.time_range,
        "attach": order.attach,
        "notify_url": order.notify_url,
        "order_id": order.order_id,
        "need_collection": order.total_amount is not None,
    }
    if order.location:
        data["location"] = order.location
    if order.total_amount is not None:
        data["total_amount"] = order.total_amount
    if order.openid:
        data["openid"] = order.openid
    if order.collection_state:
        paid = order.collection_state == "USER_PAID"
        collection: dict[str, Any] = {
            "state": order.collection_state,
            "total_amount": order.total_amount or 0,
            "paying_amount": 0 if paid else order.total_amount or 0,
            "paid_amount": order.paid_amount,
        }
        if paid and order.paid_at is not None:
            collection["details"] = [
                {
                    "seq": 1,
                    "amount": order.paid_amount,
                    "paid_type": "NEWTON",
                    "paid_time": _china(order.paid_at),
                    "transaction_id": order.collection_transaction_id,
                }
            ]
        data["collection"] = collection
    return {k: v for k, v in data.items() if v not in (None, "")}


def _china(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S")


def _amounts(body: dict[str, Any], order: SandboxPayscoreOrder) -> tuple[list, list, int]:
    payments = body.get("post_payments")
    discounts = body.get("post_discounts") or []
    total = body.get("total_amount")
    if not isinstance(payments, list) or not payments:
        raise _param("post_payments is required")
    if not isinstance(discounts, list) or not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise _param("total_amount must be a non-negative integer")
    for item in [*payments, *discounts]:
        if not isinstance(item, dict) or not item.get("name"):
            raise _param("post_payments/post_discounts items need a name")
        amount = item.get("amount", 0)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise _param("amounts are non-negative integers in fen")
    expected = sum(p.get("amount", 0) for p in payments) - sum(d.get("amount", 0) for d in discounts)
    if total != expected:
        raise _param("total_amount must equal sum(post_payments.amount) - sum(post_discounts.amount)")
    if total > int(order.risk_fund.get("amount", 0)):
        raise _param("total_amount must not exceed risk_fund.amount")
    return payments, discounts, total


# device (2025-03) on create, complete and modify: the ids are WeChat's usual string(32); materiel_no is a URL.
DEVICE_ID_MAX = 32


def _device(body: dict[str, Any]) -> dict[str, Any] | None:
    device = body.get("device")
    if device is None:
        return None
    if not isinstance(device, dict):
        raise _param("device must be an object")
    for name in ("start_device_id", "end_device_id", "materiel_no"):
        if name in device and not isinstance(device[name], str):
            raise _param(f"device.{name} must be a string")
    for name in ("start_device_id", "end_device_id"):
        if len(device.get(name, "")) > DEVICE_ID_MAX:
            raise _param(f"device.{name} is at most {DEVICE_ID_MAX} characters")
    return device


_CREATE_FIELDS = (
    "out_order_no",
    "appid",
    "service_id",
    "service_introduction",
    "time_range",
    "risk_fund",
    "notify_url",
)


def create(merchant: SandboxWechatMerchant, body: dict[str, Any], *, scenario: Scenario | None) -> dict[str, Any]:
    for name in _CREATE_FIELDS:
        if body.get(name) in (None, "", {}):
            raise _param(f"{name} is required")
    if body["appid"] != merchant.appid:
        raise PayscoreError(400, "PARAM_ERROR", "appid and mchid do not match")
    if len(str(body["service_introduction"])) > 20:
        raise _param("service_introduction is at most 20 characters")
    risk_fund = body["risk_fund"]
    if not isinstance(risk_fund, dict) or risk_fund.get("name") not in RISK_FUND_NAMES:
        raise _param("risk_fund.name is invalid")
    if not isinstance(risk_fund.get("amount"), int) or risk_fund["amount"] <= 0:
        raise _param("risk_fund.amount must be a positive integer")
    if not isinstance(body["time_range"], dict) or not body["time_range"].get("start_time"):
        raise _param("time_range.start_time is required")
    need_user_confirm = body.get("need_user_confirm", True)
    if need_user_confirm is False and not body.get("openid"):
        raise _param("openid is required when need_user_confirm is false")
    device = _device(body)
    with transaction.atomic():
        existing = (
            SandboxPayscoreOrder.objects.select_for_update()
            .filter(mchid=merchant.mch_id, out_order_no=body["out_order_no"])
            .first()
        )
        if existing is not None:
            # Identical re-submission is idempotent; the same number with other content is refused.
            if existing.create_request != body:
                raise PayscoreError(400, "INVALID_REQUEST", "out_order_no already used with different parameters")
            return {**as_dict(existing), "package": _package(existing)}
        order = SandboxPayscoreOrder.objects.create(
            mchid=merchant.mch_id,
            appid=body["appid"],
            service_id=body["service_id"],
            out_order_no=body["out_order_no"],
            order_id=identity.payscore_order_id(),
            service_introduction=body["service_introduction"],
            # Without user confirmation (免确认) the order starts in service right away.
            state=State.CREATED if need_user_confirm is not False else State.DOING,
            state_description="" if need_user_confirm is not False else "USER_CONFIRM",
            time_range=body["time_range"],
            risk_fund=risk_fund,
            post_payments=body.get("post_payments") or [],
            post_discounts=body.get("post_discounts") or [],
            location=body.get("location"),
            attach=body.get("attach", ""),
            notify_url=body["notify_url"],
            openid=body.get("openid", ""),
            need_user_confirm=need_user_confirm is not False,
            scenario=scenario.value if scenario else "",
            create_request=body,
            devices={"create": device} if device else {},
            created_at=clock.now(),
        )
        answer = {**as_dict(order), "package": _package(order)}
        if order.state == State.CREATED and scenario in (Scenario.PAYSCORE_AUTO_CONFIRM, Scenario.PAYSCORE_AUTO):
            user_confirm(order)
    return answer


def _package(order: SandboxPayscoreOrder) -> str:
    return "sbx_" + order.order_id


def find(mchid: str, *, out_order_no: str = "", query_id: str = "", for_update: bool = False) -> SandboxPayscoreOrder:
    orders = SandboxPayscoreOrder.objects.filter(mchid=mchid)
    if for_update:
        orders = orders.select_for_update()
    order = (
        orders.filter(out_order_no=out_order_no).first()
        if out_order_no
        else orders.filter(order_id=query_id).first()
        if query_id
        else None
    )
    if order is None:
        raise PayscoreError(404, "ORDER_NOT_EXIST", "order does not exist")
    return order


def _check_service(order: SandboxPayscoreOrder, body: dict[str, Any]) -> None:
    if body.get("appid") != order.appid or body.get("service_id") != order.service_id:
        raise _param("appid/service_id do not match the order")


def _final_state_error(order: SandboxPayscoreOrder) -> PayscoreError | None:
    if order.state == State.REVOKED:
        return PayscoreError(400, "ORDER_CANCELED", "order was cancelled")
    if order.state == State.DONE:
        return PayscoreError(400, "ORDER_DONE", "order is done")
    if order.state == State.EXPIRED:
        return PayscoreError(400, "INVALID_ORDER_STATE", "order expired")
    return None


def cancel(order: SandboxPayscoreOrder, body: dict[str, Any]) -> dict[str, Any]:
    _check_service(order, body)
    reason = body.get("reason")
    if not reason or len(str(reason)) > 50:
        raise _param("reason is required (at most 50 characters)")
    error = _final_state_error(order)
    if error:
        raise error
    if order.collection_state == "USER_PAID":
        raise PayscoreError(400, "INVALID_ORDER_STATE", "order is paid")
    order.state, order.state_description = State.REVOKED, ""
    order.save(update_fields=["state", "state_description"])
    return {k: getattr(order, k) for k in ("appid", "mchid", "out_order_no", "service_id", "order_id")}


def complete(order: SandboxPayscoreOrder, body: dict[str, Any]) -> dict[str, Any]:
    _check_service(order, body)
    error = _final_state_error(order)
    if error:
        raise error
    if not (order.state == State.DOING and order.state_description == "USER_CONFIRM"):
        raise PayscoreError(400, "INVALID_ORDER_STATE", "order is not in service (DOING, USER_CONFIRM)")
    payments, discounts, total = _amounts(body, order)
    if not order.time_range.get("end_time") and not (body.get("time_range") or {}).get("end_time"):
        raise _param("time_range.end_time is required: the order was created without one")
    device = _device(body)
    order.post_payments, order.post_discounts, order.total_amount = payments, discounts, total
    if device:
        order.devices = {**order.devices, "complete": device}
    if body.get("time_range"):
        order.time_range = {**order.time_range, **body["time_range"]}
    if body.get("location"):
        order.location = {**(order.location or {}), **body["location"]}
    order.state_description = "MCH_COMPLETE"
    order.collection_state = "USER_PAYING"
    if total == 0:
        order.state, order.state_description = State.DONE, ""
    order.save()
    if order.state == State.DOING and order.scenario in (Scenario.PAYSCORE_AUTO_PAY, Scenario.PAYSCORE_AUTO):
        user_pay(order)
    return as_dict(order)


def modify(order: SandboxPayscoreOrder, body: dict[str, Any]) -> dict[str, Any]:
    _check_service(order, body)
    if not body.get("reason"):
        raise _param("reason is required")
    if order.collection_state != "USER_PAYING":
        raise PayscoreError(400, "INVALID_ORDER_STATE", "only a completed, unpaid order can be modified")
    payments, discounts, total = _amounts(body, order)
    device = _device(body)
    order.post_payments, order.post_discounts, order.total_amount = payments, discounts, total
    if device:
        order.devices = {**order.devices, "modify": device}
    order.save(update_fields=["post_payments", "post_discounts", "total_amount", "devices"])
    return as_dict(order)


def sync(order: SandboxPayscoreOrder, body: dict[str, Any]) -> dict[str, Any]:
    _check_service(order, body)
    detail = body.get("detail") or {}
    if body.get("type") != "Order_Paid" or not detail.get("paid_time"):
        raise _param("type must be Order_Paid with detail.paid_time")
    if order.collection_state != "USER_PAYING":
        raise PayscoreError(400, "INVALID_ORDER_STATE", "only a completed, unpaid order can be synced")
    # Paid elsewhere: WeChat stops collecting; nothing was charged through PayScore.
    order.state, order.state_description, order.collection_state = State.DONE, "", "USER_PAID"
    order.save(update_fields=["state", "state_description", "collection_state"])
    return as_dict(order)


def _merchant(order: SandboxPayscoreOrder) -> SandboxWechatMerchant:
    return SandboxWechatMerchant.objects.get(mch_id=order.mchid)


def user_confirm(order: SandboxPayscoreOrder) -> SandboxPayscoreOrder:
    if order.state != State.CREATED:
        raise PayscoreError(400, "INVALID_ORDER_STATE", "only a CREATED order can be confirmed")
    order.state, order.state_description = State.DOING, "USER_CONFIRM"
    if not order.openid:
        order.openid = identity.openid_for(identity.new_user(), order.appid)
    order.save(update_fields=["state", "state_description", "openid"])
    outbox.enqueue_wechat_v3(
        _merchant(order),
        url=order.notify_url,
        event_type="PAYSCORE.USER_CONFIRM",
        summary="微信支付分服务订单用户已确认",
        resource=as_dict(order),
        order_no=order.out_order_no,
    )
    return order


def user_pay(order: SandboxPayscoreOrder) -> SandboxPayscoreOrder:
    if not (order.state == State.DOING and order.collection_state == "USER_PAYING"):
        raise PayscoreError(400, "INVALID_ORDER_STATE", "only a completed, unpaid order can be paid")
    order.state, order.state_description, order.collection_state = State.DONE, "", "USER_PAID"
    order.paid_amount = order.total_amount or 0
    order.paid_at = clock.now()
    order.collection_transaction_id = identity.wechat_transaction_id()
    order.save()
    outbox.enqueue_wechat_v3(
        _merchant(order),
        url=order.notify_url,
        event_type="PAYSCORE.USER_PAID",
        summary="微信支付分服务订单支付成功",
        resource=as_dict(order),
        order_no=order.out_order_no,
    )
    return order
