"""Console pages for payments: the payments and refunds lists with their filters, totals and exports, the
attention queue, a payment's detail with the event timeline, and staff actions. Every query is scoped
(`payments_visible_to`, `refunds_visible_to`); every action checks the role and goes through a service."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_POST

from payments import lists, selectors, services, timeline
from payments.models import Payment, PaymentStatus, Refund
from portal.errors import DomainError
from portal.exports import china_time, yuan
from portal.models import Merchant
from portal.money import yuan_to_fen
from portal.permissions import Action, require


def _payment(request, pk: int) -> Payment:
    return get_object_or_404(selectors.payments_visible_to(request.user), pk=pk)


@login_required
def payment_list(request):
    filters = selectors.parse_filters(request.user, request.GET, choices=selectors.PAYMENT_CHOICES)
    context = {
        **lists.filter_context(request, filters, devices=True),
        "statuses": PaymentStatus.choices,
        "channels": Merchant.Channel.choices,
        "methods": Payment.Method.choices,
    }
    if not filters.errors:
        payments = selectors.filter_payments(selectors.payments_visible_to(request.user), filters)
        totals = selectors.payment_totals(payments)
        context.update(totals=totals, page=lists.page(request, payments, totals["count"]))
    return render(request, "payments/list.html", context, status=400 if filters.errors else 200)


@login_required
def refund_list(request):
    require(request.user, Action.VIEW)
    filters = selectors.parse_filters(request.user, request.GET, choices=selectors.REFUND_CHOICES)
    context = {
        **lists.filter_context(request, filters, devices=False),
        "statuses": Refund.Status.choices,
        "kinds": Refund.Kind.choices,
    }
    if not filters.errors:
        refunds = selectors.filter_refunds(selectors.refunds_visible_to(request.user), filters)
        totals = selectors.refund_totals(refunds)
        context.update(totals=totals, page=lists.page(request, refunds, totals["count"]))
    return render(request, "payments/refund_list.html", context, status=400 if filters.errors else 200)


@login_required
def filter_places(request):
    """HTMX: the store (and, for the payments list, device) selects of the merchant or store just chosen."""
    filters = selectors.parse_filters(request.user, request.GET, choices={})
    with_devices = request.GET.get("with_devices") == "1"
    stores, devices = selectors.place_choices(request.user, filters, request.GET)
    return render(
        request,
        "payments/_places.html",
        {"stores": stores, "devices": devices if with_devices else None, "with_devices": with_devices},
    )


def age_text(waited: timedelta) -> str:
    """How long something has waited, to the minute: "3 d 4 h", "2 h 15 min", "5 min" (in the console's words)."""
    minutes = max(waited // timedelta(minutes=1), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}
    return _("%(minutes)d min") % {"minutes": minutes}


@login_required
def attention_list(request):
    require(request.user, Action.VIEW)
    queue = selectors.attention_queue(request.user)
    now = timezone.now()
    return render(
        request,
        "payments/attention.html",
        {
            **queue,
            "payment_rows": [(p, age_text(now - p.created_at)) for p in queue["payments"]],
            "refund_rows": [(r, age_text(now - r.created_at)) for r in queue["refunds"]],
            "show_merchant": selectors.sees_many_merchants(request.user),
        },
    )


# --- exports (payments.lists writes them) ------------------------------------------------------------------------

PAYMENT_COLUMNS = [
    (pgettext_lazy("export column", "Order no."), lambda p, names: p.out_trade_no),
    (pgettext_lazy("export column", "Created (China time)"), lambda p, names: china_time(p.created_at)),
    (pgettext_lazy("export column", "Paid (China time)"), lambda p, names: china_time(p.paid_at)),
    (pgettext_lazy("export column", "Status"), lambda p, names: names["status"][p.status]),
    (pgettext_lazy("export column", "Amount (yuan)"), lambda p, names: yuan(p.total_fee)),
    (pgettext_lazy("export column", "Refunded (yuan)"), lambda p, names: yuan(p.refunded_fee)),
    (pgettext_lazy("export column", "Channel"), lambda p, names: names["channel"][p.channel]),
    (pgettext_lazy("export column", "Method"), lambda p, names: names["method"][p.method]),
    (pgettext_lazy("export column", "Wallet"), lambda p, names: names["wallet"][p.wallet]),
    (lists.MERCHANT_COLUMN, lambda p, names: p.merchant.name),
    (pgettext_lazy("export column", "Store id"), lambda p, names: p.store.store_id),
    (pgettext_lazy("export column", "Store"), lambda p, names: p.store.name),
    (pgettext_lazy("export column", "Device"), lambda p, names: p.device.device_id if p.device else None),
    (pgettext_lazy("export column", "Transaction id"), lambda p, names: p.transaction_id),
    (pgettext_lazy("export column", "Wallet transaction id"), lambda p, names: p.wallet_transaction_id),
    (pgettext_lazy("export column", "openid"), lambda p, names: p.openid),
    (pgettext_lazy("export column", "Error code"), lambda p, names: p.err_code),
]

REFUND_COLUMNS = [
    (pgettext_lazy("export column", "Refund no."), lambda r, names: r.out_refund_no),
    (pgettext_lazy("export column", "Order no."), lambda r, names: r.payment.out_trade_no),
    (pgettext_lazy("export column", "Channel refund id"), lambda r, names: r.refund_id),
    (pgettext_lazy("export column", "Transaction id"), lambda r, names: r.payment.transaction_id),
    (lists.MERCHANT_COLUMN, lambda r, names: r.payment.merchant.name),
    (pgettext_lazy("export column", "Store id"), lambda r, names: r.payment.store.store_id),
    (pgettext_lazy("export column", "Store"), lambda r, names: r.payment.store.name),
    (pgettext_lazy("export column", "Refund amount (yuan)"), lambda r, names: yuan(r.refund_fee)),
    (pgettext_lazy("export column", "Kind"), lambda r, names: names["kind"][r.kind]),
    (pgettext_lazy("export column", "Status"), lambda r, names: names["status"][r.status]),
    (pgettext_lazy("export column", "Reason"), lambda r, names: r.reason),
    (
        pgettext_lazy("export column", "Requested by"),
        lambda r, names: r.created_by.get_username() if r.created_by else None,
    ),
    (pgettext_lazy("export column", "Created (China time)"), lambda r, names: china_time(r.created_at)),
    (pgettext_lazy("export column", "Updated (China time)"), lambda r, names: china_time(r.updated_at)),
    (pgettext_lazy("export column", "Error code"), lambda r, names: r.err_code),
]


def _payment_export(request, extension: str):
    filters = selectors.parse_filters(request.user, request.GET, choices=selectors.PAYMENT_CHOICES)
    if filters.errors:
        return lists.refused(filters)
    payments = selectors.filter_payments(selectors.payments_visible_to(request.user), filters)
    names = lists.choice_names(
        status=PaymentStatus.choices,
        channel=Merchant.Channel.choices,
        method=Payment.Method.choices,
        wallet=Payment.Wallet.choices,
    )
    return lists.export(
        request,
        name="payments",
        title=_("Payments"),
        queryset=selectors.payments_for_export(payments),
        columns=PAYMENT_COLUMNS,
        names=names,
        extension=extension,
    )


def _refund_export(request, extension: str):
    require(request.user, Action.VIEW)
    filters = selectors.parse_filters(request.user, request.GET, choices=selectors.REFUND_CHOICES)
    if filters.errors:
        return lists.refused(filters)
    refunds = selectors.filter_refunds(selectors.refunds_visible_to(request.user), filters)
    return lists.export(
        request,
        name="refunds",
        title=_("Refunds"),
        queryset=selectors.refunds_for_export(refunds),
        columns=REFUND_COLUMNS,
        names=lists.choice_names(status=Refund.Status.choices, kind=Refund.Kind.choices),
        extension=extension,
    )


@login_required
def payment_export(request):
    return _payment_export(request, "csv")


@login_required
def payment_export_xlsx(request):
    return _payment_export(request, "xlsx")


@login_required
def refund_export(request):
    return _refund_export(request, "csv")


@login_required
def refund_export_xlsx(request):
    return _refund_export(request, "xlsx")


@login_required
def payment_detail(request, pk: int):
    payment = _payment(request, pk)
    return render(
        request,
        "payments/detail.html",
        {
            "payment": payment,
            "timeline": timeline.payment_timeline(payment, payment.events.select_related("actor_user", "refund")),
            "error": timeline.payment_error(payment),
            "refunds": payment.refunds.all(),
            "resolutions": [(value, PaymentStatus(value).label) for value in services.RESOLUTIONS],
            "refund_resolutions": REFUND_RESOLUTION_LABELS,
            "refundable": payment.total_fee - payment.reserved_refund_fee,
            "can_cancel": services.payment_cancel_allowed(payment),
            "is_settled": payment.status not in (PaymentStatus.PAYING, PaymentStatus.REVERSING)
            and not payment.refunds.filter(status__in=("PENDING", "PROCESSING")).exists(),
        },
    )


@login_required
def payment_status_fragment(request, pk: int):
    """HTMX: the status block of the detail page, polled while the payment or a refund is still moving."""
    payment = _payment(request, pk)
    moving = (
        payment.status in (PaymentStatus.PAYING, PaymentStatus.REVERSING)
        or payment.refunds.filter(status__in=("PENDING", "PROCESSING")).exists()
    )
    response = render(
        request,
        "payments/_status.html",
        {"payment": payment, "refunds": payment.refunds.all(), "is_settled": not moving},
    )
    if not moving:
        response["HX-Refresh"] = "true"  # settled: reload once so the timeline and actions are current
    return response


# What a person may record for a refund in ATTENTION (services.REFUND_RESOLUTIONS), as the form offers it.
REFUND_RESOLUTION_LABELS = [
    ("SUCCESS", gettext_lazy("Refunded (the channel shows it succeeded)")),
    ("FAILED", gettext_lazy("Not refunded (the amount can be refunded again)")),
    ("RETRY", gettext_lazy("Send it again with the same refund number")),
]

_REFUND_REFUSALS = {
    "REFUND_EXCEEDS_PAYMENT": gettext_lazy("More than what is left to refund."),
    "NOT_REFUNDABLE": gettext_lazy("Only a paid payment can be refunded."),
    "REQUEST_KEY_CONFLICT": gettext_lazy("The confirmation is incomplete; enter the amount again."),
}


@login_required
def payment_refund(request, pk: int):
    require(request.user, Action.REFUND)
    payment = _payment(request, pk)
    errors: dict[str, str] = {}
    amount_text = request.POST.get("amount", "") if request.method == "POST" else ""
    reason = request.POST.get("reason", "").strip() if request.method == "POST" else ""
    fee = yuan_to_fen(amount_text) if amount_text else None
    confirmed = request.method == "POST" and request.POST.get("confirmed") == "1"
    # The confirmation carries a key made when it was shown: posting it twice (double click, back + resubmit)
    # returns the refund it already made instead of refunding again (`refund_create`'s request_key).
    request_key = request.POST.get("request_key", "") if confirmed else secrets.token_urlsafe(24)
    if request.method == "POST":
        if fee is None:
            errors["amount"] = _("Enter an amount in yuan, e.g. 12.34.")
        elif not confirmed and fee > payment.total_fee - payment.reserved_refund_fee:
            errors["amount"] = _("More than what is left to refund.")  # the service checks again under the lock
        if len(reason) > 80:
            errors["reason"] = _("At most 80 characters.")
        if confirmed and not services.REQUEST_KEY.match(request_key):
            errors["amount"] = _("The confirmation is incomplete; enter the amount again.")
        if not errors and confirmed:
            try:
                refund = services.refund_create(
                    payment=payment, refund_fee=fee, reason=reason, user=request.user, request_key=request_key
                )
            except DomainError as exc:
                # The service's refusals in the console's words (its own texts are English and in fen).
                errors = (
                    {"amount": _REFUND_REFUSALS[exc.code]}
                    if exc.code in _REFUND_REFUSALS
                    else ({key: str(value) for key, value in exc.details.items()} or {"amount": exc.message})
                )
            else:
                if refund.status != Refund.Status.FAILED:
                    messages.success(request, _("Refund requested; it is being processed."))
                    return redirect("portal:payment_detail", pk=payment.pk)
                # This confirmation was used before, for a refund the channel refused: say so, and offer a new one.
                messages.error(
                    request,
                    _("The refund from this confirmation failed (%(code)s); confirm again to send a new one.")
                    % {"code": refund.err_code or refund.status},
                )
                payment.refresh_from_db()
                request_key, confirmed = secrets.token_urlsafe(24), False
    confirming = request.method == "POST" and not errors and not confirmed
    return render(
        request,
        "payments/refund.html",
        {
            "payment": payment,
            "errors": errors,
            "amount": amount_text,
            "reason": reason,
            "fee": fee,
            "confirming": confirming,
            "request_key": request_key,
            "refundable": payment.total_fee - payment.reserved_refund_fee,
        },
        status=400 if errors else 200,
    )


@login_required
@require_POST
def payment_reverse(request, pk: int):
    require(request.user, Action.REVERSE)
    payment = _payment(request, pk)
    try:
        services.payment_cancel(payment=payment, actor="STAFF", user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Reverse requested; it is sent no sooner than 15 s after the payment call."))
    return redirect("portal:payment_detail", pk=payment.pk)


@login_required
@require_POST
def payment_refresh(request, pk: int):
    require(request.user, Action.REFRESH)
    payment = _payment(request, pk)
    try:
        payment = services.payment_refresh(payment=payment, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Asked the channel; the answer is in the timeline."))
    return redirect("portal:payment_detail", pk=payment.pk)


@login_required
@require_POST
def payment_resolve_attention(request, pk: int):
    require(request.user, Action.RESOLVE)
    payment = _payment(request, pk)
    return _settle(request, payment, services.payment_resolve_attention, _("Payment settled."), payment=payment)


@login_required
@require_POST
def refund_resolve_attention(request, pk: int, refund_pk: int):
    require(request.user, Action.RESOLVE)
    payment = _payment(request, pk)
    refund = get_object_or_404(payment.refunds, pk=refund_pk)
    return _settle(request, payment, services.refund_resolve_attention, _("Refund settled."), refund=refund)


def _settle(request, shown: Payment, settle, done: str, **target):
    """A person's settlement of something in ATTENTION (the form's outcome and note); back to the page of the
    payment `shown`, with what went wrong or with `done`."""
    try:
        settle(**target, outcome=request.POST.get("outcome", ""), note=request.POST.get("note", ""), user=request.user)
    except DomainError as exc:
        for message in exc.details.values() or [exc.message]:
            messages.error(request, message)
    else:
        messages.success(request, done)
    return redirect("portal:payment_detail", pk=shown.pk)
