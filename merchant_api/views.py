"""Console pages for merchant API clients: the list, a new client (its secret shown once, on the page after the
form), and revoking one. For provider and merchant admins (Action.INTEGRATIONS), over the merchants they may see;
every create and revoke goes through `merchant_api.services`, which audits it."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from portal import shown_once
from portal.errors import InvalidInput, InvalidState
from portal.forms import add_service_errors
from portal.permissions import Action, require
from portal.selectors import membership_of, merchants_visible_to
from portal.views_onboarding import paginate

from . import selectors, services
from .forms import ApiClientForm
from .models import MerchantApiClient


def _client(request: HttpRequest, pk: int) -> MerchantApiClient:
    """A client the user may see (else 404), and only then the role check (403): a foreign id reveals nothing."""
    client = get_object_or_404(selectors.clients_visible_to(request.user), pk=pk)
    require(request.user, Action.INTEGRATIONS)
    return client


@login_required
def client_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.INTEGRATIONS)
    membership = membership_of(request.user)
    context = {
        "page": paginate(request, selectors.clients_visible_to(request.user)),
        "show_merchant": membership is None or membership.is_provider_role,  # superusers and provider staff
    }
    return render(request, "merchant_api/client_list.html", context)


@login_required
def client_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.INTEGRATIONS)
    form = ApiClientForm(request.POST or None, merchants=merchants_visible_to(request.user).order_by("name"))
    if request.method == "POST" and form.is_valid():
        try:
            client, secret = services.api_client_create(
                merchant=form.cleaned_data["merchant"], name=form.cleaned_data["name"], actor=request.user
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            return _show_secret_once(request, client=client, secret=secret)
    status = 400 if form.is_bound else 200
    return render(request, "merchant_api/client_form.html", {"form": form}, status=status)


def _show_secret_once(request: HttpRequest, *, client: MerchantApiClient, secret: str) -> HttpResponse:
    """Redirect (POST → GET) to the page that shows the new secret once (`portal.shown_once`): reloading it neither
    shows it again nor creates a second client."""
    token = shown_once.hold(request, f"api_client_secret:{client.pk}", {"secret": secret})
    return redirect("portal:merchant_api_client_secret", pk=client.pk, token=token)


@login_required
def client_secret(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """The only response that ever carries a client secret; never cached. Shown once."""
    client = _client(request, pk)
    secret = (shown_once.take(request, f"api_client_secret:{client.pk}", token) or {}).get("secret")
    context = {
        "client": client,
        "secret": secret,
        "token_url": settings.PUBLIC_BASE_URL.rstrip("/") + reverse("merchant:token"),
    }
    return shown_once.no_store(render(request, "merchant_api/client_secret.html", context))


@login_required
def client_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    client = _client(request, pk)
    if not (request.method == "POST" and request.POST.get("confirm") == "yes"):
        return render(
            request,
            "portal/onboarding/confirm.html",
            {
                "title": _("Revoke the API client %(name)s") % {"name": client.name},
                "message": _(
                    "Its access tokens stop working at once and it cannot get new ones. This cannot be undone: "
                    "the merchant's system needs a new client."
                ),
                "button": _("Revoke"),
                "cancel_url": reverse("portal:merchant_api_clients"),
                "danger": True,
            },
        )
    try:
        services.api_client_revoke(client=client, actor=request.user)
    except InvalidState:
        messages.error(request, _("This client was already revoked."))
    else:
        messages.success(request, _("The API client %(name)s was revoked.") % {"name": client.name})
    return redirect("portal:merchant_api_clients")
