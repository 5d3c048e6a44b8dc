"""Console pages for face-identified members: list with its filters and exports (as the payments list:
payments.lists), detail with history, erasure.

Members are looked up through `members_visible_to` first (an id outside the user's scope is a 404), then the
action is checked (403). Erasure goes through `members.services.member_erase`, which audits it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from members import selectors, services
from members.models import Member
from members.selectors import member_events, member_history, members_visible_to
from payments import lists
from portal.exports import china_time
from portal.permissions import Action, can, require
from portal.views_onboarding import paginate

HISTORY_ROWS = 20
EVENT_ROWS = 50


def _filtered(request: HttpRequest):
    """(filters, the members they select) — the members only when the filters can be used."""
    require(request.user, Action.VIEW)
    filters = selectors.parse_member_filters(request.user, request.GET)
    if filters.errors:
        return filters, None
    return filters, selectors.filter_members(members_visible_to(request.user), filters).order_by("-last_seen_at", "-id")


@login_required
def member_list(request: HttpRequest) -> HttpResponse:
    filters, members = _filtered(request)
    context = lists.filter_context(request, filters, devices=False, places=False)
    if members is not None:
        context["page"] = paginate(request, members)
    return render(request, "members/member_list.html", context, status=400 if filters.errors else 200)


# The export has the list's columns and hides what the list hides: an erased member's nickname and openid are gone
# (the row keeps its number, visits and dates); sub_openid and unionid are not shown.
CARD = {True: gettext_lazy("Activated"), False: gettext_lazy("Not activated")}
MEMBER_COLUMNS = [
    (pgettext_lazy("export column", "Member no."), lambda m, names: str(m.pk)),
    (pgettext_lazy("export column", "Nickname"), lambda m, names: None if m.is_anonymised else m.nickname),
    (pgettext_lazy("export column", "openid"), lambda m, names: None if m.is_anonymised else m.openid),
    (lists.MERCHANT_COLUMN, lambda m, names: m.merchant.name),
    (pgettext_lazy("export column", "Visits"), lambda m, names: m.visit_count),
    (pgettext_lazy("export column", "First seen (China time)"), lambda m, names: china_time(m.first_seen_at)),
    (pgettext_lazy("export column", "Last seen (China time)"), lambda m, names: china_time(m.last_seen_at)),
    (pgettext_lazy("export column", "Member card"), lambda m, names: names["card"][m.card_activated]),
    (pgettext_lazy("export column", "Card activated (China time)"), lambda m, names: china_time(m.activated_at)),
    (pgettext_lazy("export column", "Erased (China time)"), lambda m, names: china_time(m.anonymised_at)),
    (
        pgettext_lazy("export column", "Erasure reason"),
        lambda m, names: names["reason"][m.anonymised_reason] if m.anonymised_reason else None,
    ),
]


def _member_export(request: HttpRequest, extension: str) -> HttpResponse:
    filters, members = _filtered(request)
    if members is None:
        return lists.refused(filters)
    return lists.export(
        request,
        name="members",
        title=_("Members"),
        queryset=selectors.members_for_export(members),
        columns=MEMBER_COLUMNS,
        names=lists.choice_names(card=CARD.items(), reason=Member.AnonymisedReason.choices),
        extension=extension,
    )


@login_required
def member_export(request: HttpRequest) -> HttpResponse:
    return _member_export(request, "csv")


@login_required
def member_export_xlsx(request: HttpRequest) -> HttpResponse:
    return _member_export(request, "xlsx")


@login_required
def member_detail(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(members_visible_to(request.user), pk=pk)
    require(request.user, Action.VIEW)
    history = member_history(member)
    context = {
        "member": member,
        "events": member_events(member)[:EVENT_ROWS],
        "payments": history.payments[:HISTORY_ROWS],
        "payscore_orders": history.payscore_orders[:HISTORY_ROWS] if history.payscore_orders is not None else None,
        "can_erase": can(request.user, Action.ERASE_MEMBER) and not member.is_anonymised,
    }
    return render(request, "members/member_detail.html", context)


@login_required
def member_erase(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(members_visible_to(request.user), pk=pk)
    require(request.user, Action.ERASE_MEMBER)
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        services.member_erase(member=member, actor=request.user)
        messages.success(request, _("The member's personal data was erased."))
        return redirect("portal:member_detail", pk=member.pk)
    return render(
        request,
        "portal/onboarding/confirm.html",
        {
            "title": _("Erase member %(id)s") % {"id": member.pk},
            "message": _(
                "The openid, unionid and nickname are deleted for good; visit counts stay. "
                "The member's payments can no longer be linked to them."
            ),
            "button": _("Erase personal data"),
            "cancel_url": reverse("portal:member_detail", args=[member.pk]),
            "danger": True,
        },
    )
