"""Console pages for staff accounts (the users page of provider and merchant admins) and for one's own second
factor (enrolment, the sign-in step, recovery codes).

Users are looked up through `portal.users.staff_visible_to` after the role check: a reviewer or merchant staff gets
403, an id outside the admin's scope 404. Every change goes through the services of `portal.users`, which hold every
rule again. Generated passwords and recovery codes are shown once: they wait encrypted in the session for at most
five minutes and are removed when the page shows them.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import shown_once, two_factor, users
from portal.errors import DomainError, Forbidden, InvalidInput, InvalidState
from portal.forms import StaffCreateForm, StaffRoleForm, TwoFactorEnrolForm, TwoFactorVerifyForm, add_service_errors
from portal.models import StaffMembership
from portal.permissions import Action, require

PAGE_SIZE = 25


def safe_next(request: HttpRequest, default: str = "portal:home") -> str:
    """The `next` address of the request when it stays on this site, else `default` (a URL name)."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse(default)


def _confirmed(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _confirm_page(request: HttpRequest, *, title: str, message: str, button: str, cancel_url: str) -> HttpResponse:
    return render(
        request,
        "portal/onboarding/confirm.html",
        {"title": title, "message": message, "button": button, "cancel_url": cancel_url, "danger": True},
    )


def _service_error(request: HttpRequest, exc: DomainError) -> None:
    """A refused change: Forbidden is a 403; anything else a message on the page the user returns to."""
    if isinstance(exc, Forbidden):
        raise PermissionDenied(_(exc.message))
    texts = [_(text) for text in exc.details.values()] if exc.details else [_(exc.message)]
    messages.error(request, " ".join(texts))


# --- the users page ------------------------------------------------------------------------------------------------


def _staff(request: HttpRequest, pk: int) -> StaffMembership:
    require(request.user, Action.MANAGE_USERS)
    return get_object_or_404(users.staff_visible_to(request.user), pk=pk)


@login_required
def staff_list(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.MANAGE_USERS)
    enrolled = TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)
    staff = users.staff_visible_to(request.user).annotate(two_factor=Exists(enrolled)).order_by("user__username")
    if query := request.GET.get("q", "").strip():
        staff = staff.filter(Q(user__username__icontains=query) | Q(user__first_name__icontains=query))
    page = Paginator(staff, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/users/list.html", {"page": page, "query": query})


@login_required
def staff_create(request: HttpRequest) -> HttpResponse:
    require(request.user, Action.MANAGE_USERS)
    form = StaffCreateForm(
        request.POST or None,
        roles=users.grantable_roles(request.user),
        owners=users.manageable_owners(request.user),
    )
    if request.method == "POST" and form.is_valid():
        try:
            membership, password = users.staff_create(
                actor=request.user,
                username=form.cleaned_data["username"],
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                **form.owner_values(),
            )
        except Forbidden as exc:
            raise PermissionDenied(_(exc.message)) from exc
        except InvalidInput as exc:
            add_service_errors(form, exc)
        else:
            token = shown_once.hold(request, "password", {"membership": membership.pk, "password": password})
            return redirect("portal:staff_password", pk=membership.pk, token=token)
    status = 400 if form.errors else 200
    return render(request, "portal/users/form.html", {"form": form}, status=status)


@login_required
def staff_detail(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    same_kind = StaffMembership.PROVIDER_ROLES if membership.is_provider_role else StaffMembership.MERCHANT_ROLES
    roles = [role for role in users.grantable_roles(request.user) if role in same_kind]
    context = {
        "staff": membership,
        "role_form": StaffRoleForm(initial={"role": membership.role}, roles=roles),
        "two_factor_on": two_factor.has_device(membership.user),
        "two_factor_required": two_factor.required(membership.user),
        "manageable": membership.user_id != request.user.pk
        and membership.role in users.grantable_roles(request.user)
        and (request.user.is_superuser or not membership.user.is_superuser),
    }
    return render(request, "portal/users/detail.html", context)


@login_required
@require_POST
def staff_role(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    role = request.POST.get("role", "")
    try:
        users.staff_update_role(actor=request.user, membership=membership, role=role)
    except (Forbidden, InvalidInput, InvalidState) as exc:
        _service_error(request, exc)
    else:
        messages.success(request, _("The role was changed."))
    return redirect("portal:staff_detail", pk=pk)


@login_required
def staff_disable(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Disable %(username)s") % {"username": membership.user.get_username()},
            message=_("The user is signed out at once and cannot sign in until enabled again."),
            button=_("Disable"),
            cancel_url=reverse("portal:staff_detail", args=[pk]),
        )
    try:
        users.staff_set_active(actor=request.user, membership=membership, active=False)
    except (Forbidden, InvalidState) as exc:
        _service_error(request, exc)
    else:
        messages.success(request, _("The user was disabled."))
    return redirect("portal:staff_detail", pk=pk)


@login_required
@require_POST
def staff_enable(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    try:
        users.staff_set_active(actor=request.user, membership=membership, active=True)
    except Forbidden as exc:
        _service_error(request, exc)
    else:
        messages.success(request, _("The user was enabled."))
    return redirect("portal:staff_detail", pk=pk)


@login_required
def staff_reset_password(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Reset the password of %(username)s") % {"username": membership.user.get_username()},
            message=_(
                "The current password stops working at once and the user is signed out. You get a one-time "
                "password to pass on; the user must choose a new one at the next sign-in."
            ),
            button=_("Reset password"),
            cancel_url=reverse("portal:staff_detail", args=[pk]),
        )
    try:
        password = users.staff_reset_password(actor=request.user, membership=membership)
    except Forbidden as exc:
        _service_error(request, exc)
        return redirect("portal:staff_detail", pk=pk)
    token = shown_once.hold(request, "password", {"membership": membership.pk, "password": password, "reset": True})
    return redirect("portal:staff_password", pk=pk, token=token)


@login_required
def staff_reset_two_factor(request: HttpRequest, pk: int) -> HttpResponse:
    membership = _staff(request, pk)
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Reset two-factor sign-in of %(username)s") % {"username": membership.user.get_username()},
            message=_(
                "Their authenticator and recovery codes stop working at once. If their role requires two-factor "
                "sign-in, they must set it up again at the next sign-in. Do this only once you are sure who asks."
            ),
            button=_("Reset two-factor sign-in"),
            cancel_url=reverse("portal:staff_detail", args=[pk]),
        )
    try:
        users.staff_reset_two_factor(actor=request.user, membership=membership)
    except Forbidden as exc:
        _service_error(request, exc)
    else:
        messages.success(request, _("Two-factor sign-in was reset."))
    return redirect("portal:staff_detail", pk=pk)


@login_required
def staff_password(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """The only response that ever carries a generated password; never cached. Shown once."""
    membership = _staff(request, pk)
    held = shown_once.take(request, "password", token)
    password = held["password"] if held and held["membership"] == membership.pk else None
    context = {"staff": membership, "password": password, "reset": bool(held and held.get("reset"))}
    return shown_once.no_store(render(request, "portal/users/password.html", context))


# --- one's own second factor ---------------------------------------------------------------------------------------


@never_cache
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    user = request.user
    if user.is_verified() or not two_factor.has_device(user):
        return redirect(safe_next(request))
    form = TwoFactorVerifyForm(request.POST or None, user=user, request=request)
    if request.method == "POST" and form.is_valid():
        two_factor.mark_verified(request, form.device)
        return redirect(safe_next(request))
    return render(request, "portal/two_factor/verify.html", {"form": form, "next": safe_next(request)})


@never_cache
@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrolment (a QR code and the secret as text, confirmed with a code), or, once enrolled, its settings."""
    user = request.user
    required = two_factor.required(user)
    if two_factor.has_device(user):
        context = {"required": required, "codes_left": two_factor.recovery_codes_left(user)}
        return render(request, "portal/two_factor/manage.html", context)
    device = two_factor.pending_authenticator(user)
    form = TwoFactorEnrolForm(request.POST or None, device=device)
    if request.method == "POST" and form.is_valid():
        codes = two_factor.confirm_authenticator(request, device)
        token = shown_once.hold(request, "recovery_codes", {"codes": codes, "next": safe_next(request)})
        return redirect("portal:two_factor_codes", token=token)
    context = {
        "form": form,
        "required": required,
        "qr_svg": two_factor.qr_svg(two_factor.provisioning_uri(device)),
        "secret": two_factor.secret_text(device),
        "next": safe_next(request),
    }
    return shown_once.no_store(render(request, "portal/two_factor/setup.html", context))


@login_required
@require_POST
def two_factor_new_codes(request: HttpRequest) -> HttpResponse:
    if not two_factor.has_device(request.user):
        return redirect("portal:two_factor_setup")
    codes = two_factor.regenerate_recovery_codes(request.user)
    token = shown_once.hold(request, "recovery_codes", {"codes": codes, "next": reverse("portal:two_factor_setup")})
    return redirect("portal:two_factor_codes", token=token)


@login_required
def two_factor_codes(request: HttpRequest, token: str) -> HttpResponse:
    """The only response that ever carries recovery codes; never cached. Shown once."""
    held = shown_once.take(request, "recovery_codes", token)
    context = {"codes": held["codes"] if held else None, "next": held["next"] if held else reverse("portal:home")}
    return shown_once.no_store(render(request, "portal/two_factor/recovery_codes.html", context))


@login_required
def two_factor_turn_off(request: HttpRequest) -> HttpResponse:
    if not _confirmed(request):
        return _confirm_page(
            request,
            title=_("Turn off two-factor sign-in"),
            message=_("You will sign in with your password only. Your authenticator and recovery codes stop working."),
            button=_("Turn off"),
            cancel_url=reverse("portal:two_factor_setup"),
        )
    try:
        two_factor.turn_off(request.user)
    except InvalidState as exc:
        _service_error(request, exc)
    else:
        messages.success(request, _("Two-factor sign-in is off."))
    return redirect("portal:two_factor_setup")
