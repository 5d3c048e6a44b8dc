"""Every write of PayScore service orders: create, complete, cancel, sync, refresh (query), notifications' effect.

Pattern for every upstream call (record the intent before the side effect, as in payments.services):
1. under the row lock, check the state and record the intent (`pending_action`, a lease in `next_check_at` so the
   reconciler leaves the order alone while the call is in flight), commit;
2. call WeChat without holding a transaction;
3. under the row lock again, record the answer as an event and apply it.
An answer that never came (timeout, 5xx, bad signature) leaves `pending_action` set: the order is re-queried
(`next_check_at`) until WeChat's own view of the order says whether the call took effect. State only moves
forward (`_rank`), so a late or out-of-order answer or notification never moves an order backwards.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments import channels
from payments.gateways import wechatpay_v3
from payments.gateways.base import Outcome, redact
from payments.gateways.http import Timeouts
from payments.services import china_timestamp
from payscore.models import FINAL_STATES, ServiceOrder, ServiceOrderEvent
from payscore.representation import service_order_output
from portal import jobs
from portal.errors import Conflict, DomainError, InvalidInput, InvalidState
from portal.models import Device, Merchant, Store
from portal.services import audit_record
from webhooks.models import EventType
from webhooks.services import event_emit

logger = logging.getLogger(__name__)

State = ServiceOrder.State
Desc = ServiceOrder.StateDescription
Collection = ServiceOrder.Collection
Pending = ServiceOrder.PendingAction
Actor = ServiceOrderEvent.Actor
# The workers' task (payscore/tasks.py) that re-queries a service order; queued by name (portal.jobs).
REFRESH_ORDER_TASK = "payscore.tasks.refresh_order"

WECHAT_STATES = {State.CREATED, State.DOING, State.DONE, State.REVOKED, State.EXPIRED}


def _now() -> datetime:
    return timezone.now()


def _timestamp() -> float:
    # The gateway signs and checks v3 timestamps with this clock (tests share one fake clock with the sandbox).
    return _now().timestamp()


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def refresh_seconds() -> float:
    """GET payscore/orders/{no} re-queries WeChat when the last answer is older than this."""
    return _setting("PAYSCORE_REFRESH_SECONDS", 10)


def _recheck_delay(attempt: int) -> timedelta:
    base = _setting("PAYSCORE_RECHECK_SECONDS", 5)
    return timedelta(seconds=min(300.0, base * 2 ** max(0, attempt - 1)))


def _timeouts() -> Timeouts:
    return Timeouts(connect=settings.UPSTREAM_CONNECT_TIMEOUT, read=settings.UPSTREAM_READ_TIMEOUT)


def _lease() -> timedelta:
    """How long a call may still be in flight: a pooled connection and a connect, sending, the answer (httpx applies
    the connect and read limits per phase), and a margin. Until then nobody judges a pending action by a query —
    WeChat may not have seen a slow call yet."""
    connect, read = settings.UPSTREAM_CONNECT_TIMEOUT, settings.UPSTREAM_READ_TIMEOUT
    return timedelta(seconds=2 * connect + 2 * read + 5)


def notify_url() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + "/notify/wechatpay/payscore/"


# --- ordering of states: nothing moves backwards ---------------------------------------------------------------


def _rank(state: str, description: str) -> int:
    if state == State.PENDING:
        return 0
    if state == State.CREATED:
        return 1
    if state == State.DOING:
        return 3 if description == Desc.MCH_COMPLETE else 2
    return 4  # DONE, REVOKED, EXPIRED, REJECTED: final


_COLLECTION_RANK = {"": 0, Collection.USER_PAYING: 1, Collection.USER_PAID: 2}


# --- events ------------------------------------------------------------------------------------------------------


def _event(
    order: ServiceOrder,
    action: str,
    *,
    actor: str,
    result: wechatpay_v3.V3Result | None = None,
    from_state: str = "",
    to_state: str = "",
    user: AbstractBaseUser | None = None,
    message: str = "",
    code: str = "",
    response: Mapping[str, Any] | None = None,
    notification=None,
) -> ServiceOrderEvent:
    return ServiceOrderEvent.objects.create(
        service_order=order,
        notification=notification,
        action=action,
        outcome=result.outcome.value if result else "",
        code=(code or (result.code if result else ""))[:64],
        message=(message or (result.message if result else ""))[:255],
        request=result.request_fields if result else {},
        response=(result.response_fields if result else redact(response)) or {},
        latency_ms=result.latency_ms if result else None,
        from_state=from_state,
        to_state=to_state,
        actor=actor,
        actor_user=user,
    )


# WeChat's states merchants' systems are told about (webhooks).
STATE_EVENTS = {
    State.CREATED: EventType.PAYSCORE_CREATED,
    State.DOING: EventType.PAYSCORE_DOING,
    State.DONE: EventType.PAYSCORE_DONE,
    State.REVOKED: EventType.PAYSCORE_REVOKED,
    State.EXPIRED: EventType.PAYSCORE_EXPIRED,
}


def _notify(order: ServiceOrder) -> None:
    """The order's new state as a webhook event, in the caller's transaction (the caller holds the row lock)."""
    if order.state in STATE_EVENTS:
        event_emit(
            merchant=order.merchant,
            type=STATE_EVENTS[order.state],
            data=lambda: service_order_output(order),
            order_key=f"payscore:{order.pk}",
        )


def _locked(order_id: int) -> ServiceOrder:
    # Lock the order row only: PostgreSQL refuses FOR UPDATE across the nullable device join.
    return (
        ServiceOrder.objects.select_for_update(of=("self",))
        .select_related("merchant__provider", "store", "device")
        .get(pk=order_id)
    )


def _transaction_ids(collection: Mapping[str, Any]) -> list[str]:
    ids = []
    for detail in collection.get("details") or []:
        if isinstance(detail, Mapping):
            # WeChat's own sample spells the key "transaction_id " (with a space); accept both.
            value = detail.get("transaction_id") or detail.get("transaction_id ") or ""
            if value:
                ids.append(str(value))
    return ids


def apply_snapshot(
    order: ServiceOrder,
    data: Mapping[str, Any],
    *,
    actor: str,
    now: datetime,
    user: AbstractBaseUser | None = None,
    notification=None,
    synced: bool = True,
) -> bool:
    """Take WeChat's view of the order (a query answer, an action's answer or a notification's resource).
    Caller holds the row lock and saves. Returns whether the state moved. Never moves the order backwards."""
    state = str(data.get("state") or "")
    description = str(data.get("state_description") or "") if state == State.DOING else ""
    if state == State.DOING and not description and order.state == State.DOING:
        description = order.state_description  # "" carries no news about an order already in service
    from_label, state_before = order.state_label, order.state
    moved = False
    if state in WECHAT_STATES and order.state not in FINAL_STATES:
        if _rank(state, description) >= _rank(order.state, order.state_description) and (
            state,
            description,
        ) != (order.state, order.state_description):
            order.state, order.state_description = state, description
            moved = True
    collection = data.get("collection") if isinstance(data.get("collection"), Mapping) else {}
    collection_state = str(collection.get("state") or "")
    if _COLLECTION_RANK.get(collection_state, -1) > _COLLECTION_RANK.get(order.collection_state, 0):
        order.collection_state = collection_state
        moved = True
    paid = collection.get("paid_amount")
    if isinstance(paid, int) and not isinstance(paid, bool) and paid > order.paid_amount:
        order.paid_amount = paid
    for transaction_id in _transaction_ids(collection):
        if transaction_id not in order.transaction_ids:
            order.transaction_ids = [*order.transaction_ids, transaction_id]
    total = data.get("total_amount")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0 and (moved or order.total_amount is None):
        order.total_amount = total
    if data.get("order_id") and not order.order_id:
        order.order_id = str(data["order_id"])[:64]
    if data.get("package"):
        order.package = str(data["package"])[:300]
    if data.get("openid"):
        order.openid = str(data["openid"])[:128]  # WeChat's order is authoritative about who the user is
    if synced:
        order.last_synced_at = now
    if order.state != state_before:
        _notify(order)
    if moved:
        _event(
            order,
            "state",
            actor=actor,
            from_state=from_label,
            to_state=order.state_label + (f" ({order.collection_state})" if order.collection_state else ""),
            user=user,
            notification=notification,
        )
    return moved


# --- create --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateInput:
    out_order_no: str
    service_introduction: str
    risk_fund: dict
    time_range: dict
    post_payments: list
    post_discounts: list
    location: dict | None = None
    attach: str = ""
    openid: str = ""
    need_user_confirm: bool = True
    face_sid: str = ""
    ask_unionid: bool = False

    @classmethod
    def from_validated(cls, data: Mapping[str, Any]) -> CreateInput:
        return cls(
            out_order_no=data["out_order_no"],
            service_introduction=data["service_introduction"],
            risk_fund=dict(data["risk_fund"]),
            time_range=dict(data["time_range"]),
            post_payments=[dict(item) for item in data.get("post_payments") or []],
            post_discounts=[dict(item) for item in data.get("post_discounts") or []],
            location=dict(data["location"]) if data.get("location") else None,
            attach=data.get("attach", ""),
            openid=data.get("openid", ""),
            need_user_confirm=data.get("need_user_confirm", True),
            face_sid=data.get("face_sid", ""),
            ask_unionid=data.get("ask_unionid", False),
        )


@dataclass(frozen=True)
class CreateResult:
    order: ServiceOrder
    created: bool
    unionid_lookup: str  # NOT_REQUESTED, SUCCESS, FAILED


def _service_id(merchant: Merchant) -> str:
    # WeChat: the PayScore service-order API is for direct merchants (适用对象:直连商户). A service provider's
    # sub-merchant would need WeChat's separate partner API, which this product does not implement.
    if merchant.channel != Merchant.Channel.WECHAT_DIRECT:
        raise InvalidState(
            "PayScore needs a WeChat Pay direct-merchant channel (API v3).", code="PAYSCORE_UNSUPPORTED_CHANNEL"
        )
    if not merchant.payscore_service_id:
        raise InvalidState("This merchant has no PayScore service_id configured.", code="PAYSCORE_NOT_CONFIGURED")
    return merchant.payscore_service_id


def _fingerprint(merchant_id: int, service_id: str, data: CreateInput) -> str:
    # face_sid/ask_unionid are about the lookup, not the order: a retry may carry a fresh face_sid.
    content = {
        "merchant": merchant_id,
        "service_id": service_id,
        "service_introduction": data.service_introduction,
        "risk_fund": data.risk_fund,
        "time_range": data.time_range,
        "post_payments": data.post_payments,
        "post_discounts": data.post_discounts,
        "location": data.location,
        "attach": data.attach,
        "openid": data.openid,
        "need_user_confirm": data.need_user_confirm,
    }
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def service_order_create(*, device: Device, data: CreateInput) -> CreateResult:
    """Persist the order, then create it at WeChat. The same out_order_no with the same content returns the existing
    order (no second create); with different content it is a conflict (409)."""
    merchant = device.store.merchant
    service_id = _service_id(merchant)
    if not data.need_user_confirm and not data.openid:
        raise InvalidInput(details={"openid": "Required when need_user_confirm is false."}, code="OPENID_REQUIRED")
    channels.wechat_v3_config(merchant)  # no credentials → CHANNEL_NOT_CONFIGURED now, before a row exists
    fingerprint = _fingerprint(merchant.pk, service_id, data)
    now = _now()
    try:
        with transaction.atomic():
            order = ServiceOrder.objects.create(
                merchant=merchant,
                store=device.store,
                device=device,
                out_order_no=data.out_order_no,
                service_id=service_id,
                openid=data.openid,
                service_introduction=data.service_introduction,
                post_payments=data.post_payments,
                post_discounts=data.post_discounts,
                risk_fund=data.risk_fund,
                time_range=data.time_range,
                location=data.location,
                attach=data.attach,
                need_user_confirm=data.need_user_confirm,
                notify_url=notify_url(),
                request_fingerprint=fingerprint,
                state=State.PENDING,
                pending_action=Pending.CREATE,
                # Lease: if this request dies around the call, the reconciler settles it after this.
                next_check_at=now + _lease(),
            )
            _event(order, "created", actor=Actor.TERMINAL, to_state=State.PENDING)
    except IntegrityError:
        existing = ServiceOrder.objects.filter(merchant=merchant, out_order_no=data.out_order_no).first()
        if existing is None:
            raise
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "This out_order_no was already used for a different service order.",
                code="OUT_ORDER_NO_CONFLICT",
                details={"out_order_no": data.out_order_no},
            ) from None
        if existing.state == State.REJECTED:
            raise _rejected(existing) from None
        if existing.pending_action and existing.next_check_at and existing.next_check_at <= now:
            existing = service_order_refresh(order_id=existing.pk, actor=Actor.TERMINAL)
        return CreateResult(order=existing, created=False, unionid_lookup="NOT_REQUESTED")

    order = _send_create(order_id=order.pk, actor=Actor.TERMINAL)
    if order.state == State.REJECTED:
        raise _rejected(order)
    lookup = "NOT_REQUESTED"
    if data.ask_unionid and data.face_sid:
        order, lookup = _lookup_unionid(order=order, face_sid=data.face_sid)
    return CreateResult(order=order, created=True, unionid_lookup=lookup)


def _wechat_device(*, store: Store, start: Device | None = None, end: Device | None = None) -> dict[str, str] | None:
    """WeChat's `device` object: the terminal that starts or ends the service (Device.device_id, ≤32 like WeChat's
    device ids) and the store's materiel URL when it has one; None when there is nothing to send."""
    device = {
        "start_device_id": start.device_id if start else "",
        "end_device_id": end.device_id if end else "",
        "materiel_no": store.payscore_materiel_url,
    }
    return {key: value for key, value in device.items() if value} or None


