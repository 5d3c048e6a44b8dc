"""Console pages for payments: list with filters and CSV, detail with the event timeline, and staff actions.
Every query is scoped (`payments_visible_to`); every action checks the role and goes through a service."""

from __future__ import annotations

import csv
import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from payments import selectors, services
from payments.models import Payment, PaymentStatus, Refund
from portal.errors import DomainError
from portal.exports import Echo, spreadsheet_cell
from portal.models import Merchant
from portal.money import yuan_to_fen
from portal.permissions import Action, require
from portal.selectors import devices_visible_to, stores_visible_to


def _payment(request, pk: int) -> Payment:
    return get_object_or_404(selectors.payments_visible_to(request.user), pk=pk)


@login_required
def payment_list(request):
    queryset = selectors.filter_payments(selectors.payments_visible_to(request.user), request.GET)
    page = Paginator(queryset, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "payments/list.html",
        {
            "page": page,
            "query": query.urlencode(),
            "filters": request.GET,
            "statuses": PaymentStatus.choices,
            "channels": Merchant.Channel.choices,
            "methods": Payment.Method.choices,
            "stores": stores_visible_to(request.user),
            "devices": devices_visible_to(request.user),
        },
    )


@login_required
def payment_export(request):
    queryset = selectors.filter_payments(selectors.payments_visible_to(request.user), request.GET)
    writer = csv.writer(Echo())
    header = [
        "out_trade_no",
        "created_at",
        "status",
        "total_fee_fen",
        "refunded_fee_fen",
        "channel",
        "method",
        "wallet",
        "merchant",
        "store_id",
        "device_id",
        "transaction_id",
        "openid",
        "err_code",
    ]

    def rows():
        yield "\ufeff" + writer.writerow(header)  # BOM: Excel opens the Chinese text correctly
        for payment in queryset.iterator(chunk_size=500):
            yield writer.writerow(
                spreadsheet_cell(value)
                for value in [
                    payment.out_trade_no,
                    timezone.localtime(payment.created_at).isoformat(),
                    payment.status,
                    payment.total_fee,
                    payment.refunded_fee,
                    payment.channel,
                    payment.method,
                    payment.wallet,
                    payment.merchant.name,
                    payment.store.store_id,
                    payment.device.device_id if payment.device else "",
                    payment.transaction_id,
                    payment.openid,
                    payment.err_code,
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="payments-{timezone.localdate():%Y%m%d}.csv"'
    return response


@login_required
def payment_detail(request, pk: int):
    payment = _payment(request, pk)
    return render(
        request,
        "payments/detail.html",
        {
            "payment": payment,
            "events": payment.events.select_related("actor_user", "refund"),
            "refunds": payment.refunds.all(),
            "resolutions": [(value, PaymentStatus(value).label) for value in services.RESOLUTIONS],
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
    try:
        services.payment_resolve_attention(
            payment=payment,
            outcome=request.POST.get("outcome", ""),
            note=request.POST.get("note", ""),
            user=request.user,
        )
    except DomainError as exc:
        for message in exc.details.values() or [exc.message]:
            messages.error(request, message)
    else:
        messages.success(request, _("Payment settled."))
    return redirect("portal:payment_detail", pk=payment.pk)
