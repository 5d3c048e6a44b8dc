"""Console views shared by every role: sign-in (its second step is in portal.views_users), sign-out, password change
and the home page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render
from django.utils.translation import gettext as _

from portal import audit_text, charts, selectors
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
    from payments.dashboard import PERIODS, live, trends
    from reconciliation.selectors import dashboard as reconciliation_dashboard

    # The trends and the reconciliation card are read with the page; the live part is polled every few seconds.
    period = request.GET.get("period", "")
    data = trends(request.user, period if period in PERIODS else "day")
    context = {
        **live(request.user),
        **data,
        "chart": charts.trend_chart(data["buckets"], data["period"]),
        "reconciliation": reconciliation_dashboard(request.user),
    }
    return render(request, "portal/dashboard.html", context)


@login_required
def dashboard_live(request):
    """HTMX: the parts of the dashboard that change, polled every few seconds."""
    from payments.dashboard import live

    return render(request, "portal/_dashboard_live.html", live(request.user))


@login_required
def audit_list(request):
    require(request.user, Action.VIEW_AUDIT)
    entries = selectors.audit_visible_to(request.user).select_related("merchant", "provider", "actor")
    if action := request.GET.get("action", "").strip():
        entries = entries.filter(action__startswith=action)
    if actor := request.GET.get("actor", "").strip():
        entries = entries.filter(Q(actor_label__icontains=actor) | Q(actor__first_name__icontains=actor))
    if day := request.GET.get("date", "").strip():
        entries = entries.filter(created_at__date=day) if _is_iso_date(day) else entries
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    codes = selectors.audit_visible_to(request.user).values_list("action", flat=True).distinct().order_by("action")
    return render(
        request,
        "portal/audit.html",
        {
            "page": page,
            "lines": audit_text.audit_lines(page.object_list, labels=_audit_labels()),
            "filters": request.GET,
            "query": query.urlencode(),
            "actions": [(code, audit_text.action_name(code)) for code in codes],
        },
    )


def _audit_labels() -> dict:
    """The names of the codes the apps write into audit details (portal's own are in portal.audit_text)."""
    from payments.models import PaymentStatus, Refund
    from payments.timeline import REFUND_RESOLUTIONS
    from reconciliation.models import DifferenceKind
    from webhooks.models import EventType

    return {
        "payment_status": dict(PaymentStatus.choices),
        "refund_kind": dict(Refund.Kind.choices),
        "refund_resolution": REFUND_RESOLUTIONS,
        "difference_kind": dict(DifferenceKind.choices),
        "webhook_event": dict(EventType.choices),
    }


def _is_iso_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
