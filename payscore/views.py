"""Console pages for PayScore service orders: the list with its filters, totals and exports (as the payments list:
payments.lists), detail with timeline, and the staff actions (complete with a line-item editor, cancel, sync,
refresh). Scoped by `service_orders_visible_to`; actions need Action.PAYSCORE (refresh: Action.REFRESH); every write
goes through `payscore.services` (audited there)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from payments import lists
from payments.selectors import parse_filters
from payscore import inputs, selectors, services, timeline
from payscore.models import ServiceOrder
from portal.api_errors import flatten_detail
from portal.errors import DomainError
from portal.exports import china_time, yuan
from portal.money import yuan_to_fen
from portal.permissions import Action, require

STAFF = "STAFF"


def _order(request, pk: int) -> ServiceOrder:
    return get_object_or_404(selectors.service_orders_visible_to(request.user), pk=pk)


def _filtered(request):
    """(filters, the orders they select) — the orders only when the filters can be used."""
    filters = parse_filters(request.user, request.GET, choices=selectors.SERVICE_ORDER_CHOICES)
    if filters.errors:
        return filters, None
    return filters, selectors.filter_service_orders(selectors.service_orders_visible_to(request.user), filters)


@login_required
def order_list(request):
    filters, orders = _filtered(request)
    context = {**lists.filter_context(request, filters, devices=True), "states": ServiceOrder.State.choices}
    if orders is not None:
        totals = selectors.service_order_totals(orders)
        context.update(totals=totals, page=lists.page(request, orders, totals["count"]))
    return render(request, "payscore/list.html", context, status=400 if filters.errors else 200)


def _risk_fund_amount(order: ServiceOrder):
    amount = (order.risk_fund or {}).get("amount")
    return yuan(amount) if isinstance(amount, int) else None


def _choice_name(names: dict[str, str], value: str) -> str | None:
    """A choice's name; None (an empty cell) for the empty choice, whose name is a dash."""
    return names[value] if value else None


ORDER_COLUMNS = [
    (pgettext_lazy("export column", "Order no."), lambda o, names: o.out_order_no),
    (pgettext_lazy("export column", "WeChat order id"), lambda o, names: o.order_id),
    (pgettext_lazy("export column", "Created (China time)"), lambda o, names: china_time(o.created_at)),
    (pgettext_lazy("export column", "Updated (China time)"), lambda o, names: china_time(o.updated_at)),
    (pgettext_lazy("export column", "Status"), lambda o, names: names["state"][o.state]),
    (
        pgettext_lazy("export column", "Status description"),
        lambda o, names: _choice_name(names["state_description"], o.state_description),
    ),
    (
        pgettext_lazy("export column", "Collection status"),
        lambda o, names: _choice_name(names["collection"], o.collection_state),
    ),
    (pgettext_lazy("export column", "Service"), lambda o, names: o.service_introduction),
    (pgettext_lazy("export column", "Risk fund"), lambda o, names: str(o.risk_fund_label)),
    (pgettext_lazy("export column", "Risk fund amount (yuan)"), lambda o, names: _risk_fund_amount(o)),
    (
        pgettext_lazy("export column", "Total amount (yuan)"),
        lambda o, names: None if o.total_amount is None else yuan(o.total_amount),
    ),
    (pgettext_lazy("export column", "Collected (yuan)"), lambda o, names: yuan(o.paid_amount)),
    (lists.MERCHANT_COLUMN, lambda o, names: o.merchant.name),
    (pgettext_lazy("export column", "Store id"), lambda o, names: o.store.store_id),
    (pgettext_lazy("export column", "Store"), lambda o, names: o.store.name),
    (pgettext_lazy("export column", "Device"), lambda o, names: o.device.device_id if o.device else None),
    (pgettext_lazy("export column", "openid"), lambda o, names: o.openid),
    (pgettext_lazy("export column", "Transaction ids"), lambda o, names: ", ".join(o.transaction_ids or [])),
    (pgettext_lazy("export column", "Error code"), lambda o, names: o.last_error_code),
]


def _order_export(request, extension: str):
    filters, orders = _filtered(request)
    if orders is None:
        return lists.refused(filters)
    return lists.export(
        request,
        name="payscore-orders",
        title=_("PayScore orders"),
        queryset=selectors.service_orders_for_export(orders),
        columns=ORDER_COLUMNS,
        names=lists.choice_names(
            state=ServiceOrder.State.choices,
            state_description=ServiceOrder.StateDescription.choices,
            collection=ServiceOrder.Collection.choices,
        ),
        extension=extension,
    )


@login_required
def order_export(request):
    return _order_export(request, "csv")


@login_required
def order_export_xlsx(request):
    return _order_export(request, "xlsx")