def _create_request(order: ServiceOrder) -> wechatpay_v3.PayscoreCreateRequest:
    return wechatpay_v3.PayscoreCreateRequest(
        out_order_no=order.out_order_no,
        service_id=order.service_id,
        service_introduction=order.service_introduction,
        time_range=order.time_range,
        risk_fund=order.risk_fund,
        notify_url=order.notify_url,
        post_payments=order.post_payments,
        post_discounts=order.post_discounts,
        location=order.location or None,
        attach=order.attach,
        # WeChat: openid only for orders without user confirmation (需确认订单:不填).
        openid="" if order.need_user_confirm else order.openid,
        need_user_confirm=order.need_user_confirm,
        device=_wechat_device(store=order.store, start=order.device),
    )


def _send_create(*, order_id: int, actor: str) -> ServiceOrder:
    with transaction.atomic():
        order = _locked(order_id)
        if order.state != State.PENDING:
            return order
        order.pending_action = Pending.CREATE
        order.next_check_at = _now() + _lease()
        order.save(update_fields=["pending_action", "next_check_at", "updated_at"])
    config = channels.wechat_v3_config(order.merchant)
    order.appid = config.appid
    result = channels.observed(
        "payscore_create",
        order.merchant,
        lambda: wechatpay_v3.payscore_create(
            config, _create_request(order), client=channels.upstream_client, timeouts=_timeouts(), clock=_timestamp
        ),
    )
    return _record_answer(order_id=order.pk, action="create", result=result, actor=actor, appid=config.appid)


