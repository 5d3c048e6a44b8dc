"""Console pages for onboarding: merchants (with their channel credentials and a connection test), stores and
devices.

Every object is looked up through the role-scoped selectors first — an id outside the user's scope is a 404 — and
only then is the action checked (403), so a foreign id never reveals whether it exists. Writes go through
`portal.services`; device secrets are shown once, in the response to the request that generated them.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from portal import services, shown_once
from portal.errors import InvalidInput, InvalidState
from portal.forms import CredentialsForm, DeviceRegisterForm, MerchantForm, StoreForm, add_service_errors
from portal.models import ChannelCredentials, Merchant, Presence, ServiceProvider, Store
from portal.permissions import Action, can, require
from portal.selectors import (
    devices_visible_to,
    filter_devices,
    membership_of,
    merchants_visible_to,
    parse_device_filters,
    signing_credentials_for,
    stores_visible_to,
    works_across_merchants,
)

PAGE_SIZE = 25
RECENT_PAYMENTS = 10


def paginate(request: HttpRequest, queryset) -> Page:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _confirm_page(request: HttpRequest, *, title: str, message: str, button: str, cancel_url: str, danger=True):
    return render(
        request,
        "portal/onboarding/confirm.html",
        {"title": title, "message": message, "button": button, "cancel_url": cancel_url, "danger": danger},
    )


# --- merchants ---------------------------------------------------------------------------------------------------


def _merchant_for(request: HttpRequest, pk: int) -> Merchant:
    merchant = get_object_or_404(merchants_visible_to(request.user), pk=pk)
    require(request.user, Action.MANAGE_MERCHANTS)
    return merchant


@login_required
def merchant_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.MANAGE_MERCHANTS)
    merchants = merchants_visible_to(request.user).annotate(store_count=Count("stores"))
    query = request.GET.get("q", "").strip()
    if query:
        merchants = merchants.filter(
            Q(name__icontains=query)
            | Q(mch_id=query)
            | Q(sub_mch_id=query)
            | Q(umpay_acq_mer_id=query)
            | Q(appid=query)
        )
    status = request.GET.get("status", "")
    if status in Merchant.Status.values:
        merchants = merchants.filter(status=status)
    context = {
        "page": paginate(request, merchants.order_by("name", "pk")),
        "query": query,
        "status": status,
        "statuses": Merchant.Status.choices,
    }
    return render(request, "portal/onboarding/merchant_list.html", context)


def _providers_for_create(user) -> tuple[ServiceProvider | None, object]:
    """(the provider new merchants go under, or None with a queryset to choose from for platform superusers)."""
    membership = membership_of(user)
    if membership is not None and membership.is_provider_role:
        return membership.provider, None
    if user.is_superuser:
        return None, ServiceProvider.objects.all()
    raise PermissionDenied


@login_required
def merchant_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.MANAGE_MERCHANTS)
    provider, providers = _providers_for_create(request.user)
    form = MerchantForm(request.POST or None, providers=providers)
    if request.method == "POST" and form.is_valid():
        owner = form.cleaned_data.get("provider") if providers is not None else provider
        try:
            merchant = services.merchant_create(
                provider=owner,
                channel=form.cleaned_data["channel"],
                values=form.service_values(),
                actor=request.user,
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Merchant %(name)s was created.") % {"name": merchant.name})
            return redirect("portal:merchant_detail", pk=merchant.pk)
    status = 400 if form.is_bound else 200
    context = {"form": form, "provider": provider}
    return render(request, "portal/onboarding/merchant_form.html", context, status=status)


CREDENTIAL_LABELS = {
    "wechat_api_v2_key": "WeChat API v2 key",
    "wechat_api_v3_key": "WeChat APIv3 key",
    "wechat_private_key": "Merchant API private key",
    "wechat_certificate": "Merchant API certificate",
    "wechat_platform_certificates": "WeChat Pay platform certificates",
    "wechat_platform_public_key": "WeChat Pay platform public key",
    "umpay_private_key": "UMF private key",
    "umpay_certificate": "UMF certificate",
}
WECHAT_CREDENTIALS = tuple(name for name in CREDENTIAL_LABELS if name.startswith("wechat_"))
UMPAY_CREDENTIALS = ("umpay_private_key", "umpay_certificate")


def _configured(credentials: ChannelCredentials | None, names) -> list[tuple[str, bool]]:
    """(label, present) pairs: whether a credential is configured is all the console ever shows about it."""
    present = credentials.configured() if credentials is not None else {}
    return [(_(CREDENTIAL_LABELS[name]), bool(present.get(name))) for name in names]


@login_required
def merchant_detail(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    names = UMPAY_CREDENTIALS if merchant.channel == Merchant.Channel.UMPAY else WECHAT_CREDENTIALS
    context = {
        "merchant": merchant,
        "store_count": merchant.stores.count(),
        "device_count": devices_visible_to(request.user).filter(store__merchant=merchant).count(),
        "credentials": _configured(signing_credentials_for(merchant), names),
        "credentials_owner": "merchant" if merchant.channel == Merchant.Channel.WECHAT_DIRECT else "provider",
    }
    return render(request, "portal/onboarding/merchant_detail.html", context)


@login_required
def merchant_edit(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    initial = {name: getattr(merchant, name) for name in services.MERCHANT_FIELDS}
    form = MerchantForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.merchant_update(merchant=merchant, values=form.service_values(), actor=request.user)
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("The merchant was saved."))
            return redirect("portal:merchant_detail", pk=merchant.pk)
    status = 400 if form.is_bound else 200
    return render(request, "portal/onboarding/merchant_form.html", {"form": form, "merchant": merchant}, status=status)


def _credentials_page(request: HttpRequest, *, owner, form: CredentialsForm, done_url: str, context: dict):
    if request.method == "POST" and form.is_valid():
        values = form.credential_values()
        if not values:
            form.add_error(None, _("Nothing was entered; the stored credentials are unchanged."))
        else:
            try:
                services.credentials_update(owner=owner, values=values, actor=request.user)
            except InvalidInput as exc:
                add_service_errors(form, exc)
            else:
                names = ", ".join(str(form.fields[name].label) for name in values)
                messages.success(request, _("Credentials saved: %(names)s.") % {"names": names})
                return redirect(done_url)
    existing = ChannelCredentials.objects.filter(
        **({"provider": owner} if isinstance(owner, ServiceProvider) else {"merchant": owner})
    ).first()
    names = [name for name in CREDENTIAL_LABELS if name in form.fields]
    platform_keys = _platform_key_status(existing) if "wechat_platform_certificates" in form.fields else None
    response = render(
        request,
        "portal/onboarding/credentials_form.html",
        {**context, "form": form, "configured": _configured(existing, names), "platform_keys": platform_keys},
        status=400 if form.is_bound and form.errors else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
def merchant_credentials(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    if merchant.channel != Merchant.Channel.WECHAT_DIRECT:
        # Service-provider and UMF merchants are signed with the provider's credentials.
        messages.info(request, _("This merchant's calls are signed with its service provider's credentials."))
        return redirect("portal:provider_credentials", pk=merchant.provider_id)
    form = CredentialsForm(request.POST or None, request.FILES or None, include_umpay=False)
    return _credentials_page(
        request,
        owner=merchant,
        form=form,
        done_url=reverse("portal:merchant_detail", args=[merchant.pk]),
        context={
            "merchant": merchant,
            "owner_name": merchant.name,
            "refresh_url": reverse("portal:merchant_refresh_platform_keys", args=[merchant.pk]),
        },
    )


def _provider_for(request: HttpRequest, pk: int) -> ServiceProvider:
    """The provider whose credentials the user may manage: their own (provider admins), any (platform superusers)."""
    if request.user.is_superuser:
        return get_object_or_404(ServiceProvider, pk=pk)
    membership = membership_of(request.user)
    if membership is None or not membership.is_provider_role or membership.provider_id != pk:
        raise Http404  # another provider's page: as if it did not exist
    require(request.user, Action.MANAGE_MERCHANTS)
    return membership.provider


@login_required
def provider_credentials(request: HttpRequest, pk: int) -> HttpResponse:
    provider = _provider_for(request, pk)
    form = CredentialsForm(request.POST or None, request.FILES or None)
    return _credentials_page(
        request,
        owner=provider,
        form=form,
        done_url=reverse("portal:provider_credentials", args=[provider.pk]),
        context={
            "provider": provider,
            "owner_name": provider.name,
            "refresh_url": reverse("portal:provider_refresh_platform_keys", args=[provider.pk]),
        },
    )


# --- WeChat Pay platform keys ------------------------------------------------------------------------------------


def _platform_key_status(credentials: ChannelCredentials | None):
    """The "platform keys" section of the credentials page (payments.platform_certificates): mode, certificates,
    public key id, last refresh; never a secret."""
    from payments import platform_certificates

    return platform_certificates.platform_key_status(credentials or ChannelCredentials())


def _refresh_platform_keys(request: HttpRequest, *, owner, done_url: str) -> HttpResponse:
    """Download the platform certificates now (audited as the user's), then back to the credentials page with what
    came of it."""
    from payments import platform_certificates

    lookup = {"provider": owner} if isinstance(owner, ServiceProvider) else {"merchant": owner}
    credentials = ChannelCredentials.objects.filter(**lookup).first()
    outcome = platform_certificates.refresh(credentials, actor=request.user) if credentials is not None else None
    if outcome is None or outcome.code == "NOT_CONFIGURED":
        messages.error(
            request,
            _("Enter the APIv3 key, the merchant API private key and its certificate before refreshing."),
        )
    elif outcome.status == "SKIPPED":
        messages.info(
            request, _("Only the WeChat Pay public key is used: there are no platform certificates to download.")
        )
    elif outcome.status == "REFRESHED":
        messages.success(
            request,
            ngettext(
                "Platform keys refreshed: %(count)d certificate stored (%(added)d new, %(removed)d expired removed).",
                "Platform keys refreshed: %(count)d certificates stored (%(added)d new, %(removed)d expired removed).",
                len(outcome.serials),
            )
            % {"count": len(outcome.serials), "added": len(outcome.added), "removed": len(outcome.removed)},
        )
    else:
        messages.error(
            request,
            _("The platform keys were not refreshed (%(code)s): %(reason)s The stored ones are unchanged.")
            % {"code": outcome.code, "reason": platform_certificates.error_text(outcome.code)},
        )
    return redirect(done_url)


@login_required
@require_POST
def merchant_refresh_platform_keys(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    if merchant.channel != Merchant.Channel.WECHAT_DIRECT:
        raise Http404  # signed with the provider's credentials: refreshed on the provider's page
    return _refresh_platform_keys(
        request, owner=merchant, done_url=reverse("portal:merchant_credentials", args=[merchant.pk])
    )


@login_required
@require_POST
def provider_refresh_platform_keys(request: HttpRequest, pk: int) -> HttpResponse:
    provider = _provider_for(request, pk)
    return _refresh_platform_keys(
        request, owner=provider, done_url=reverse("portal:provider_credentials", args=[provider.pk])
    )


@dataclass(frozen=True)
class ConnectionCheck:
    """What a harmless signed call told us about the credentials. status: OK, NOT_ACCEPTED, UNREACHABLE,
    NOT_CONFIGURED or INCONCLUSIVE."""

    status: str
    code: str = ""
    message: str = ""


_TRANSPORT_CODES = ("TIMEOUT", "CONNECT_ERROR", "NETWORK_ERROR", "UNPARSEABLE")


def check_connection(merchant: Merchant) -> ConnectionCheck:
    """Query an order that cannot exist. Upstream checks the request signature before it looks for the order, so
    "no such order" (or any verified answer) means our credentials are accepted; a signature refusal means not.
    Nothing is created upstream or here."""
    from payments import channels
    from payments.gateways import umpay, wechatpay_v2
    from payments.gateways.http import Timeouts

    probe = "PROBE" + secrets.token_hex(8).upper()
    timeouts = Timeouts(connect=settings.UPSTREAM_CONNECT_TIMEOUT, read=settings.UPSTREAM_READ_TIMEOUT)
    try:
        if merchant.channel == Merchant.Channel.UMPAY:
            result = umpay.query_order(
                channels._umpay_config(merchant), order_no=probe, client=channels.upstream_client, timeouts=timeouts
            )
        else:
            result = wechatpay_v2.orderquery(
                channels._wechat_config(merchant),
                wechatpay_v2.OrderQueryRequest(out_trade_no=probe),
                client=channels.upstream_client,
                timeouts=timeouts,
            )
    except InvalidState as exc:
        return ConnectionCheck("NOT_CONFIGURED", exc.code, exc.message)
    except ValueError as exc:  # a stored key that no longer loads
        return ConnectionCheck("NOT_CONFIGURED", "BAD_CREDENTIALS", type(exc).__name__)
    code, message = result.code, result.message
    if code in _TRANSPORT_CODES or code.startswith("HTTP_"):
        return ConnectionCheck("UNREACHABLE", code, message)
    if code == "BAD_SIGNATURE":
        # The answer did not verify with our key / the channel's certificate: the two sides disagree.
        return ConnectionCheck("NOT_ACCEPTED", code, message)
    if merchant.channel == Merchant.Channel.UMPAY:
        # Every UMF answer that reaches here verified. UMF does not publish its signature-failure code, so it is
        # recognised by its message (验签失败 / 签名错误).
        if "验签" in message or "签名" in message:
            return ConnectionCheck("NOT_ACCEPTED", code, message)
        return ConnectionCheck("OK", code, message)
    if code == "FAIL":
        # return_code FAIL: WeChat refused the request itself (signature, mch_id, parameters) without processing it.
        return ConnectionCheck("NOT_ACCEPTED", code, message)
    if result.response_fields.get("return_code") == "SUCCESS":
        return ConnectionCheck("OK", code or "SUCCESS", message)  # a verified business answer, e.g. ORDERNOTEXIST
    return ConnectionCheck("INCONCLUSIVE", code, message)


@login_required
@require_POST
def merchant_test_connection(request: HttpRequest, pk: int) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    check = check_connection(merchant)
    services.audit_record(
        actor=request.user,
        action="merchant.test_connection",
        obj=merchant,
        details={"result": check.status, "code": check.code},
    )
    if request.headers.get("HX-Request"):
        return render(request, "portal/onboarding/_connection_result.html", {"check": check})
    level = messages.SUCCESS if check.status == "OK" else messages.ERROR
    messages.add_message(request, level, _connection_summary(check))
    return redirect("portal:merchant_detail", pk=merchant.pk)


def _connection_summary(check: ConnectionCheck) -> str:
    return {
        "OK": _("Credentials OK: the channel accepted our signature."),
        "NOT_ACCEPTED": _("Not accepted: the channel refused our signature or credentials."),
        "UNREACHABLE": _("Unreachable: the channel could not be reached."),
        "NOT_CONFIGURED": _("No usable credentials are configured for this merchant."),
        "INCONCLUSIVE": _("Inconclusive: the channel's answer did not say whether the signature was accepted."),
    }[check.status]


def _merchant_set_status(request: HttpRequest, pk: int, status: str) -> HttpResponse:
    merchant = _merchant_for(request, pk)
    suspend = status == Merchant.Status.SUSPENDED
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Suspend %(name)s") % {"name": merchant.name}
            if suspend
            else _("Resume %(name)s") % {"name": merchant.name},
            message=_("Its terminals will be refused until the merchant is resumed.")
            if suspend
            else _("Its terminals will be able to take payments again."),
            button=_("Suspend") if suspend else _("Resume"),
            cancel_url=reverse("portal:merchant_detail", args=[merchant.pk]),
            danger=suspend,
        )
    services.merchant_set_status(merchant=merchant, status=status, actor=request.user)
    messages.success(request, _("The merchant was suspended.") if suspend else _("The merchant was resumed."))
    return redirect("portal:merchant_detail", pk=merchant.pk)


@login_required
def merchant_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    return _merchant_set_status(request, pk, Merchant.Status.SUSPENDED)


@login_required
def merchant_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _merchant_set_status(request, pk, Merchant.Status.ACTIVE)


# --- stores ------------------------------------------------------------------------------------------------------


@login_required
def store_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.VIEW)
    stores = stores_visible_to(request.user).annotate(device_count=Count("devices"))
    merchants = merchants_visible_to(request.user)
    query = request.GET.get("q", "").strip()
    if query:
        stores = stores.filter(Q(store_id__icontains=query) | Q(name__icontains=query))
    merchant_id = request.GET.get("merchant", "")
    if merchant_id.isdigit():
        stores = stores.filter(merchant_id=int(merchant_id))
    active = request.GET.get("active", "")
    if active in ("yes", "no"):
        stores = stores.filter(is_active=active == "yes")
    context = {
        "page": paginate(request, stores.order_by("merchant__name", "store_id", "pk")),
        "query": query,
        "merchant_id": merchant_id,
        "active": active,
        "merchants": merchants if merchants.count() > 1 else None,
    }
    return render(request, "portal/onboarding/store_list.html", context)


@login_required
def store_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.MANAGE_STORES)
    merchants = merchants_visible_to(request.user)
    initial = {}
    if request.GET.get("merchant", "").isdigit():
        initial["merchant"] = int(request.GET["merchant"])
    elif merchants.count() == 1:
        initial["merchant"] = merchants.get().pk
    form = StoreForm(request.POST or None, merchants=merchants, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            store = services.store_create(
                merchant=data["merchant"],
                store_id=data["store_id"],
                name=data["name"],
                address=data["address"],
                area_code=data["area_code"],
                opens_at=data["opens_at"],
                closes_at=data["closes_at"],
                payscore_materiel_url=data["payscore_materiel_url"],
                actor=request.user,
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Store %(name)s was created.") % {"name": store.name})
            return redirect("portal:store_detail", pk=store.pk)
    status = 400 if form.is_bound else 200
    return render(request, "portal/onboarding/store_form.html", {"form": form}, status=status)


def _store_detail_context(request: HttpRequest, store: Store, register_form: DeviceRegisterForm) -> dict:
    from payments.models import Payment

    return {
        "store": store,
        "devices": devices_visible_to(request.user).filter(store=store).order_by("device_id"),
        "payments": Payment.objects.filter(store=store).order_by("-created_at", "-id")[:RECENT_PAYMENTS],
        "register_form": register_form,
        "can_manage": can(request.user, Action.MANAGE_STORES),
    }


@login_required
def store_detail(request: HttpRequest, pk: int) -> HttpResponse:
    store = get_object_or_404(stores_visible_to(request.user), pk=pk)
    require(request.user, Action.VIEW)
    context = _store_detail_context(request, store, DeviceRegisterForm())
    return render(request, "portal/onboarding/store_detail.html", context)


def _store_for_write(request: HttpRequest, pk: int) -> Store:
    store = get_object_or_404(stores_visible_to(request.user), pk=pk)
    require(request.user, Action.MANAGE_STORES)
    return store


@login_required
def store_edit(request: HttpRequest, pk: int) -> HttpResponse:
    store = _store_for_write(request, pk)
    initial = {
        "name": store.name,
        "address": store.address,
        "area_code": store.area_code,
        "opens_at": store.opens_at,
        "closes_at": store.closes_at,
        "payscore_materiel_url": store.payscore_materiel_url,
    }
    form = StoreForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.store_update(store=store, actor=request.user, **form.cleaned_data)
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("The store was saved."))
            return redirect("portal:store_detail", pk=store.pk)
    status = 400 if form.is_bound else 200
    return render(request, "portal/onboarding/store_form.html", {"form": form, "store": store}, status=status)


@login_required
@require_POST
def store_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    store = _store_for_write(request, pk)
    store = services.store_set_active(store=store, is_active=not store.is_active, actor=request.user)
    messages.success(request, _("The store was enabled.") if store.is_active else _("The store was disabled."))
    return redirect("portal:store_detail", pk=store.pk)


# --- devices -----------------------------------------------------------------------------------------------------


@login_required
def device_list(request: HttpRequest) -> HttpResponse:
    """Every device the user may see, across stores, with its presence (online, offline, never seen) and the
    counts of the filtered set. Provider staff choose a merchant before its stores are offered."""
    require(request.user, Action.VIEW)
    now = timezone.now()
    filters = parse_device_filters(request.user, request.GET)
    across = works_across_merchants(request.user)
    devices = devices_visible_to(request.user)
    merchants = stores = None
    if across:
        merchants = merchants_visible_to(request.user).select_related(None).only("pk", "name").order_by("name", "pk")
    if filters.merchant is not None or not across:
        stores = stores_visible_to(request.user).select_related(None).only("pk", "name", "store_id")
        if filters.merchant is not None:
            stores = stores.filter(merchant=filters.merchant)
        stores = stores.order_by("name", "pk")
    # The SDK versions offered: those of the devices in the chosen merchant or store.
    placed = filter_devices(devices, dataclasses.replace(filters, presence="", sdk_version="", prefix=""), now)
    sdk_versions = placed.exclude(sdk_version="").order_by("sdk_version").values_list("sdk_version", flat=True)
    context = {
        "filters": request.GET,
        "errors": filters.errors,
        "show_merchant": across,
        "merchants": merchants,
        "stores": stores,
        "statuses": Presence.choices,
        "sdk_versions": sdk_versions.distinct(),
        "now": now,
        "offline_minutes": settings.DEVICE_OFFLINE_AFTER_SECONDS / 60,
    }
    if not filters.errors:
        rows = filter_devices(devices, filters, now)
        counts = rows.presence_counts(now)
        paginator = Paginator(rows.order_by("store__merchant__name", "store__name", "device_id"), PAGE_SIZE)
        paginator.count = counts["total"]  # the counts' total: no second COUNT of the filtered set
        context.update(counts=counts, page=paginator.get_page(request.GET.get("page")))
    return render(request, "portal/onboarding/device_list.html", context)


def _show_secret_once(request: HttpRequest, *, device, secret: str, rotated: bool) -> HttpResponse:
    """After registering or rotating, redirect (POST → GET) to the page that shows the new secret once
    (`portal.shown_once`): reloading it neither shows it again nor registers a second device or rotates again."""
    token = shown_once.hold(request, f"device_secret:{device.pk}", {"rotated": rotated, "secret": secret})
    return redirect("portal:device_secret", pk=device.pk, token=token)


@login_required
def device_secret(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """The only response that ever carries a device secret; never cached. Shown once."""
    device = _device_for_write(request, pk)
    held = shown_once.take(request, f"device_secret:{device.pk}", token) or {}
    secret = held.get("secret")
    api_base = reverse("terminal:heartbeat").removesuffix("heartbeat")
    server_url = settings.PUBLIC_BASE_URL.rstrip("/") + api_base
    return shown_once.no_store(
        render(
            request,
            "portal/onboarding/device_secret.html",
            {"device": device, "secret": secret, "server_url": server_url, "rotated": held.get("rotated", False)},
        )
    )


@login_required
@require_POST
def device_register(request: HttpRequest, pk: int) -> HttpResponse:
    store = _store_for_write(request, pk)
    form = DeviceRegisterForm(request.POST)
    if form.is_valid():
        try:
            device, secret = services.device_register(
                store=store,
                device_id=form.cleaned_data["device_id"] or None,
                name=form.cleaned_data["name"],
                actor=request.user,
            )
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            return _show_secret_once(request, device=device, secret=secret, rotated=False)
    context = _store_detail_context(request, store, form)
    return render(request, "portal/onboarding/store_detail.html", context, status=400)


def _device_for_write(request: HttpRequest, pk: int):
    device = get_object_or_404(devices_visible_to(request.user), pk=pk)
    require(request.user, Action.MANAGE_STORES)
    return device


@login_required
def device_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    device = _device_for_write(request, pk)
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Rotate the secret of %(device)s") % {"device": device.device_id},
            message=_("The current secret stops working at once; the terminal must be configured with the new one."),
            button=_("Rotate secret"),
            cancel_url=reverse("portal:store_detail", args=[device.store_id]),
        )
    secret = services.device_rotate_secret(device=device, actor=request.user)
    return _show_secret_once(request, device=device, secret=secret, rotated=True)


@login_required
@require_POST
def device_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    device = _device_for_write(request, pk)
    device = services.device_set_active(device=device, is_active=not device.is_active, actor=request.user)
    messages.success(
        request,
        (_("Device %(device)s was enabled.") if device.is_active else _("Device %(device)s was disabled."))
        % {"device": device.device_id},
    )
    return redirect("portal:store_detail", pk=device.store_id)
