"""Console pages for face-identified members: list/search, detail with history, erasure.

Members are looked up through `members_visible_to` first (an id outside the user's scope is a 404), then the
action is checked (403). Erasure goes through `members.services.member_erase`, which audits it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from members import services
from members.models import ERASED_PREFIX
from members.selectors import member_events, member_history, members_visible_to
from portal.permissions import Action, can, require
from portal.selectors import merchants_visible_to
from portal.views_onboarding import paginate

HISTORY_ROWS = 20
EVENT_ROWS = 50


@login_required
def member_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.VIEW)
    members = members_visible_to(request.user)
    query = request.GET.get("q", "").strip()
    if query:
        # Erased members keep only a random placeholder openid; a search never matches it.
        members = members.filter(
            Q(openid=query) | Q(sub_openid=query) | Q(unionid=query) | Q(nickname__icontains=query)
        ).exclude(openid__startswith=ERASED_PREFIX)
    activated = request.GET.get("activated", "")
    if activated in ("yes", "no"):
        members = members.filter(card_activated=activated == "yes")
    merchant_id = request.GET.get("merchant", "")
    if merchant_id.isdigit():
        members = members.filter(merchant_id=int(merchant_id))
    merchants = merchants_visible_to(request.user)
    context = {
        "page": paginate(request, members.order_by("-last_seen_at", "-id")),
        "query": query,
        "activated": activated,
        "merchant_id": merchant_id,
        "merchants": merchants if merchants.count() > 1 else None,
    }
    return render(request, "members/member_list.html", context)


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
