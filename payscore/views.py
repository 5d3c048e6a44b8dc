"""Console pages for PayScore service orders: list, detail with timeline, and the staff actions (complete with a
line-item editor, cancel, sync, refresh). Scoped by `service_orders_visible_to`; actions need Action.PAYSCORE
(refresh: Action.REFRESH); every write goes through `payscore.services` (audited there)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from payscore import inputs, selectors, services
from payscore.models import ServiceOrder
from portal.api_errors import flatten_detail
from portal.errors import DomainError
from portal.money import yuan_to_fen
from portal.permissions import Action, require

STAFF = "STAFF"


def _order(request, pk: int) -> ServiceOrder:
    return get_object_or_404(selectors.service_orders_visible_to(request.user), pk=pk)


@login_required
def order_list(request):
    orders = selectors.service_orders_visible_to(request.user).select_related("store").order_by("-created_at")
    if state := request.GET.get("state"):
        orders = orders.filter(state=state)
    if q := request.GET.get("q", "").strip():
        orders = orders.filter(Q(out_order_no__icontains=q) | Q(order_id=q) | Q(openid=q))
    page = Paginator(orders, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "payscore/list.html",
        {"page": page, "filters": request.GET, "query": query.urlencode(), "states": ServiceOrder.State.choices},
    )


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
            "events": selectors.service_order_events(order),
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
