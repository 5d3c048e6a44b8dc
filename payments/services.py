"""Every write of the money path: create, submit, resolve (query → reverse), cancel, refund, notifications.

Pattern for every upstream call (record the intent before the side effect; docs/architecture.md, "Payment states"):
1. under the row lock, check the state and record the intent (counters, a lease in `next_check_at` so the sweeper
   leaves the order alone while the call is in flight), commit;
2. call upstream without holding a transaction (a 10 s call must not block the database);
3. under the row lock again, record the answer as an event and apply it only if the state still allows.
If the process dies between 1 and 3, the lease expires and the sweeper drives the order on: the next step is always
a query or an idempotent retry, never a second charge.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from payments import channels
from payments.channels import Answer
from payments.gateways.base import Outcome
from payments.gateways.umpay import CHINA_TZ
from payments.models import UNSETTLED_PAYMENT_STATUSES, Payment, PaymentEvent, PaymentStatus, Refund
from payments.representation import payment_output, refund_output
from portal import jobs, metrics, wakeup
from portal.errors import Conflict, InvalidInput, InvalidState, UpstreamUnavailable
from portal.models import Device, Merchant
from portal.request_id import bind
from portal.services import audit_record
from webhooks.models import EventType
from webhooks.services import event_emit

S = PaymentStatus
Actor = PaymentEvent.Actor
# The workers' tasks (payments/tasks.py) that drive a payment / a refund one step on; queued by name (portal.jobs).
RESOLVE_PAYMENT_TASK = "payments.tasks.resolve_payment"
PROCESS_REFUND_TASK = "payments.tasks.process_refund"

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{1,32}$")
WECHAT_CODE = re.compile(r"^1[0-5]\d{16}$")  # 18 digits starting 10-15
ALIPAY_CODE = re.compile(r"^(2[5-9]|30)\d{14,22}$")  # 16-24 digits starting 25-30
UNIONPAY_CODE = re.compile(r"^62\d{17}$")  # 19 digits starting 62
FACE_CODE = re.compile(r"^[0-9A-Za-z_\-]{1,128}$")  # WeChat face_code: opaque, passed to micropay as auth_code
# Channel codes the lifecycle acts on, in WeChat's v2 and v3 spellings (v3 renamed them; UMF's never match).
_QUERY_AT_ONCE = frozenset({"SYSTEMERROR", "BANKERROR", "SYSTEM_ERROR", "BANK_ERROR"})
_REFUND_BOUNCED = frozenset({"CHANGE", "ABNORMAL"})

# Which status may follow which. ATTENTION is where a person takes over; they may settle it either way.
TRANSITIONS: dict[str, set[str]] = {
    S.PAYING: {S.SUCCESS, S.FAILED, S.REVERSING, S.ATTENTION},
    S.SUCCESS: {S.REVERSING, S.REVERSED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.ATTENTION},
    S.REVERSING: {S.REVERSED, S.FAILED, S.ATTENTION},
    S.PARTIALLY_REFUNDED: {S.REFUNDED, S.ATTENTION},
    S.ATTENTION: {S.SUCCESS, S.FAILED, S.REVERSED, S.REFUNDED, S.PARTIALLY_REFUNDED, S.REVERSING},
    S.FAILED: set(),
    S.REVERSED: set(),
    S.REFUNDED: set(),
}


def _now() -> datetime:
    return timezone.now()


def china_timestamp(moment: datetime) -> str:
    return moment.astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


# --- events and transitions ----------------------------------------------------------------------------------------


def _event(
    payment: Payment,
    action: str,
    *,
    actor: str,
    answer: Answer | None = None,
    from_status: str = "",
    to_status: str = "",
    refund: Refund | None = None,
    user: AbstractBaseUser | None = None,
    message: str = "",
    batch: list[PaymentEvent] | None = None,
    code: str = "",
    details: dict | None = None,
) -> PaymentEvent:
    """Append an event. With `batch`, the event is only built and added to the list; the caller saves the list
    with one INSERT (`bulk_create`) inside the same transaction as the change it records. `code` and `details`
    (stored as the event's response) record evidence that is not a channel answer."""
    event = PaymentEvent(
        payment=payment,
        refund=refund,
        action=action,
        outcome=answer.outcome.value if answer else "",
        code=(code or (answer.code if answer else ""))[:64],
        message=(message or (answer.message if answer else ""))[:255],
        request=answer.request if answer else {},
        response=details if details is not None else (answer.response if answer else {}),
        latency_ms=answer.latency_ms if answer else None,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        actor_user=user,
    )
    if batch is None:
        event.save(force_insert=True)
    else:
        batch.append(event)
    return event


def _transition(
    payment: Payment,
    to: str,
    *,
    actor: str,
    user: AbstractBaseUser | None = None,
    message: str = "",
    batch: list[PaymentEvent] | None = None,
) -> None:
    """Change status (the caller holds the row lock, or writes with an UPDATE conditional on the old status).
    Refuses transitions the state machine does not allow."""
    if to == payment.status:
        return
    if to not in TRANSITIONS[payment.status]:
        raise InvalidState(f"A {payment.status} payment cannot become {to}.", code="INVALID_TRANSITION")
    _event(
        payment, "state", actor=actor, from_status=payment.status, to_status=to, user=user, message=message,
        batch=batch,
    )  # fmt: skip
    from_status, payment.status = payment.status, to
    wakeup.publish(wakeup.topic_for("payment", payment.pk))  # a terminal may be waiting for this, once committed
    if batch is None:
        _notify_payment(payment)  # with a batch, the caller notifies (and counts) once it has written the batch
        _count_outcome(payment, from_status)


def _count_outcome(payment: Payment, from_status: str) -> None:
    """A payment leaving PAYING / REVERSING for a settled status is counted in the metrics once its transaction
    commits (never for a rollback, nor a savepoint rolled back), with the time since it was created."""
    if from_status in UNSETTLED_PAYMENT_STATUSES and payment.status not in UNSETTLED_PAYMENT_STATUSES:
        seconds = (_now() - payment.created_at).total_seconds()
        transaction.on_commit(partial(metrics.payment_outcome, payment.channel, payment.status, seconds))


# The payment statuses merchants' systems are told about (webhooks), and the refund statuses.
PAYMENT_EVENTS = {
    S.SUCCESS: EventType.PAYMENT_SUCCEEDED,
    S.FAILED: EventType.PAYMENT_FAILED,
    S.REVERSED: EventType.PAYMENT_REVERSED,
    S.ATTENTION: EventType.PAYMENT_ATTENTION,
}
REFUND_EVENTS = {Refund.Status.SUCCESS: EventType.REFUND_SUCCEEDED, Refund.Status.FAILED: EventType.REFUND_FAILED}
# Where the workers leave a refund for good (counted in the metrics; a person's resolution afterwards is not).
REFUND_OUTCOMES = (Refund.Status.SUCCESS, Refund.Status.FAILED, Refund.Status.ATTENTION)


def _order_key(payment: Payment) -> str:
    return f"payment:{payment.pk}"  # a payment's events and its refunds' reach an endpoint in the order made


def _notify_payment(payment: Payment) -> None:
    """The payment's new status as a webhook event, in the transaction that sets it. Called once every field the
    transition changes is set on `payment` (the event carries the payment as the terminal API shows it)."""
    if payment.status in PAYMENT_EVENTS:
        event_emit(
            merchant=payment.merchant,
            type=PAYMENT_EVENTS[payment.status],
            data=lambda: payment_output(payment),
            order_key=_order_key(payment),
        )


def _notify_refund(payment: Payment, refund: Refund) -> None:
    if refund.status in REFUND_EVENTS:
        event_emit(
            merchant=payment.merchant,
            type=REFUND_EVENTS[refund.status],
            data=lambda: {**refund_output(refund), "payment": payment_output(payment)},
            order_key=_order_key(payment),
        )


_RELATED = ("merchant", "store", "device")


def _locked(payment_id: int, *, known: Payment | None = None) -> Payment:
    """The payment row under FOR UPDATE, with its merchant, store and device. `known`: an instance of the same
    payment whose related rows are already loaded (they do not change under a payment) — they are reused instead of
    joined again, which is most of the cost of this read on the hot path."""
    fields = [Payment._meta.get_field(name) for name in _RELATED]
    reused = {field: field.get_cached_value(known) for field in fields if known is not None and field.is_cached(known)}
    joins = ["merchant__provider" if f.name == "merchant" else f.name for f in fields if f not in reused]
    # Lock the payment row only: PostgreSQL refuses FOR UPDATE across the nullable joins.
    rows = Payment.objects.select_for_update(of=("self",))
    payment = (rows.select_related(*joins) if joins else rows).get(pk=payment_id)
    for field, value in reused.items():
        field.set_cached_value(payment, value)
    return payment


# --- creating and submitting a payment ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentInput:
    total_fee: int
    body: str
    auth_code: str
    method: str
    out_trade_no: str = ""
    openid: str = ""
    attach: str = ""


def detect_wallet(*, auth_code: str, method: str, channel: str) -> str:
    """Which wallet a code belongs to, validated for the merchant's channel (WeChat: 18 digits 10-15; UMF also
    Alipay 16-24 digits 25-30 and UnionPay 19 digits 62)."""
    if method == Payment.Method.FACE and channel != Merchant.Channel.UMPAY:
        if not FACE_CODE.match(auth_code):
            raise InvalidInput(details={"auth_code": "A face_code is 1-128 letters, digits, '_' or '-'."})
        return Payment.Wallet.WECHAT
    if WECHAT_CODE.match(auth_code):
        return Payment.Wallet.WECHAT
    if method == Payment.Method.FACE:
        # UMF charges face pay as an 18-digit WeChat payment code (face_code_type "1").
        raise InvalidInput(
            details={"auth_code": "Face pay through UMF needs the SDK's 18-digit code (face_code_type 1)."}
        )
    if channel == Merchant.Channel.UMPAY:
        if ALIPAY_CODE.match(auth_code):
            return Payment.Wallet.ALIPAY
        if UNIONPAY_CODE.match(auth_code):
            return Payment.Wallet.UNIONPAY
        raise InvalidInput(details={"auth_code": "Not a WeChat, Alipay or UnionPay payment code."})
    raise InvalidInput(details={"auth_code": "Not a WeChat payment code (18 digits starting 10-15)."})


def _fingerprint(merchant_id: int, data: PaymentInput) -> str:
    # The auth code is part of "same content": a retry carries the same code; a different code is another payment.
    parts = [str(merchant_id), str(data.total_fee), data.body, data.auth_code, data.method, data.openid, data.attach]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def new_out_trade_no(now: datetime | None = None) -> str:
    return china_timestamp(now or _now()) + secrets.token_hex(6).upper()  # 14 + 12 = 26 chars


def payment_create(*, device: Device, data: PaymentInput) -> tuple[Payment, bool]:
    """Persist the order before anything is sent. Returns (payment, created).

    The same out_trade_no with the same content returns the existing order (a terminal retry, no second charge);
    with different content it is a conflict. Concurrent duplicates are settled by the unique constraint.
    """
    merchant = device.store.merchant
    if isinstance(data.total_fee, bool) or not isinstance(data.total_fee, int) or data.total_fee <= 0:
        raise InvalidInput(details={"total_fee": "A positive whole number of fen."})
    out_trade_no = data.out_trade_no or new_out_trade_no()
    if not OUT_TRADE_NO.match(out_trade_no):
        raise InvalidInput(details={"out_trade_no": "1-32 characters of 0-9 A-Z a-z _ - | *."})
    bind(out_trade_no=out_trade_no)  # on this request's log lines
    wallet = detect_wallet(auth_code=data.auth_code, method=data.method, channel=merchant.channel)
    fingerprint = _fingerprint(merchant.pk, data)
    now = _now()
    # The order is inserted already claimed for sending (submitted_at): only the request that inserted it sends the
    # charge, so no other process can race it for that right. Lease: if this request dies before or during the
    # call, the sweeper queries after next_check_at; the charge is never sent again.
    lease = now + _seconds(settings.PAYMENT_CALL_TIMEOUT + settings.PAYMENT_QUERY_FIRST_DELAY)
    try:
        with transaction.atomic():
            payment = Payment.objects.create(
                merchant=merchant,
                store=device.store,
                device=device,
                channel=merchant.channel,
                method=data.method,
                wallet=wallet,
                out_trade_no=out_trade_no,
                total_fee=data.total_fee,
                body=data.body,
                attach=data.attach,
                openid=data.openid,
                auth_code_hint=data.auth_code[:4],
                request_fingerprint=fingerprint,
                order_time=china_timestamp(now),
                submitted_at=now,
                next_check_at=lease,
            )
            _event(payment, "created", actor=Actor.TERMINAL, to_status=S.PAYING)
    except IntegrityError:
        existing = Payment.objects.filter(merchant=merchant, out_trade_no=out_trade_no).first()
        if existing is None:
            raise
        if existing.request_fingerprint != fingerprint:
            raise Conflict(
                "This out_trade_no was already used for a different payment.",
                code="OUT_TRADE_NO_CONFLICT",
                details={"out_trade_no": out_trade_no},
            ) from None
        return existing, False
    return payment, True


def payment_submit(*, payment: Payment, auth_code: str) -> Payment:
    """Send the payment call once. Only the request whose `payment_create` inserted the order calls this (the
    insert claimed it). `payment` is the instance that insert returned."""
    answer = channels.guarded(channels.charge, payment=payment, auth_code=auth_code)
    if answer.code == channels.NOT_CONFIGURED:
        answer = replace(answer, outcome=Outcome.REJECTED)  # refused before sending: certainly not charged

    with transaction.atomic():
        # While the call was out, only a cancel (or the resolver, once the lease has run out) can have moved the
        # order off PAYING. So the answer is applied to the instance in hand and written with one UPDATE conditional
        # on PAYING, which takes the row lock itself.
        events: list[PaymentEvent] = []
        claims_transaction_id = bool(answer.transaction_id) and answer.transaction_id != payment.transaction_id
        _apply_micropay_answer(payment, answer, events)
        changes = {name: getattr(payment, name) for name in _ANSWER_FIELDS}
        rows = Payment.objects.filter(pk=payment.pk, status=S.PAYING)
        try:
            if claims_transaction_id:
                with transaction.atomic():  # savepoint: the unique transaction id may belong to another order
                    updated = rows.update(**changes)
            else:
                updated = rows.update(**changes)
        except IntegrityError:
            payment = _locked(payment.pk, known=payment)
            _event(payment, "micropay", actor=Actor.TERMINAL, answer=answer)
            if payment.status == S.PAYING:
                _transaction_id_conflict(payment, answer.transaction_id, actor=Actor.TERMINAL)
                payment.save()
            return payment
        if updated:
            PaymentEvent.objects.bulk_create(events)  # one multi-row INSERT, in list order
            _notify_payment(payment)
            _count_outcome(payment, S.PAYING)
        else:
            # Moved on meanwhile (cancelled: the reverse path owns it now): record the answer under the lock only.
            payment = _locked(payment.pk, known=payment)
            _event(payment, "micropay", actor=Actor.TERMINAL, answer=answer)
            return payment
    if payment.status == S.PAYING:
        _schedule_resolution(payment)
    return payment


def _apply_micropay_answer(payment: Payment, answer: Answer, events: list[PaymentEvent]) -> None:
    """The answer to the payment call, applied to a PAYING payment (the caller writes the row and `events`)."""
    _event(payment, "micropay", actor=Actor.TERMINAL, answer=answer, batch=events)
    now = _now()
    payment.updated_at = now
    if answer.outcome is Outcome.SUCCESS:
        _mark_paid(payment, answer, actor=Actor.TERMINAL, now=now, batch=events)
    elif answer.outcome is Outcome.REJECTED:
        payment.err_code, payment.err_message = answer.code, answer.message
        payment.next_check_at = None
        _transition(payment, S.FAILED, actor=Actor.TERMINAL, batch=events)
    else:
        # Unknown: the user may have been charged. A system or bank error → query now; USERPAYING → in ~5 s.
        payment.err_code, payment.err_message = answer.code, answer.message
        delay = 0 if answer.code in _QUERY_AT_ONCE else settings.PAYMENT_QUERY_FIRST_DELAY
        payment.next_check_at = now + _seconds(delay)


# What recording a payment call's answer may change (the columns `payment_submit` writes back).
_ANSWER_FIELDS = [
    "status", "transaction_id", "wallet_transaction_id", "openid", "err_code", "err_message", "paid_at",
    "next_check_at", "updated_at",
]  # fmt: skip


def _mark_paid(
    payment: Payment, answer: Answer, *, actor: str, now: datetime, batch: list[PaymentEvent] | None = None
) -> None:
    payment.transaction_id = answer.transaction_id or payment.transaction_id
    payment.wallet_transaction_id = answer.wallet_transaction_id or payment.wallet_transaction_id
    payment.openid = answer.openid or payment.openid
    payment.err_code = payment.err_message = ""
    payment.paid_at = payment.paid_at or now
    payment.next_check_at = None
    _transition(payment, S.SUCCESS, actor=actor, batch=batch)


TRANSACTION_ID_CONFLICT = "TRANSACTION_ID_CONFLICT"


def _transaction_id_conflict(payment: Payment, transaction_id: str, *, actor: str) -> None:
    """The channel says this order was paid under a transaction id that already belongs to another order (the
    (channel, transaction_id) unique constraint refused it). Not applied: which order the money is for is a person's
    call, so the payment goes to ATTENTION with an event naming the other order. The caller holds the row lock, has
    the payment as the database has it (the refused write rolled back to a savepoint) and saves it."""
    other = (
        Payment.objects.filter(channel=payment.channel, transaction_id=transaction_id)
        .exclude(pk=payment.pk)
        .values("pk", "out_trade_no", "merchant_id", "status")
        .first()
    )
    named = f"{other['out_trade_no']} (payment {other['pk']}, {other['status']})" if other else "another order"
    message = f"Transaction id {transaction_id} already belongs to {named}; a person must check which order was paid."
    _event(
        payment,
        "transaction_id.conflict",
        actor=actor,
        code=TRANSACTION_ID_CONFLICT,
        message=message,
        details={"transaction_id": transaction_id, "other_payment": other},
    )
    payment.err_code, payment.err_message = TRANSACTION_ID_CONFLICT, message[:255]
    payment.next_check_at = None
    _transition(
        payment,
        S.ATTENTION,
        actor=actor,
        message=gettext_noop("The channel's transaction id belongs to another order."),
    )


def _schedule_resolution(payment: Payment) -> None:
    countdown = max(0.0, (payment.next_check_at - _now()).total_seconds()) if payment.next_check_at else 0
    jobs.enqueue_on_commit(RESOLVE_PAYMENT_TASK, payment.pk, countdown=countdown)


# --- resolution: query, then reverse -------------------------------------------------------------------------------


def _reverse_allowed_at(payment: Payment) -> datetime:
    return (payment.submitted_at or payment.created_at) + _seconds(settings.PAYMENT_REVERSE_NOT_BEFORE)


def _reverse_backoff(attempt: int) -> timedelta:
    return _seconds(min(60.0, 5.0 * 2 ** max(0, attempt - 1)))


def payment_resolve(*, payment_id: int, now: datetime | None = None) -> Payment:
    """Drive an unsettled payment one step towards a definite outcome. Safe to call twice or concurrently."""
    now = now or _now()
    with transaction.atomic():
        payment = _locked(payment_id)
        bind(merchant_id=payment.merchant_id, out_trade_no=payment.out_trade_no)  # on this task's log lines
        if payment.next_check_at is None or payment.next_check_at > now:
            return payment
        if payment.status not in (S.PAYING, S.REVERSING):
            payment.next_check_at = None
            payment.save(update_fields=["next_check_at", "updated_at"])
            return payment
        if payment.submitted_at is None:
            # The creating request died before (or while) sending: the call may have gone out. Find out.
            payment.submitted_at = payment.created_at
        started = payment.submitted_at
        if payment.status == S.PAYING and now >= started + _seconds(settings.PAYMENT_QUERY_WINDOW):
            _transition(
                payment, S.REVERSING, actor=Actor.WORKER, message=gettext_noop("Still not paid after the query window.")
            )
        if payment.status == S.REVERSING:
            if now < _reverse_allowed_at(payment):
                payment.next_check_at = _reverse_allowed_at(payment)
                payment.save()
                return payment
            if payment.channel == Merchant.Channel.UMPAY and payment.order_time[:8] != china_timestamp(now)[:8]:
                # UMF cancels payment-code orders only on the day they were made.
                payment.next_check_at = None
                _transition(
                    payment,
                    S.ATTENTION,
                    actor=Actor.WORKER,
                    message=gettext_noop("UMF can cancel only on the order's day; refund it if it was charged."),
                )
                payment.save()
                return payment
            action = "reverse"
            payment.reverse_count += 1
        else:
            action = "query"
            payment.query_count += 1
        payment.next_check_at = now + _seconds(settings.UPSTREAM_READ_TIMEOUT + 5)  # lease for the call
        payment.save()

    answer = channels.guarded(channels.reverse if action == "reverse" else channels.query, payment=payment)
    now = max(now, _now())

    with transaction.atomic():
        payment = _locked(payment_id)
        _event(payment, "reverse" if action == "reverse" else "orderquery", actor=Actor.WORKER, answer=answer)
        try:
            # Savepoint: a query's SUCCESS writes the channel's transaction id, which is unique per channel.
            with transaction.atomic():
                if action == "query":
                    _apply_query(payment, answer, now)
                else:
                    _apply_reverse(payment, answer, now)
                payment.save()
        except IntegrityError:
            # Another order holds that transaction id: decided here, under the lock, so the sweeper does not hit
            # the same error on every retry.
            if not answer.transaction_id:
                raise
            payment = _locked(payment_id)
            _transaction_id_conflict(payment, answer.transaction_id, actor=Actor.WORKER)
            payment.save()
    if payment.next_check_at is not None:
        _schedule_resolution(payment)
    return payment


def _apply_query(payment: Payment, answer: Answer, now: datetime) -> None:
    if payment.status != S.PAYING:
        return
    if answer.outcome is Outcome.SUCCESS:
        _mark_paid(payment, answer, actor=Actor.WORKER, now=now)
        return
    if answer.outcome is Outcome.REJECTED and not answer.order_missing:
        # Closed, revoked or failed upstream: definitely not charged. (A query's "no such order" — WeChat
        # ORDERNOTEXIST, UMF 17 — right after a timed-out call may only mean the channel has not recorded it yet, so
        # it keeps the order open until the reverse settles it.)
        payment.err_code, payment.err_message = answer.code, answer.message
        payment.next_check_at = None
        _transition(payment, S.FAILED, actor=Actor.WORKER)
        return
    started = payment.submitted_at or payment.created_at
    if now + _seconds(settings.PAYMENT_QUERY_INTERVAL) <= started + _seconds(settings.PAYMENT_QUERY_WINDOW):
        payment.next_check_at = now + _seconds(settings.PAYMENT_QUERY_INTERVAL)
    else:
        _transition(
            payment, S.REVERSING, actor=Actor.WORKER, message=gettext_noop("Still not paid after the query window.")
        )
        payment.next_check_at = max(now, _reverse_allowed_at(payment))


def _apply_reverse(payment: Payment, answer: Answer, now: datetime) -> None:
    if payment.status != S.REVERSING:
        return
    if answer.outcome is Outcome.SUCCESS:
        payment.next_check_at = None
        _transition(payment, S.REVERSED, actor=Actor.WORKER)
        return
    if answer.outcome is Outcome.REJECTED:
        payment.next_check_at = None
        payment.err_code, payment.err_message = answer.code, answer.message
        if answer.order_missing:
            # The reverse, sent after the query window, finds no such order either (WeChat ORDERNOTEXIST, UMF 17).
            _transition(
                payment, S.FAILED, actor=Actor.WORKER, message=gettext_noop("The payment never reached the channel.")
            )
        else:
            _transition(
                payment,
                S.ATTENTION,
                actor=Actor.WORKER,
                message=gettext_noop("The channel refused the reverse (recall=N or expired); a person must settle it."),
            )
        return
    if payment.reverse_count >= settings.PAYMENT_REVERSE_MAX_ATTEMPTS:
        payment.next_check_at = None
        _transition(
            payment,
            S.ATTENTION,
            actor=Actor.WORKER,
            message=gettext_noop("Reverse kept failing; a person must settle it."),
        )
        return
    backoff = now + _reverse_backoff(payment.reverse_count)
    if answer.code == "USERPAYING":
        # WeChat refuses to reverse while the user is still paying and closes a quick-pay order the user never paid
        # 45 s after the call: ask again just after that, not on the growing backoff.
        closes = (payment.submitted_at or payment.created_at) + _seconds(settings.PAYMENT_UNPAID_CLOSE_SECONDS + 2)
        backoff = min(backoff, max(now + _seconds(5), closes))
    payment.next_check_at = backoff


def payment_cancel_allowed(payment: Payment, now: datetime | None = None) -> bool:
    """Whether a cancel (撤销) can still be sent: an unsettled payment always; a paid one, untouched by refunds, only
    inside the channel's reverse window — past it the reverse would be refused upstream and leave a good payment in
    ATTENTION, so it is refunded instead."""
    if payment.reserved_refund_fee or payment.status not in (S.PAYING, S.SUCCESS):
        return False
    return payment.status == S.PAYING or _reverse_window_open(payment, now or _now())


def payment_cancel(*, payment: Payment, actor: str = Actor.TERMINAL, user: AbstractBaseUser | None = None) -> Payment:
    """The user walked away (or staff reverses): reverse the payment, whatever its outcome so far."""
    bind(merchant_id=payment.merchant_id, out_trade_no=payment.out_trade_no)  # on this request's log lines
    with transaction.atomic():
        payment = _locked(payment.pk)
        if payment.status in (S.REVERSING, S.REVERSED, S.FAILED):
            return payment  # already cancelled or never charged: nothing to do, same answer again
        if not payment_cancel_allowed(payment):
            raise InvalidState(
                f"A {payment.status} payment cannot be cancelled; refund it instead.", code="NOT_CANCELLABLE"
            )
        _transition(payment, S.REVERSING, actor=actor, user=user, message=gettext_noop("Cancel requested."))
        payment.next_check_at = max(_now(), _reverse_allowed_at(payment))
        payment.save()
        if user is not None:
            audit_record(
                actor=user, action="payment.reverse", obj=payment, details={"out_trade_no": payment.out_trade_no}
            )
        _schedule_resolution(payment)
    return payment


def payment_is_settled(payment: Payment) -> bool:
    """Whether the outcome is definite (not PAYING / REVERSING): what a waiting terminal waits for."""
    return payment.status not in UNSETTLED_PAYMENT_STATUSES


# --- authinfo ------------------------------------------------------------------------------------------------------


def authinfo_get(*, device: Device, rawdata: str) -> channels.Authinfo:
    """The SDK call credential for this device. Reused within expires_in for the same device, parameters and
    rawdata (WeChat and UMF allow reuse within expires_in); a new rawdata (the SDK was initialised again) fetches a
    new one."""
    merchant = device.store.merchant
    key_source = "|".join(
        [
            str(device.pk),
            merchant.channel,
            merchant.appid,
            merchant.mch_id,
            merchant.sub_appid,
            merchant.sub_mch_id,
            merchant.umpay_acq_mer_id,
            device.store.store_id,
            rawdata,
        ]
    )
    key = "authinfo:" + hashlib.sha256(key_source.encode("utf-8")).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return channels.Authinfo(**cached)
    with channels.request_slot(merchant):
        info, answer = channels.fetch_authinfo(device=device, rawdata=rawdata)
    if info is None:
        if answer.outcome is Outcome.REJECTED:
            raise InvalidInput(
                answer.message or "The channel refused the rawdata.",
                code="AUTHINFO_REJECTED",
                details={"upstream_code": answer.code},
            )
        raise UpstreamUnavailable(details={"upstream_code": answer.code})
    ttl = max(0, info.expires_in - settings.AUTHINFO_CACHE_MARGIN_SECONDS)
    if ttl:
        cache.set(key, info.__dict__, ttl)
    return info


# --- refunds -------------------------------------------------------------------------------------------------------


def _reverse_window_open(payment: Payment, now: datetime) -> bool:
    if payment.channel == Merchant.Channel.UMPAY:
        return payment.order_time[:8] == china_timestamp(now)[:8]
    paid = payment.paid_at or payment.created_at
    return now - paid <= timedelta(days=settings.PAYMENT_REVERSE_WINDOW_DAYS)


REQUEST_KEY = re.compile(r"^[0-9A-Za-z_-]{8,64}$")


def refund_create(
    *,
    payment: Payment,
    refund_fee: int,
    reason: str = "",
    user: AbstractBaseUser | None,
    actor_label: str = "",
    request_key: str = "",
    actor: str = "",
) -> Refund:
    """Reserve the amount under the payment's row lock, so concurrent refunds can never exceed what was paid.

    `actor`: who asked, for the payment's timeline (default: staff when a user or label is given).
    `request_key`: the requester's key for this refund (the console's confirmation form, an API client's retry). The
    same key on the same payment returns the refund it created — a double click or a retried request never refunds
    twice; with a different amount it is a conflict. Settled under the row lock, backed by a unique constraint."""
    if isinstance(refund_fee, bool) or not isinstance(refund_fee, int) or refund_fee <= 0:
        raise InvalidInput(details={"refund_fee": "A positive whole number of fen."})
    if len(reason) > 80:
        raise InvalidInput(details={"reason": "At most 80 characters."})
    if request_key and not REQUEST_KEY.match(request_key):
        raise InvalidInput(details={"request_key": "8-64 characters of 0-9 A-Z a-z _ -."})
    bind(merchant_id=payment.merchant_id, out_trade_no=payment.out_trade_no)  # on this request's log lines
    now = _now()
    with transaction.atomic():
        payment = _locked(payment.pk)
        if request_key:
            existing = payment.refunds.filter(request_key=request_key).first()
            if existing is not None:
                if existing.refund_fee != refund_fee:
                    raise Conflict(
                        "This request_key was already used for a refund of a different amount.",
                        code="REQUEST_KEY_CONFLICT",
                        details={"request_key": f"Used for {existing.out_refund_no} ({existing.refund_fee} fen)."},
                    )
                return existing
        if payment.status not in (S.SUCCESS, S.PARTIALLY_REFUNDED):
            raise InvalidState(
                f"Only paid payments can be refunded (this one is {payment.status}).", code="NOT_REFUNDABLE"
            )
        available = payment.total_fee - payment.reserved_refund_fee
        if refund_fee > available:
            raise InvalidInput(
                "The refund is larger than what is left to refund.",
                code="REFUND_EXCEEDS_PAYMENT",
                details={"refund_fee": f"At most {available} fen can still be refunded."},
            )
        # A full, first refund inside the reverse window is a reverse (撤销): no refund fee, immediate.
        whole = refund_fee == payment.total_fee and payment.reserved_refund_fee == 0
        kind = Refund.Kind.REVERSE if whole and _reverse_window_open(payment, now) else Refund.Kind.REFUND
        sequence = payment.refunds.count() + 1
        payment.reserved_refund_fee += refund_fee
        payment.save(update_fields=["reserved_refund_fee", "updated_at"])
        refund = Refund.objects.create(
            payment=payment,
            out_refund_no=f"{payment.out_trade_no}R{sequence:02d}",
            refund_fee=refund_fee,
            reason=reason,
            kind=kind,
            order_time=china_timestamp(now),
            # WeChat: no reverse sooner than 15 s after the payment call; this one waits too, like every other.
            next_check_at=max(now, _reverse_allowed_at(payment)) if kind == Refund.Kind.REVERSE else now,
            created_by=user,
            request_key=request_key,
        )
        _event(
            payment,
            "refund.created",
            actor=actor or (Actor.STAFF if user or actor_label else Actor.WORKER),
            refund=refund,
            user=user,
            message=reason[:255],  # the kind and amount are the refund's own fields
        )
        audit_record(
            actor=user,
            actor_label=actor_label or None,
            action="payment.refund",
            obj=payment,
            details={
                "out_trade_no": payment.out_trade_no,
                "out_refund_no": refund.out_refund_no,
                "refund_fee": refund_fee,
                "kind": kind,
                "reason": reason,
            },
        )
        _schedule_refund(refund)
    return refund


def _schedule_refund(refund: Refund) -> None:
    countdown = max(0.0, (refund.next_check_at - _now()).total_seconds()) if refund.next_check_at else 0
    jobs.enqueue_on_commit(PROCESS_REFUND_TASK, refund.pk, countdown=countdown)


def _locked_refund(refund_id: int) -> tuple[Payment, Refund]:
    # Lock order: payment first, then refund (every path that takes both does the same).
    payment_id = Refund.objects.values_list("payment_id", flat=True).get(pk=refund_id)
    payment = _locked(payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    refund.payment = payment
    return payment, refund


def refund_process(*, refund_id: int, now: datetime | None = None) -> Refund:
    """Drive a refund one step: send it, or confirm it. Safe to call twice or concurrently."""
    now = now or _now()
    with transaction.atomic():
        payment, refund = _locked_refund(refund_id)
        bind(merchant_id=payment.merchant_id, out_trade_no=payment.out_trade_no)  # on this task's log lines
        if refund.next_check_at is None or refund.next_check_at > now:
            return refund
        if refund.status not in (Refund.Status.PENDING, Refund.Status.PROCESSING):
            refund.next_check_at = None
            refund.save(update_fields=["next_check_at", "updated_at"])
            return refund
        if refund.kind == Refund.Kind.REVERSE:
            action = "reverse"
        else:
            action = "refund" if refund.status == Refund.Status.PENDING else "refundquery"
        refund.attempts += 1
        refund.next_check_at = now + _seconds(settings.UPSTREAM_READ_TIMEOUT + 5)
        refund.save()

    if action == "reverse":
        answer = channels.guarded(channels.reverse, payment=payment)
    else:
        call = channels.refund_submit if action == "refund" else channels.refund_query
        answer = channels.guarded(call, refund=refund)
    now = max(now, _now())

    with transaction.atomic():
        payment, refund = _locked_refund(refund_id)
        _event(payment, action, actor=Actor.WORKER, answer=answer, refund=refund)
        # A refund call's answer counts only while the refund is still PENDING (another worker whose lease came
        # after an expired one may have had it accepted meanwhile; a late refusal must not undo that).
        applies = refund.status == Refund.Status.PENDING or (
            action == "refundquery" and refund.status == Refund.Status.PROCESSING
        )
        if applies:
            {"reverse": _apply_refund_reverse, "refund": _apply_refund_submit, "refundquery": _apply_refund_query}[
                action
            ](payment, refund, answer, now)
            if refund.status in REFUND_OUTCOMES:
                transaction.on_commit(partial(metrics.refund_outcome, payment.channel, refund.status))
        payment.save()
        refund.save()
    if refund.next_check_at is not None:
        _schedule_refund(refund)
    return refund


def _retry_or_attention(refund: Refund, answer: Answer, now: datetime) -> None:
    if refund.attempts >= settings.REFUND_MAX_ATTEMPTS:
        refund.status, refund.next_check_at = Refund.Status.ATTENTION, None
        refund.err_code = answer.code
        refund.err_message = gettext_noop("Gave up retrying; a person must check the channel.")
    else:
        backoff = min(settings.REFUND_RETRY_MAX_SECONDS, 5.0 * 2 ** min(refund.attempts, 7))
        refund.next_check_at = now + _seconds(backoff)


def _refund_done(
    payment: Payment, refund: Refund, *, actor: str = Actor.WORKER, user: AbstractBaseUser | None = None
) -> None:
    refund.status, refund.next_check_at = Refund.Status.SUCCESS, None
    payment.refunded_fee += refund.refund_fee
    target = S.REFUNDED if payment.refunded_fee == payment.total_fee else S.PARTIALLY_REFUNDED
    _transition(payment, target, actor=actor, user=user)
    _notify_refund(payment, refund)


def _refund_failed(payment: Payment, refund: Refund, answer: Answer) -> None:
    refund.status, refund.next_check_at = Refund.Status.FAILED, None
    refund.err_code, refund.err_message = answer.code, answer.message
    payment.reserved_refund_fee -= refund.refund_fee  # release: nothing was refunded
    _notify_refund(payment, refund)


def _apply_refund_reverse(payment: Payment, refund: Refund, answer: Answer, now: datetime) -> None:
    if answer.outcome is Outcome.SUCCESS:
        refund.status, refund.next_check_at = Refund.Status.SUCCESS, None
        payment.refunded_fee = payment.total_fee
        payment.next_check_at = None
        _transition(payment, S.REVERSED, actor=Actor.WORKER, message=gettext_noop("Reversed for a full refund."))
        _notify_refund(payment, refund)
    elif answer.outcome is Outcome.REJECTED:
        # Reverse refused (e.g. REVERSE_EXPIRE): the refund API does the same job.
        refund.kind, refund.next_check_at = Refund.Kind.REFUND, now
        refund.err_code, refund.err_message = answer.code, answer.message
    else:
        _retry_or_attention(refund, answer, now)


def _apply_refund_submit(payment: Payment, refund: Refund, answer: Answer, now: datetime) -> None:
    if answer.outcome is Outcome.SUCCESS:
        refund.status = Refund.Status.PROCESSING  # accepted, not done: confirm with the query
        refund.refund_id = answer.refund_id or refund.refund_id
        refund.next_check_at = now + _seconds(settings.PAYMENT_QUERY_INTERVAL)
    elif answer.outcome is Outcome.REJECTED:
        _refund_failed(payment, refund, answer)
    else:
        _retry_or_attention(refund, answer, now)  # resend later with the same out_refund_no


def _apply_refund_query(payment: Payment, refund: Refund, answer: Answer, now: datetime) -> None:
    if answer.outcome is Outcome.SUCCESS:
        _refund_done(payment, refund)
    elif answer.outcome is Outcome.REJECTED:
        if answer.order_missing:
            refund.status, refund.next_check_at = Refund.Status.PENDING, now  # resend with the same number
        elif answer.code in _REFUND_BOUNCED:
            refund.status, refund.next_check_at = Refund.Status.ATTENTION, None
            refund.err_code = answer.code
            refund.err_message = f"The refund bounced ({answer.code}); settle it by hand."
        else:
            _refund_failed(payment, refund, answer)
    else:
        _retry_or_attention(refund, answer, now)


# --- the sweeper ---------------------------------------------------------------------------------------------------


def due_work(*, now: datetime | None = None, limit: int = 500) -> tuple[list[int], list[int]]:
    """Ids of payments and refunds whose next check is overdue (lost task, killed worker, expired lease)."""
    now = now or _now()
    payments = list(
        Payment.objects.filter(next_check_at__lte=now).order_by("next_check_at").values_list("pk", flat=True)[:limit]
    )
    refunds = list(
        Refund.objects.filter(next_check_at__lte=now).order_by("next_check_at").values_list("pk", flat=True)[:limit]
    )
    return payments, refunds


# --- staff actions (console) ---------------------------------------------------------------------------------------


def payment_refresh(*, payment: Payment, user: AbstractBaseUser | None) -> Payment:
    """Ask the channel now. An unsettled payment is driven by the answer like any scheduled check; a settled one only
    gets the answer recorded in its timeline (for a person comparing our state with the channel's)."""
    with transaction.atomic():
        payment = _locked(payment.pk)
        if payment.status == S.PAYING:
            payment.next_check_at = _now()
            payment.save(update_fields=["next_check_at", "updated_at"])
        audit_record(
            actor=user,
            action="payment.refresh",
            obj=payment,
            details={"out_trade_no": payment.out_trade_no, "status": payment.status},
        )
    if payment.status == S.PAYING:
        return payment_resolve(payment_id=payment.pk)
    answer = channels.guarded(channels.query, payment=payment)
    with transaction.atomic():
        payment = _locked(payment.pk)
        _event(payment, "orderquery", actor=Actor.STAFF, answer=answer, user=user)
    return payment


RESOLUTIONS = (S.SUCCESS, S.FAILED, S.REVERSED, S.REFUNDED)


def payment_resolve_attention(*, payment: Payment, outcome: str, note: str, user: AbstractBaseUser | None) -> Payment:
    """A person settles an ATTENTION payment after checking the channel: what really happened, and why."""
    if outcome not in RESOLUTIONS:
        raise InvalidInput(details={"outcome": gettext("Choose what really happened to the payment.")})
    note = note.strip()
    if not note:
        raise InvalidInput(details={"note": gettext("Say what you checked and why this is the outcome.")})
    with transaction.atomic():
        payment = _locked(payment.pk)
        if payment.status != S.ATTENTION:
            raise InvalidState("Only payments needing attention are settled by hand.", code="NOT_IN_ATTENTION")
        if outcome == S.REFUNDED:
            payment.refunded_fee = payment.reserved_refund_fee = payment.total_fee
        payment.next_check_at = None
        _transition(payment, outcome, actor=Actor.STAFF, user=user, message=note[:255])
        payment.save()
        audit_record(
            actor=user,
            action="payment.resolve",
            obj=payment,
            details={"out_trade_no": payment.out_trade_no, "outcome": outcome, "note": note[:500]},
        )
    return payment


REFUND_RESOLUTIONS = ("SUCCESS", "FAILED", "RETRY")


def refund_resolve_attention(*, refund: Refund, outcome: str, note: str, user: AbstractBaseUser | None) -> Refund:
    """A person settles a refund in ATTENTION after checking the channel: it was refunded (SUCCESS), it was not
    (FAILED: the amount may be refunded again), or it is sent again under the same refund number (RETRY: the channel
    refunds one number at most once, so this cannot pay out twice)."""
    if outcome not in REFUND_RESOLUTIONS:
        raise InvalidInput(details={"outcome": gettext("Choose what happened to the refund.")})
    note = note.strip()
    if not note:
        raise InvalidInput(details={"note": gettext("Say what you checked and why this is the outcome.")})
    with transaction.atomic():
        payment, refund = _locked_refund(refund.pk)
        if refund.status != Refund.Status.ATTENTION:
            raise InvalidState(gettext("Only refunds needing attention are settled by hand."), code="NOT_IN_ATTENTION")
        _event(payment, "refund_resolve", actor=Actor.STAFF, user=user, refund=refund, code=outcome, message=note)
        if outcome == "RETRY":
            refund.status, refund.next_check_at, refund.attempts = Refund.Status.PENDING, _now(), 0
        elif outcome == "FAILED":
            _refund_failed(payment, refund, Answer(outcome=Outcome.REJECTED, code="STAFF", message=note[:255]))
        elif refund.kind == Refund.Kind.REVERSE:
            refund.status, refund.next_check_at = Refund.Status.SUCCESS, None
            payment.refunded_fee, payment.next_check_at = payment.total_fee, None
            _transition(payment, S.REVERSED, actor=Actor.STAFF, user=user, message=note[:255])
            _notify_refund(payment, refund)
        else:
            _refund_done(payment, refund, actor=Actor.STAFF, user=user)
        payment.save()
        refund.save()
        audit_record(
            actor=user,
            action="refund.resolve",
            obj=payment,
            details={
                "out_trade_no": payment.out_trade_no,
                "out_refund_no": refund.out_refund_no,
                "refund_fee": refund.refund_fee,
                "outcome": outcome,
                "note": note[:500],
            },
        )
    if refund.next_check_at is not None:
        _schedule_refund(refund)
    return refund
