"""Console pages for alerts: the list (filters, read marks), one alert with where it was sent, and the chat robots
(provider and merchant admins: add, send a test message, enable or disable, delete).

Every query is scoped (`selectors.*_visible_to`): an alert or robot outside the user's scope is a 404. Writes go
through `alerts.services`, which audit the robots' changes. A robot's address and secret are never on a page after
they are saved.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from portal.errors import InvalidInput, InvalidState
from portal.forms import add_service_errors
from portal.permissions import Action, require
from portal.views_onboarding import paginate

from . import selectors, services, text
from .forms import ChannelForm
from .models import AlertChannel, AlertDelivery, Rule, Severity


def _back(request: HttpRequest) -> HttpResponse:
    """Back to the list the form was posted from (its filters kept), or the whole list."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}) and target.startswith("/"):
        return redirect(target)
    return redirect("portal:alert_list")


@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.VIEW)
    filters = selectors.parse_filters(request.user, request.GET)
    alerts = selectors.filter_alerts(
        selectors.with_read(selectors.alerts_visible_to(request.user), request.user), filters
    )
    page = paginate(request, alerts)
    return render(
        request,
        "alerts/alert_list.html",
        {
            "page": page,
            "rows": [(alert, text.title(alert), text.body(alert)) for alert in page.object_list],
            "filters": filters,
            "rules": Rule.choices,
            "severities": Severity.choices,
            "show_merchant": selectors.shows_merchant(request.user),
            "merchants": selectors.merchants_for_filter(request.user) if selectors.shows_merchant(request.user) else [],
        },
    )


@login_required
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One alert: what was found, where to handle it, and its messages to the robots. Seeing it marks it read."""
    require(request.user, Action.VIEW)
    alert = get_object_or_404(selectors.alerts_visible_to(request.user).select_related("merchant", "provider"), pk=pk)
    services.alert_mark_read(alert=alert, user=request.user)
    return render(
        request,
        "alerts/alert_detail.html",
        {
            "alert": alert,
            "title": text.title(alert),
            "body": text.body(alert),
            "subject_url": text.subject_url(alert),
            "owner": text.owner_name(alert),
            "deliveries": selectors.deliveries_of(alert),
            "statuses": AlertDelivery.Status,
        },
    )


@login_required
@require_POST
def alert_read(request: HttpRequest, pk: int) -> HttpResponse:
    require(request.user, Action.VIEW)
    alert = get_object_or_404(selectors.alerts_visible_to(request.user), pk=pk)
    services.alert_mark_read(alert=alert, user=request.user)
    return _back(request)


@login_required
@require_POST
def alert_read_all(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.VIEW)
    count = services.alerts_mark_all_read(alerts=selectors.alerts_visible_to(request.user), user=request.user)
    messages.success(
        request,
        ngettext("%(count)d alert marked read.", "%(count)d alerts marked read.", count) % {"count": count},
    )
    return _back(request)


# --- robots ----------------------------------------------------------------------------------------------------------


def _channel(request: HttpRequest, pk: int) -> AlertChannel:
    require(request.user, Action.ALERT_CHANNELS)
    return get_object_or_404(selectors.channels_visible_to(request.user), pk=pk)


@login_required
def channel_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.ALERT_CHANNELS)
    channels = selectors.with_last_delivery(selectors.channels_visible_to(request.user))
    return render(
        request,
        "alerts/channel_list.html",
        {
            "page": paginate(request, channels.order_by("name", "id")),
            "show_owner": selectors.shows_merchant(request.user),
        },
    )


@login_required
def channel_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.ALERT_CHANNELS)
    posted = request.method == "POST"
    form = ChannelForm(request.POST if posted else None, owners=selectors.owner_choices(request.user))
    if posted and form.is_valid():
        data = form.cleaned_data
        try:
            channel = services.channel_create(
                owner=data["owner"],
                name=data["name"],
                kind=data["kind"],
                webhook_url=data["webhook_url"],
                secret=data["secret"],
                min_severity=data["min_severity"],
                quiet_minutes=data["quiet_minutes"],
                user=request.user,
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("The robot %(name)s was added. Send it a test message to check the group receives it.")
                % {"name": channel.name},
            )
            return redirect("portal:alert_channels")
    response = render(request, "alerts/channel_form.html", {"form": form}, status=400 if form.is_bound else 200)
    response["Cache-Control"] = "no-store"  # a form sent back may hold the address just typed
    return response


@login_required
@require_POST
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    try:
        answer = services.channel_send_test(channel=channel, user=request.user)
    except InvalidState as exc:
        messages.error(request, _(exc.message))
    else:
        if answer.ok:
            messages.success(request, _("The robot %(name)s took the test message.") % {"name": channel.name})
        else:
            messages.error(
                request,
                _("The robot %(name)s did not take the test message: %(error)s")
                % {"name": channel.name, "error": answer.error},
            )
    return redirect("portal:alert_channels")


@login_required
@require_POST
def channel_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    channel = services.channel_set_active(channel=channel, is_active=not channel.is_active, user=request.user)
    messages.success(
        request,
        (_("The robot %(name)s is enabled.") if channel.is_active else _("The robot %(name)s is disabled."))
        % {"name": channel.name},
    )
    return redirect("portal:alert_channels")


@login_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """First POST: the confirmation page; confirmed: the robot is deleted."""
    channel = _channel(request, pk)
    if request.POST.get("confirm") != "yes":
        return render(
            request,
            "portal/onboarding/confirm.html",
            {
                "title": _("Delete the robot"),
                "message": _("The robot %(name)s is deleted: no more alerts are sent to its group.")
                % {"name": channel.name},
                "button": _("Delete robot"),
                "cancel_url": reverse("portal:alert_channels"),
                "danger": True,
            },
        )
    services.channel_delete(channel=channel, user=request.user)
    messages.success(request, _("The robot %(name)s was deleted.") % {"name": channel.name})
    return redirect("portal:alert_channels")
