"""Console pages for reconciliation (对账): the days, the differences queue and its CSV and Excel exports, a
difference with both sides' evidence and the staff actions, and a bill file given by hand. Every query is scoped
(`selectors.*_visible_to`); every action checks the role and goes through a service."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from payments.gateways.wechatpay_bill import fen_to_yuan  # the bills' own yuan text: 1234 → 12.34
from payments.models import PaymentStatus, Refund
from portal.errors import DomainError, InvalidInput
from portal.exports import Echo, spreadsheet_cell, write_xlsx
from portal.permissions import Action, require
from portal.selectors import merchants_visible_to
from portal.services import audit_record
from portal.views_onboarding import paginate

from . import selectors, services
from .forms import BillUploadForm
from .models import Difference, DifferenceKind


def _difference(request, pk: int) -> Difference:
    return get_object_or_404(selectors.differences_visible_to(request.user), pk=pk)


@login_required
def day_list(request):
    days = selectors.filter_days(selectors.days_visible_to(request.user), request.GET)
    return render(
        request,
        "reconciliation/day_list.html",
        {
            "page": paginate(request, days),
            "filters": request.GET,
            "merchants": selectors.merchant_filter_choices(request.user),
        },
    )


@login_required
def difference_list(request):
    differences = selectors.filter_differences(selectors.differences_visible_to(request.user), request.GET)
    page = paginate(request, differences)
    return render(
        request,
        "reconciliation/difference_list.html",
        {
            "page": page,
            "rows": [(d, *selectors.compared_amounts(d)) for d in page.object_list],
            "filters": request.GET,
            "status": request.GET.get("status", Difference.Status.OPEN),
            "statuses": Difference.Status.choices,
            "kinds": DifferenceKind.choices,
            "merchants": selectors.merchant_filter_choices(request.user),
        },
    )


# The export is read by finance staff next to the bill: WeChat's column names, labels in Chinese whatever the
# console's language.
EXPORT_HEADER = [
    "对账日期", "商户", "差异类型", "商户订单号", "商户退款单号", "微信订单号",
    "我方金额(元)", "渠道金额(元)", "状态", "说明",
]  # fmt: skip


def _export_rows(request):
    """The differences of the queue's filters as export rows (text cells; amounts as yuan text)."""
    differences = selectors.filter_differences(selectors.differences_visible_to(request.user), request.GET)
    with translation.override("zh-hans"):
        kinds = {value: str(label) for value, label in DifferenceKind.choices}
        statuses = {value: str(label) for value, label in Difference.Status.choices}
    for d in differences.iterator(chunk_size=500):
        ours, theirs = selectors.compared_amounts(d)
        yield [
            spreadsheet_cell(value)
            for value in (
                d.bill_date.isoformat(),
                d.merchant.name,
                kinds[d.kind],
                d.out_trade_no,
                d.refund_no,
                d.transaction_id,
                "" if ours is None else fen_to_yuan(ours),
                "" if theirs is None else fen_to_yuan(theirs),
                statuses[d.status],
                d.note,
            )
        ]


def _export_name(extension: str) -> str:
    return f'attachment; filename="differences-{timezone.localdate():%Y%m%d}.{extension}"'


@login_required
def difference_export(request):
    writer = csv.writer(Echo())

    def lines():
        yield "\ufeff" + writer.writerow(EXPORT_HEADER)  # BOM: Excel opens the Chinese text correctly
        for row in _export_rows(request):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = _export_name("csv")
    return response