@login_required
def order_detail(
    request,
    pk: int,
    *,
    complete_errors: dict | None = None,
    lines: list | None = None,
    typed: dict | None = None,
    status=200,
):
    """`lines` / `typed`: what the user entered in a form that failed, shown again instead of blank inputs."""
    order = _order(request, pk)
    return render(
        request,
        "payscore/detail.html",
        {
            "order": order,
            "typed": typed or {},
            "timeline": timeline.order_timeline(order, selectors.service_order_events(order)),
            "error": timeline.order_error(order),
            "complete_errors": complete_errors or {},
            "lines": lines
            or [
                {"name": item.get("name", ""), "amount": "", "description": item.get("description", "")}
                for item in (order.post_payments or [])
            ]
            or [{"name": "", "amount": "", "description": ""}],
            "can_complete": order.state == "DOING" and order.state_description == "USER_CONFIRM",
            "can_cancel": order.state in ("CREATED", "DOING") and order.collection_state != "USER_PAID",
            "can_sync": order.state == "DOING" and order.state_description == "MCH_COMPLETE",
        },
        status=status,
    )


def _fail(request, exc: Exception) -> None:
    if isinstance(exc, ValidationError):
        for field, problem in flatten_detail(exc.detail).items():
            messages.error(request, f"{field}: {problem}")
    else:
        for message in exc.details.values() or [exc.message]:
            messages.error(request, str(message))


@login_required
@require_POST
def order_complete(request, pk: int):
    """Line items arrive as name[]/amount[] (yuan)/description[]; the total is computed here and checked again by
    the service against the risk fund (nothing is sent to WeChat when a check fails)."""
    require(request.user, Action.PAYSCORE)
    order = _order(request, pk)
    names, amounts = request.POST.getlist("name"), request.POST.getlist("amount")
    descriptions = request.POST.getlist("description")
    lines, errors, payments = [], {}, []
    for index, (name, amount) in enumerate(zip(names, amounts, strict=False)):
        description = descriptions[index] if index < len(descriptions) else ""
        lines.append({"name": name, "amount": amount, "description": description})
        if not name.strip() and not amount.strip():
            continue
        fen = yuan_to_fen(amount) if amount.strip() else None
        if fen is None:
            errors[f"line{index}"] = _("Line %(number)s: enter an amount in yuan, e.g. 12.34.") % {"number": index + 1}
            continue
        payments.append(
            {
                "name": name.strip(),
                "amount": fen,
                **({"description": description.strip()} if description.strip() else {}),
            }
        )
    if not payments and not errors:
        errors["lines"] = _("Add at least one line with an amount.")
    if not errors:
        total = sum(item["amount"] for item in payments)
        try:
            data = inputs.validated(
                inputs.ServiceOrderCompleteSerializer, {"post_payments": payments, "total_amount": total}
            )
            services.service_order_complete(order=order, data=data, actor=STAFF, user=request.user)
        except (ValidationError, DomainError) as exc:
            _fail(request, exc)
        else:
            messages.success(request, _("Service order completed; WeChat collects the payment from the user."))
            return redirect("portal:payscore_detail", pk=order.pk)
    for message in errors.values():
        messages.error(request, message)
    return order_detail(request, pk, complete_errors=errors, lines=lines, status=400)


@login_required
@require_POST
def order_cancel(request, pk: int):
    require(request.user, Action.PAYSCORE)
    order = _order(request, pk)
    try:
        reason = inputs.validated(inputs.ServiceOrderCancelSerializer, {"reason": request.POST.get("reason", "")})
        services.service_order_cancel(order=order, reason=reason["reason"], actor=STAFF, user=request.user)
    except (ValidationError, DomainError) as exc:
        _fail(request, exc)
        return order_detail(request, pk, typed={"reason": request.POST.get("reason", "")}, status=400)
    messages.success(request, _("Service order cancelled."))
    return redirect("portal:payscore_detail", pk=order.pk)


@login_required
@require_POST
def order_sync(request, pk: int):
    require(request.user, Action.PAYSCORE)
    order = _order(request, pk)
    paid_time = request.POST.get("paid_time", "").replace("-", "").replace(":", "").replace("T", "").replace(" ", "")
    if len(paid_time) == 12:
        paid_time += "00"  # datetime-local gives minutes
    try:
        data = inputs.validated(inputs.ServiceOrderSyncSerializer, {"paid_time": paid_time})
        services.service_order_sync(order=order, paid_time=data["paid_time"], actor=STAFF, user=request.user)
    except (ValidationError, DomainError) as exc:
        _fail(request, exc)
        return order_detail(request, pk, typed={"paid_time": request.POST.get("paid_time", "")}, status=400)
    messages.success(request, _("Recorded as paid through another channel."))
    return redirect("portal:payscore_detail", pk=order.pk)


@login_required
@require_POST
def order_refresh(request, pk: int):
    require(request.user, Action.REFRESH)
    order = _order(request, pk)
    try:
        services.service_order_refresh(order_id=order.pk, actor=STAFF, user=request.user)
    except DomainError as exc:
        _fail(request, exc)
    else:
        messages.success(request, _("Asked WeChat; the answer is in the timeline."))
    return redirect("portal:payscore_detail", pk=order.pk)
