"""Console pages for webhooks: a merchant's endpoints, making one (its signing secret shown once), an endpoint's
settings with secret rotation, a test event and its delivery log, and one delivery with every attempt.

Every page needs Action.INTEGRATIONS (provider and merchant admins). Every query is scoped
(`selectors.*_visible_to`): an endpoint or delivery outside the user's scope is a 404. Writes go through
`webhooks.services`, which audit them. A signing secret is only ever in the response to the POST that made it —
never in a URL, the session or a log — and that response is not cached.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from portal.errors import InvalidInput, InvalidState
from portal.forms import add_service_errors
from portal.permissions import Action, require
from portal.selectors import merchants_visible_to
from portal.views_onboarding import paginate

from . import selectors, services, signing
from .forms import EndpointForm
from .models import SUBSCRIBABLE, EventType, WebhookDelivery, WebhookEndpoint

RECEIVER_PORT = 8765


def _endpoint(request: HttpRequest, pk: int, *, with_summary: bool = False) -> WebhookEndpoint:
    require(request.user, Action.INTEGRATIONS)
    endpoints = selectors.endpoints_visible_to(request.user)
    return get_object_or_404(selectors.with_delivery_summary(endpoints) if with_summary else endpoints, pk=pk)


def _delivery(request: HttpRequest, pk: int) -> WebhookDelivery:
    require(request.user, Action.INTEGRATIONS)
    return get_object_or_404(selectors.deliveries_visible_to(request.user), pk=pk)


def _secret_page(request: HttpRequest, *, endpoint: WebhookEndpoint, secret: str, rotated: bool) -> HttpResponse:
    """The only response that carries a signing secret: the answer to the POST that made it, never cached."""
    response = render(
        request,
        "webhooks/secret.html",
        {
            "endpoint": endpoint,
            "secret": secret,
            "rotated": rotated,
            "listen_command": f"python manage.py webhook_listen --port {RECEIVER_PORT} --secret {secret}",
            "headers": [signing.EVENT_ID_HEADER, signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER],
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.INTEGRATIONS)
    endpoints = selectors.with_delivery_summary(selectors.endpoints_visible_to(request.user))
    page = paginate(request, endpoints.order_by("merchant__name", "id"))
    return render(
        request,
        "webhooks/endpoint_list.html",
        {
            "page": page,
            "rows": [(endpoint, selectors.event_labels(endpoint.events)) for endpoint in page.object_list],
            "show_merchant": selectors.shows_merchant(request.user),
            "subscribable_count": len(SUBSCRIBABLE),
        },
    )


@login_required
def endpoint_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.INTEGRATIONS)
    posted = request.method == "POST"
    form = EndpointForm(request.POST if posted else None, merchants=merchants_visible_to(request.user).order_by("name"))
    if posted and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint, secret = services.endpoint_create(
                merchant=data["merchant"],
                url=data["url"],
                events=data["events"],
                description=data["description"],
                user=request.user,
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            return _secret_page(request, endpoint=endpoint, secret=secret, rotated=False)
    return render(request, "webhooks/endpoint_create.html", {"form": form}, status=400 if form.is_bound else 200)


@login_required
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The endpoint's facts and settings (a POST saves them), its actions and its delivery log."""
    endpoint = _endpoint(request, pk, with_summary=True)
    posted = request.method == "POST"
    initial = {
        "url": endpoint.url,
        "description": endpoint.description,
        "events": endpoint.events,
        "is_active": endpoint.is_active,
    }
    form = EndpointForm(request.POST if posted else None, initial=initial)
    if posted and form.is_valid():
        try:
            services.endpoint_update(endpoint=endpoint, user=request.user, **form.cleaned_data)
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("The endpoint was saved."))
            return redirect("portal:webhook_detail", pk=endpoint.pk)
    deliveries = selectors.filter_deliveries(
        selectors.deliveries_visible_to(request.user).filter(endpoint=endpoint), request.GET
    )
    return render(
        request,
        "webhooks/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "event_labels": selectors.event_labels(endpoint.events),
            "form": form,
            "page": paginate(request, deliveries),
            "filters": request.GET,
            "statuses": WebhookDelivery.Status.choices,
            "types": EventType.choices,
            "previous_secret_until": selectors.previous_secret_until(endpoint),
            "resend_since": (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
        status=400 if form.is_bound else 200,
    )


@login_required
@require_POST
def endpoint_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    """First POST: the confirmation page. Confirmed: a new secret, shown once in this answer."""
    endpoint = _endpoint(request, pk)
    if request.POST.get("confirm") != "yes":
        hours = settings.WEBHOOK_SECRET_OVERLAP_HOURS
        return render(
            request,
            "portal/onboarding/confirm.html",
            {
                "title": _("Rotate the signing secret"),
                "message": ngettext(
                    "A new secret is made for %(url)s and shown once. The current one keeps working beside it for "
                    "%(hours)d hour, so your receiver can switch without missing a delivery.",
                    "A new secret is made for %(url)s and shown once. The current one keeps working beside it for "
                    "%(hours)d hours, so your receiver can switch without missing a delivery.",
                    hours,
                )
                % {"url": endpoint.url, "hours": hours},
                "button": _("Rotate secret"),
                "cancel_url": reverse("portal:webhook_detail", args=[endpoint.pk]),
                "danger": True,
            },
        )
    secret = services.endpoint_rotate_secret(endpoint=endpoint, user=request.user)
    endpoint.refresh_from_db()
    return _secret_page(request, endpoint=endpoint, secret=secret, rotated=True)


@login_required
@require_POST
def endpoint_send_test(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    event = services.endpoint_send_test(endpoint=endpoint, user=request.user)
    delivery = selectors.deliveries_visible_to(request.user).get(event=event, endpoint=endpoint)
    messages.success(request, _("A test event was queued for this endpoint; its delivery updates below."))
    return redirect("portal:webhook_delivery", pk=delivery.pk)


@login_required
@require_POST
def endpoint_resend_failed(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _endpoint(request, pk)
    since = selectors.datetime_param(request.POST, "since")
    if since is None:
        messages.error(request, _("Enter a date and time, e.g. 2026-03-10 08:00."))
    else:
        count = services.deliveries_resend_failed(endpoint=endpoint, since=since, user=request.user)
        messages.success(
            request,
            ngettext(
                "%(count)d failed delivery since %(since)s was queued again.",
                "%(count)d failed deliveries since %(since)s were queued again.",
                count,
            )
            % {"count": count, "since": timezone.localtime(since).strftime("%Y-%m-%d %H:%M:%S")},
        )
    return redirect("portal:webhook_detail", pk=endpoint.pk)


@login_required
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = _delivery(request, pk)
    return render(
        request,
        "webhooks/delivery_detail.html",
        {
            "delivery": delivery,
            "body": selectors.pretty_body(delivery.event.body),
            "attempts": selectors.attempts_of(delivery),
        },
    )


@login_required
def delivery_status(request: HttpRequest, pk: int) -> HttpResponse:
    """HTMX: the status block of a delivery's page, polled while it is pending."""
    delivery = _delivery(request, pk)
    response = render(request, "webhooks/_delivery_status.html", {"delivery": delivery})
    if delivery.status != WebhookDelivery.Status.PENDING:
        response["HX-Refresh"] = "true"  # settled: reload once so the attempts and the actions are current
    return response


@login_required
@require_POST
def delivery_resend(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = _delivery(request, pk)
    try:
        services.delivery_resend(delivery=delivery, user=request.user)
    except InvalidState as exc:
        messages.error(request, _(exc.message))  # the service's words, translated when the catalogue knows them
    else:
        messages.success(request, _("The event is queued to be sent again, with the same event id."))
    return redirect("portal:webhook_delivery", pk=delivery.pk)
