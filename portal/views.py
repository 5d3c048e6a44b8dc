"""Console views shared by every role: sign-in (its second step is in portal.views_users), sign-out, password change
and the home page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.translation import gettext as _

from portal import selectors
from portal.forms import SignInForm
from portal.permissions import Action, require
from portal.users import staff_password_changed
from portal.views_users import safe_next


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True
    authentication_form = SignInForm


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    """Also the step a user with a one-time password (new account, reset by an admin) must take first."""

    template_name = "portal/password_change.html"

    def get_context_data(self, **kwargs):
        membership = selectors.membership_of(self.request.user)
        forced = membership is not None and membership.must_change_password
        return super().get_context_data(**kwargs, forced=forced, next=safe_next(self.request))

    def get_success_url(self) -> str:
        return safe_next(self.request)

    def form_valid(self, form):
        response = super().form_valid(form)
        staff_password_changed(user=form.user)
        messages.success(self.request, _("Your password was changed."))
        return response


@login_required
def home(request):
    from reconciliation.selectors import dashboard as reconciliation_dashboard

    # The reconciliation card changes once a day: on the page, not in the live part polled every few seconds.
    context = {**_dashboard_context(request.user), "reconciliation": reconciliation_dashboard(request.user)}
    return render(request, "portal/dashboard.html", context)


@login_required
def dashboard_live(request):
    """HTMX: the parts of the dashboard that change, polled every few seconds."""
    return render(request, "portal/_dashboard_live.html", _dashboard_context(request.user))


def _dashboard_context(user) -> dict:
    from payments.selectors import dashboard

    data = dashboard(user)
    width, height, gap = 560, 160, 6
    bar = (width - gap * (len(data["series"]) - 1)) // len(data["series"])
    top = data["max_volume"] or 1
    bars = []
    for index, point in enumerate(data["series"]):
        bar_height = point["volume"] * (height - 20) // top
        bars.append(
            {**point, "x": index * (bar + gap), "width": bar, "height": bar_height, "y": height - 20 - bar_height}
        )
    return {
        **data,
        "bars": bars,
        "chart_width": width,
        "chart_height": height,
        "merchants": selectors.merchants_visible_to(user)[:5],
    }


@login_required
def audit_list(request):
    require(request.user, Action.VIEW_AUDIT)
    entries = selectors.audit_visible_to(request.user).select_related("merchant")
    if action := request.GET.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if actor := request.GET.get("actor", "").strip():
        entries = entries.filter(actor_label__icontains=actor)
    if day := request.GET.get("date", "").strip():
        entries = entries.filter(created_at__date=day) if _is_iso_date(day) else entries
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    actions = selectors.audit_visible_to(request.user).values_list("action", flat=True).distinct().order_by("action")
    return render(
        request,
        "portal/audit.html",
        {"page": page, "filters": request.GET, "query": query.urlencode(), "actions": actions},
    )


def _is_iso_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