def _implied(action: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """WeChat's answer to a successful action, completed with what the success itself implies (the cancel answer
    carries no state; WeChat's sample answer to complete is DOING with an empty state_description)."""
    snapshot = dict(data)
    if action == "complete" and snapshot.get("state") in (None, "", State.DOING):
        snapshot["state"], snapshot["state_description"] = State.DOING, Desc.MCH_COMPLETE
        if not isinstance(snapshot.get("collection"), Mapping):
            snapshot["collection"] = {"state": Collection.USER_PAYING}
    elif action == "cancel":
        snapshot["state"], snapshot["state_description"] = State.REVOKED, ""
    elif action == "sync":
        snapshot["state"] = snapshot.get("state") or State.DONE
        collection = snapshot.get("collection") if isinstance(snapshot.get("collection"), Mapping) else {}
        snapshot["collection"] = {**collection, "state": collection.get("state") or Collection.USER_PAID}
    return snapshot


def _record_answer(
    *,
    order_id: int,
    action: str,
    result: wechatpay_v3.PayscoreOrderResult,
    actor: str,
    user: AbstractBaseUser | None = None,
    appid: str = "",
) -> ServiceOrder:
    now = _now()
    with transaction.atomic():
        order = _locked(order_id)
        if appid and not order.appid:
            order.appid = appid
        _event(order, action, actor=actor, result=result, user=user)
        if result.outcome is Outcome.SUCCESS:
            if action == "complete":
                _take_completed_content(order)
            apply_snapshot(order, _implied(action, result.data), actor=actor, now=now, user=user)
            _settle_pending(order)
            order.last_error_code = order.last_error_message = ""
        elif result.outcome is Outcome.REJECTED:
            _settle_pending(order)
            order.last_error_code, order.last_error_message = result.code[:64], result.message[:255]
            if action == "create" and order.state == State.PENDING:
                order.state = State.REJECTED
                _event(order, "state", actor=actor, from_state=State.PENDING, to_state=State.REJECTED, user=user)
        else:
            # Unknown (or transient): WeChat may have acted. Query soon; the pending action stays until it is settled.
            order.last_error_code, order.last_error_message = (
                (result.code or result.outcome.value)[:64],
                (result.message[:255]),
            )
            order.next_check_at = now + _recheck_delay(1)
        order.save()
    if order.pending_action:
        _schedule_refresh(order)
    return order


def _take_completed_content(order: ServiceOrder) -> None:
    """A complete took effect: the order now bills what that call sent."""
    request = order.pending_request or {}
    if "post_payments" in request:
        order.post_payments = request["post_payments"]
        order.post_discounts = request.get("post_discounts", [])
        order.total_amount = request.get("total_amount", order.total_amount)
        for key in ("time_range", "location"):
            if request.get(key):
                setattr(order, key, {**(getattr(order, key) or {}), **request[key]})
        end_device_id = (request.get("device") or {}).get("end_device_id")
        if end_device_id:
            order.end_device = Device.objects.filter(device_id=end_device_id).first()


def _rejected(order: ServiceOrder) -> InvalidState:
    return InvalidState(
        order.last_error_message or "WeChat refused to create the service order.",
        code="UPSTREAM_REJECTED",
        details={"upstream_code": order.last_error_code, "upstream_message": order.last_error_message},
    )


def _settle_pending(order: ServiceOrder) -> None:
    order.pending_action = ""
    order.pending_request = {}
    order.check_attempts = 0
    order.next_check_at = None


def _schedule_refresh(order: ServiceOrder) -> None:
    countdown = max(0.0, (order.next_check_at - _now()).total_seconds()) if order.next_check_at else 0
    jobs.enqueue_on_commit(REFRESH_ORDER_TASK, order.pk, countdown=countdown)


# --- unionid (face_sid → facemch) ------------------------------------------------------------------------------


def _lookup_unionid(*, order: ServiceOrder, face_sid: str) -> tuple[ServiceOrder, str]:
    """GET /v3/facemch/users/{face_sid}: a nice-to-have. Failures are recorded on the order, never raised."""
    code = message = ""
    result = None
    try:
        config = channels.wechat_v3_config(order.merchant)
        result = channels.observed(
            "facemch_user",
            order.merchant,
            lambda: wechatpay_v3.facemch_user(
                config, face_sid, client=channels.upstream_client, timeouts=_timeouts(), clock=_timestamp
            ),
        )
    except DomainError as exc:
        code, message = exc.code, exc.message
    except Exception:  # unusable key material or a bug: the order must not fail for a unionid
        logger.exception("facemch lookup raised for service order %s", order.pk)
        code, message = "INTERNAL_ERROR", "The lookup failed unexpectedly; see the server log."
    with transaction.atomic():
        order = _locked(order.pk)
        if result is not None and result.outcome is Outcome.SUCCESS:
            if result.openid and order.openid and result.openid != order.openid:
                code, message = "OPENID_MISMATCH", "face_sid does not belong to this order's user."
            elif not result.union_id:
                code, message = "NO_UNIONID", "WeChat returned no union_id for this user."
        elif result is not None:
            code, message = result.code or result.outcome.value, result.message
        _event(order, "facemch", actor=Actor.TERMINAL, result=result, code=code, message=message)
        if code:
            return order, "FAILED"
        order.union_id = result.union_id[:128]
        if not order.openid and result.openid:
            order.openid = result.openid[:128]
        order.save(update_fields=["union_id", "openid", "updated_at"])
    return order, "SUCCESS"


# --- complete / cancel / sync ----------------------------------------------------------------------------------


def _check_not_pending(order: ServiceOrder) -> None:
    if order.pending_action:
        raise InvalidState(
            f"The outcome of the last {order.pending_action.lower()} call is still being confirmed with WeChat.",
            code="OUTCOME_PENDING",
            details={"pending_action": order.pending_action},
        )


def _state_error(order: ServiceOrder, action: str, needed: str) -> InvalidState:
    return InvalidState(
        f"{action} needs {needed}; this order is {order.state_label}.",
        code="INVALID_ORDER_STATE",
        details={"state": order.state, "state_description": order.state_description},
    )


def _sum(items: list[Mapping[str, Any]]) -> int:
    return sum(int(item.get("amount", 0)) for item in items)


def _audit(order: ServiceOrder, action: str, user, actor_label: str, details: dict) -> None:
    if user is not None or actor_label:
        audit_record(
            actor=user,
            actor_label=actor_label or None,
            action=f"payscore.{action}",
            obj=order,
            details={"out_order_no": order.out_order_no, **details},
        )


def _perform(
    *,
    order: ServiceOrder,
    action: str,
    pending: str,
    check: Callable[[ServiceOrder], None],
    pending_request: dict,
    call: Callable[[wechatpay_v3.WechatPayV3Config, ServiceOrder], wechatpay_v3.PayscoreOrderResult],
    actor: str,
    user: AbstractBaseUser | None,
    actor_label: str,
) -> ServiceOrder:
    """Steps 1-3 of the module docstring for complete/cancel/sync. Raises before anything is sent upstream when
    the order's state does not allow the action."""
    with transaction.atomic():
        order = _locked(order.pk)
        _check_not_pending(order)
        check(order)
        config = channels.wechat_v3_config(order.merchant)
        order.pending_action = pending
        order.pending_request = pending_request
        order.next_check_at = _now() + _lease()
        order.save(update_fields=["pending_action", "pending_request", "next_check_at", "updated_at"])
        _event(order, f"{action}.requested", actor=actor, user=user, response=pending_request)
        _audit(order, action, user, actor_label, pending_request)
    result = channels.observed(f"payscore_{action}", order.merchant, lambda: call(config, order))
    order = _record_answer(order_id=order.pk, action=action, result=result, actor=actor, user=user)
    if result.outcome is Outcome.REJECTED:
        # WeChat refused: nothing changed there. The terminal learns why, with WeChat's code.
        raise InvalidState(
            result.message or f"WeChat refused the {action}.",
            code="UPSTREAM_REJECTED",
            details={"upstream_code": result.code, "upstream_message": result.message},
        )
    return order


def service_order_complete(
    *,
    order: ServiceOrder,
    data: Mapping[str, Any],
    device: Device | None = None,
    actor: str = Actor.TERMINAL,
    user: AbstractBaseUser | None = None,
    actor_label: str = "",
) -> ServiceOrder:
    """完结: requires DOING + USER_CONFIRM; total_amount = Σ payments − Σ discounts and ≤ risk_fund.amount.
    `device` is the terminal completing the order (sent as device.end_device_id, recorded as end_device once the
    complete took effect); staff complete without one. The materiel URL is that terminal's store's, else the
    order's store's."""
    payments = [dict(item) for item in data["post_payments"]]
    discounts = [dict(item) for item in data.get("post_discounts") or []]
    total = data["total_amount"]
    expected = _sum(payments) - _sum(discounts)
    if total != expected:
        raise InvalidInput(
            "total_amount must equal Σ post_payments.amount − Σ post_discounts.amount.",
            code="TOTAL_AMOUNT_MISMATCH",
            details={"total_amount": f"Expected {expected} fen."},
        )

    def check(locked: ServiceOrder) -> None:
        if not (locked.state == State.DOING and locked.state_description == Desc.USER_CONFIRM):
            raise _state_error(locked, "complete", "DOING with USER_CONFIRM")
        limit = int(locked.risk_fund.get("amount", 0))
        if total > limit:
            raise InvalidInput(
                "total_amount must not exceed the order's risk_fund.amount.",
                code="TOTAL_EXCEEDS_RISK_FUND",
                details={"total_amount": f"At most {limit} fen."},
            )

    request = {"post_payments": payments, "post_discounts": discounts, "total_amount": total}
    for key in ("time_range", "location"):
        if data.get(key):
            request[key] = dict(data[key])
    if not order.time_range.get("end_time") and not request.get("time_range", {}).get("end_time"):
        # WeChat: an order created without an end time must be completed with one. Unless the caller names it,
        # the service ended now.
        request["time_range"] = {**request.get("time_range", {}), "end_time": china_timestamp(_now())}
    wechat_device = _wechat_device(store=device.store if device else order.store, end=device)
    if wechat_device:
        request["device"] = wechat_device
    return _perform(
        order=order,
        action="complete",
        pending=Pending.COMPLETE,
        check=check,
        pending_request=request,
        call=lambda config, locked: wechatpay_v3.payscore_complete(
            config,
            locked.out_order_no,
            service_id=locked.service_id,
            post_payments=payments,
            post_discounts=discounts,
            total_amount=total,
            time_range=request.get("time_range"),
            location=request.get("location"),
            device=wechat_device,
            client=channels.upstream_client,
            timeouts=_timeouts(),
            clock=_timestamp,
        ),
        actor=actor,
        user=user,
        actor_label=actor_label,
    )


def service_order_cancel(
    *,
    order: ServiceOrder,
    reason: str,
    actor: str = Actor.TERMINAL,
    user: AbstractBaseUser | None = None,
    actor_label: str = "",
) -> ServiceOrder:
    """取消: allowed in CREATED or DOING (not once the collection is paid); reason ≤50 characters."""
    if not reason or len(reason) > 50:
        raise InvalidInput(details={"reason": "1-50 characters."})

    def check(locked: ServiceOrder) -> None:
        if locked.state not in (State.CREATED, State.DOING) or locked.collection_state == Collection.USER_PAID:
            raise _state_error(locked, "cancel", "CREATED or DOING (unpaid)")

    return _perform(
        order=order,
        action="cancel",
        pending=Pending.CANCEL,
        check=check,
        pending_request={"reason": reason},
        call=lambda config, locked: wechatpay_v3.payscore_cancel(
            config,
            locked.out_order_no,
            service_id=locked.service_id,
            reason=reason,
            client=channels.upstream_client,
            timeouts=_timeouts(),
            clock=_timestamp,
        ),
        actor=actor,
        user=user,
        actor_label=actor_label,
    )


def service_order_sync(
    *,
    order: ServiceOrder,
    paid_time: str,
    actor: str = Actor.TERMINAL,
    user: AbstractBaseUser | None = None,
    actor_label: str = "",
) -> ServiceOrder:
    """同步 Order_Paid: the user paid through another channel; only after MCH_COMPLETE and while unpaid."""
    if len(paid_time) != 14 or not paid_time.isdigit():
        raise InvalidInput(details={"paid_time": "yyyyMMddHHmmss."})

    def check(locked: ServiceOrder) -> None:
        if not (
            locked.state == State.DOING
            and locked.state_description == Desc.MCH_COMPLETE
            and locked.collection_state != Collection.USER_PAID
        ):
            raise _state_error(locked, "sync", "DOING with MCH_COMPLETE (unpaid)")

    return _perform(
        order=order,
        action="sync",
        pending=Pending.SYNC,
        check=check,
        pending_request={"type": "Order_Paid", "paid_time": paid_time},
        call=lambda config, locked: wechatpay_v3.payscore_sync(
            config,
            locked.out_order_no,
            service_id=locked.service_id,
            paid_time=paid_time,
            client=channels.upstream_client,
            timeouts=_timeouts(),
            clock=_timestamp,
        ),
        actor=actor,
        user=user,
        actor_label=actor_label,
    )


# --- refresh (query) and settling pending actions ----------------------------------------------------------------


def _pending_applied(order: ServiceOrder) -> bool:
    if order.pending_action == Pending.CREATE:
        return order.state != State.PENDING
    if order.pending_action == Pending.COMPLETE:
        return order.state_description == Desc.MCH_COMPLETE or order.state in FINAL_STATES
    if order.pending_action == Pending.CANCEL:
        return order.state == State.REVOKED
    if order.pending_action == Pending.SYNC:
        return order.collection_state == Collection.USER_PAID
    return True


def _pending_token(order: ServiceOrder) -> tuple:
    return order.pending_action, order.pending_request, order.check_attempts


def service_order_refresh(
    *,
    order_id: int,
    actor: str = Actor.WORKER,
    user: AbstractBaseUser | None = None,
    actor_label: str = "",
    now: datetime | None = None,
) -> ServiceOrder:
    """Query WeChat and take its view. Settles a pending action: applied → done; not applied → reported on the
    order (`last_error_code` NOT_APPLIED) so the terminal or staff can send it again; a create WeChat never
    received is sent again (identical re-submission is idempotent upstream). Safe to call twice or concurrently."""
    now = now or _now()
    judged = None  # the pending action this query was taken to judge, if any
    with transaction.atomic():
        order = _locked(order_id)
        if order.state == State.REJECTED or (order.state in FINAL_STATES and not order.pending_action):
            if order.next_check_at is not None:
                order.next_check_at = None
                order.save(update_fields=["next_check_at", "updated_at"])
            return order
        if order.pending_action and order.next_check_at and order.next_check_at > now:
            return order  # a call or query is in flight (or just failed): its lease decides when to look again
        if order.pending_action:
            order.check_attempts += 1
            order.next_check_at = now + _lease()
            order.save(update_fields=["check_attempts", "next_check_at", "updated_at"])
            judged = _pending_token(order)
        _audit(order, "refresh", user, actor_label, {})
    config = channels.wechat_v3_config(order.merchant)
    result = channels.observed(
        "payscore_query",
        order.merchant,
        lambda: wechatpay_v3.payscore_query(
            config,
            service_id=order.service_id,
            out_order_no=order.out_order_no,
            client=channels.upstream_client,
            timeouts=_timeouts(),
            clock=_timestamp,
        ),
    )
    now = max(now, _now())
    resend_create = False
    with transaction.atomic():
        order = _locked(order_id)
        _event(order, "query", actor=actor, result=result, user=user)
        # Only the pending action this query was taken for is judged by it. One that started while the query was
        # out (a complete sent meanwhile) may have reached WeChat after the query was answered: the answer says
        # nothing about it, and its own lease and answer stand.
        judging = judged is not None and judged == _pending_token(order)
        if result.outcome is Outcome.SUCCESS:
            apply_snapshot(order, result.data, actor=actor, now=now, user=user)
            if judging:
                if _pending_applied(order):
                    if order.pending_action == Pending.COMPLETE:
                        _take_completed_content(order)
                    _settle_pending(order)
                    order.last_error_code = order.last_error_message = ""
                else:
                    action = order.pending_action
                    _settle_pending(order)
                    order.last_error_code = "NOT_APPLIED"
                    order.last_error_message = f"WeChat did not act on the {action.lower()} call; send it again."
                    _event(order, "pending.not_applied", actor=actor, code="NOT_APPLIED", message=action)
            elif not order.pending_action:
                order.next_check_at = None
        elif result.code in ("ORDER_NOT_EXIST", "ORDER_NOT_ EXIST") and order.state == State.PENDING and judging:
            resend_create = True  # the create never reached WeChat: send the same one again
        elif judging:
            order.next_check_at = now + _recheck_delay(order.check_attempts)
        order.save()
    if resend_create:
        return _send_create(order_id=order_id, actor=actor)
    if order.pending_action and order.next_check_at:
        _schedule_refresh(order)
    return order


def service_order_refresh_if_stale(*, order: ServiceOrder, actor: str = Actor.TERMINAL) -> ServiceOrder:
    """For GET: re-query when the last answer is older than PAYSCORE_REFRESH_SECONDS and the order can still move."""
    if order.state == State.REJECTED or (order.state in FINAL_STATES and not order.pending_action):
        return order
    now = _now()
    if order.last_synced_at and now - order.last_synced_at < timedelta(seconds=refresh_seconds()):
        return order
    try:
        return service_order_refresh(order_id=order.pk, actor=actor, now=now)
    except DomainError:
        return order  # e.g. credentials removed meanwhile: answer with what we know


# --- reconciliation ----------------------------------------------------------------------------------------------


def service_orders_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Orders whose state may have moved without us hearing: overdue checks (pending actions), completed orders
    still collecting, and CREATED orders (recent ones, and ones near WeChat's 30-day expiry)."""
    from django.db.models import Q

    now = now or _now()
    paying_every = timedelta(seconds=_setting("PAYSCORE_RECONCILE_PAYING_SECONDS", 60))
    created_every = timedelta(seconds=_setting("PAYSCORE_RECONCILE_CREATED_SECONDS", 600))
    expiry = timedelta(days=_setting("PAYSCORE_EXPIRY_DAYS", 30))
    stale_paying = Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=now - paying_every)
    stale_created = Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=now - created_every)
    paying = Q(state=State.DOING, state_description=Desc.MCH_COMPLETE) & ~Q(collection_state=Collection.USER_PAID)
    created = Q(state=State.CREATED) & (
        Q(created_at__gte=now - timedelta(days=1)) | Q(created_at__lte=now - expiry + timedelta(days=1))
    )
    due = Q(next_check_at__lte=now) | (
        Q(next_check_at__isnull=True) & ((paying & stale_paying) | (created & stale_created))
    )
    return list(ServiceOrder.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:limit])