@login_required
def difference_export_xlsx(request):
    """The same rows as an Excel workbook (openpyxl, write-only: rows are not held), every cell text so order and
    transaction ids keep all their digits."""
    response = HttpResponse(content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = _export_name("xlsx")
    write_xlsx(response, title="对账差异", header=EXPORT_HEADER, rows=_export_rows(request))
    return response


# The evidence side by side: (label, key in `ours`, key in `theirs`, an amount in fen). A row is shown when either
# side has a value.
EVIDENCE = [
    (gettext_lazy("Order no. (商户订单号)"), "out_trade_no", "out_trade_no", False),
    (gettext_lazy("Refund no. (商户退款单号)"), "out_refund_no", "out_refund_no", False),
    (gettext_lazy("Transaction id (微信订单号)"), "transaction_id", "transaction_id", False),
    (gettext_lazy("WeChat refund id (微信退款单号)"), None, "refund_id", False),
    (gettext_lazy("Time (China)"), "paid_at", "trade_time", False),
    (gettext_lazy("Status"), "status", "trade_state", False),
    (gettext_lazy("Refund status (退款状态)"), None, "refund_status", False),
    (gettext_lazy("Order amount (订单金额)"), "total_fee", "total_fee", True),
    (gettext_lazy("Settlement amount (应结订单金额)"), None, "settlement_fee", True),
    (gettext_lazy("Refund amount asked (申请退款金额)"), "refund_fee", "requested_refund_fee", True),
    (gettext_lazy("Refunded (退款金额)"), None, "refund_fee", True),
    (gettext_lazy("Fee (手续费)"), None, "fee", True),
    (gettext_lazy("Bill line"), None, "line", False),
]


# 交易状态 and 退款状态 as a bill prints them, in words.
BILL_STATES = {
    "SUCCESS": gettext_lazy("Paid"),
    "REVOKED": gettext_lazy("Reversed (撤销)"),
    "REFUND": gettext_lazy("Refund"),
    "PROCESSING": gettext_lazy("Accepted upstream, not done"),
}


def _in_words(key: str | None, value, *, refund: bool, ours: bool):
    """A status code with its words, e.g. "已退款 (SUCCESS)"; anything else as it is."""
    if value is None or key not in ("status", "trade_state", "refund_status"):
        return value
    if ours:
        choices = Refund.Status if refund else PaymentStatus
        label = dict(choices.choices).get(value)
    elif key == "refund_status" and value == "SUCCESS":
        label = Refund.Status.SUCCESS.label
    else:
        label = BILL_STATES.get(value)
    return f"{label} ({value})" if label else value


def _evidence(difference: Difference) -> list[dict]:
    ours, theirs = difference.ours or {}, difference.theirs or {}
    refund = bool(difference.refund_no)
    rows = []
    for label, our_key, their_key, money in EVIDENCE:
        mine, other = (None if value == "" else value for value in (ours.get(our_key), theirs.get(their_key)))
        if mine is not None or other is not None:
            mine = _in_words(our_key, mine, refund=refund, ours=True)
            other = _in_words(their_key, other, refund=refund, ours=False)
            rows.append({"label": label, "ours": mine, "theirs": other, "money": money})
    return rows


@login_required
def difference_detail(request, pk: int):
    difference = _difference(request, pk)
    return render(
        request,
        "reconciliation/difference_detail.html",
        {"difference": difference, "evidence": _evidence(difference)},
    )


_REFUSALS = {
    "NO_SUCH_ORDER": gettext_lazy("We have no order with this number to query."),
    "DIFFERENCE_CLOSED": gettext_lazy("This difference is gone on a later run."),
}


@login_required
@require_POST
def difference_requery(request, pk: int):
    require(request.user, Action.REFRESH)
    difference = _difference(request, pk)
    try:
        services.difference_requery(user=request.user, difference=difference)
    except DomainError as exc:
        messages.error(request, _REFUSALS.get(exc.code, exc.message))
    else:
        messages.success(request, _("Asked the channel; the answer is in the order's timeline. The next run sees it."))
    return redirect("portal:reconciliation_difference", pk=difference.pk)


@login_required
@require_POST
def difference_explain(request, pk: int):
    require(request.user, Action.RECONCILE)
    difference = _difference(request, pk)
    try:
        services.difference_explain(user=request.user, difference=difference, note=request.POST.get("note", ""))
    except InvalidInput:
        messages.error(request, _("Write a note: what you checked and why."))
    except DomainError as exc:
        messages.error(request, _REFUSALS.get(exc.code, exc.message))
    else:
        messages.success(request, _("Difference marked explained."))
    return redirect("portal:reconciliation_difference", pk=difference.pk)


@login_required
def bill_upload(request):
    require(request.user, Action.RECONCILE)
    posted = request.method == "POST"
    form = BillUploadForm(
        request.POST if posted else None,
        request.FILES if posted else None,
        merchants=merchants_visible_to(request.user).order_by("name"),
    )
    if posted and form.is_valid():
        merchant, bill_date = form.cleaned_data["merchant"], form.cleaned_data["bill_date"]
        try:
            report = services.reconcile_day(
                merchant=merchant, bill_date=bill_date, content=form.cleaned_data["file"].read()
            )
        except services.BillProblem as exc:
            reason = _(exc.template).format(**exc.params)  # the parser's and the pipeline's reasons are translated
            form.add_error(None, _("The bill was not imported: %(reason)s") % {"reason": reason})
        else:
            audit_record(
                actor=request.user,
                action="reconciliation.upload",
                obj=merchant,
                details={"bill_date": bill_date.isoformat(), "rows": report.rows, "matched": report.matched},
            )
            messages.success(
                request,
                _("Bill imported: %(rows)d rows, %(matched)d matched, %(differences)d differences.")
                % {"rows": report.rows, "matched": report.matched, "differences": len(report.differences)},
            )
            day = bill_date.isoformat()
            query = urlencode({"merchant": merchant.pk, "from": day, "to": day, "status": ""})
            return redirect(f"{reverse('portal:reconciliation_differences')}?{query}")
    return render(request, "reconciliation/upload.html", {"form": form}, status=400 if form.errors else 200)
