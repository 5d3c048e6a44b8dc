"""Two-factor sign-in: an authenticator app's codes (TOTP) and one-time recovery codes, on django-otp's devices.

Who must have it: everyone whose role can move money or settle it (`Action.REFUND`, `Action.RESOLVE`: provider
admins and reviewers, merchant admins), platform superusers and anyone else who may use Django admin. Others may turn
it on. A session is verified once a code was accepted in it (django-otp's OTPMiddleware: `request.user.is_verified()`),
and `SignInStepsMiddleware` lets a signed-in user reach nothing else until the steps they owe are done:

1. a second factor, when the user has one (checked before anything else, so a one-time password alone changes
   nothing);
2. a new password, when an admin created the account or reset its password (`StaffMembership.must_change_password`);
3. enrolment, when the role requires a second factor and the user has none.

Recovery codes are stored as salted SHA-256 digests (django-otp's static tokens), each usable once.
"""

from __future__ import annotations

import hashlib
import secrets
from base64 import b32encode
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import urlencode as query_string
from django.utils.translation import gettext_noop
from django_otp import login as otp_login
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal.api_errors import DEPENDENCY_ERRORS, DependencyOutageMiddleware, error_body
from portal.errors import InvalidState
from portal.permissions import ROLE_ACTIONS, Action
from portal.selectors import membership_of
from portal.users import audit_account

ISSUER = "Face-pay console"  # the account's label in the authenticator app
RECOVERY_CODE_COUNT = 10
RECOVERY_CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols (no l, o, 0, 1): 5 bits each
RECOVERY_CODE_LENGTH = 12
TWO_FACTOR_ACTIONS = frozenset({Action.REFUND, Action.RESOLVE})

VERIFY, PASSWORD, ENROL = "verify", "password", "enrol"
STEP_VIEWS = {VERIFY: "portal:two_factor_verify", PASSWORD: "portal:password_change", ENROL: "portal:two_factor_setup"}


# --- policy --------------------------------------------------------------------------------------------------------


def required(user: AbstractBaseUser) -> bool:
    """Whether the user must sign in with a second factor."""
    if user.is_superuser or user.is_staff:
        return True
    membership = membership_of(user)
    return membership is not None and bool(ROLE_ACTIONS[membership.role] & TWO_FACTOR_ACTIONS)


def has_device(user: AbstractBaseUser) -> bool:
    """Whether the user has enrolled an authenticator (recovery codes come with it)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_step(user) -> str | None:
    """The sign-in step the user owes before anything else (VERIFY, PASSWORD, ENROL), or None."""
    if not user.is_authenticated:
        return None
    verified = user.is_verified()
    enrolled = verified or has_device(user)
    if enrolled and not verified:
        return VERIFY
    membership = membership_of(user)
    if membership is not None and membership.must_change_password:
        return PASSWORD
    if not enrolled and required(user):
        return ENROL
    return None


# --- enrolment -----------------------------------------------------------------------------------------------------


def pending_authenticator(user: AbstractBaseUser) -> TOTPDevice:
    """The authenticator being enrolled: one unconfirmed device per user, kept until confirmed, so reloading the
    enrolment page shows the same secret."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)


def provisioning_uri(device: TOTPDevice) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    label = quote(f"{ISSUER}:{device.user.get_username()}")
    params = {"secret": secret, "issuer": ISSUER, "algorithm": "SHA1", "digits": device.digits, "period": device.step}
    return f"otpauth://totp/{label}?{urlencode(params, quote_via=quote)}"


def secret_text(device: TOTPDevice) -> str:
    """The secret for typing into an app by hand: base32 in groups of four."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[index : index + 4] for index in range(0, len(secret), 4))


def qr_svg(data: str) -> str:
    """A QR code as inline SVG markup, drawn here (nothing is sent to another service)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=20)
    return image.to_string(encoding="unicode")


@transaction.atomic
def confirm_authenticator(request: HttpRequest, device: TOTPDevice) -> list[str]:
    """The code matched: the authenticator is enrolled, the session verified by it, and the user gets fresh recovery
    codes (returned once)."""
    TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = new_recovery_codes(device.user)
    mark_verified(request, device)
    audit_account(actor=device.user, action="staff.two_factor_enrolled", user=device.user)
    return codes


def _digest(user: AbstractBaseUser, code: str) -> str:
    """What is stored of a recovery code: a salted SHA-256, as long as a static token may be (16 hex digits, 64 bits,
    more than a code holds)."""
    normal = "".join(code.lower().split()).replace("-", "")
    return hashlib.sha256(f"portal.recovery-code:{user.pk}:{normal}".encode()).hexdigest()[:16]


def new_recovery_codes(user: AbstractBaseUser) -> list[str]:
    """Ten new recovery codes (shown once; the old ones stop working), as xxxx-xxxx-xxxx."""
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name="recovery codes", confirmed=True)
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_CODE_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append("-".join(raw[index : index + 4] for index in range(0, RECOVERY_CODE_LENGTH, 4)))
    device.token_set.bulk_create([device.token_set.model(device=device, token=_digest(user, code)) for code in codes])
    return codes


@transaction.atomic
def regenerate_recovery_codes(user: AbstractBaseUser) -> list[str]:
    codes = new_recovery_codes(user)
    audit_account(actor=user, action="staff.recovery_codes_regenerated", user=user)
    return codes


def recovery_codes_left(user: AbstractBaseUser) -> int:
    return sum(device.token_set.count() for device in StaticDevice.objects.filter(user=user))


@transaction.atomic
def turn_off(user: AbstractBaseUser) -> None:
    """Remove the user's second factor, for those who may sign in without one."""
    if required(user):
        raise InvalidState(gettext_noop("Your role requires two-factor sign-in."))
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit_account(actor=user, action="staff.two_factor_disabled", user=user)


# --- the second step of signing in -----------------------------------------------------------------------------------


def verify(user: AbstractBaseUser, code: str) -> tuple[Device | None, bool]:
    """(the device that accepted `code`, or None; whether a device refused to check it because of earlier wrong
    codes). Six digits are an authenticator code, anything else a recovery code; each is accepted once (an
    authenticator code not again, nor any older one). Each device slows guessing down on its own (django-otp's
    throttling: a wait that doubles with every wrong code)."""
    code = "".join(code.split())
    with transaction.atomic():
        if code.isdigit() and len(code) == 6:
            devices = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True)
            token = code
        else:
            devices = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True)
            token = _digest(user, code)
        throttled = False
        for device in devices:
            if not device.verify_is_allowed()[0]:
                throttled = True
            elif device.verify_token(token):
                return device, False
    return None, throttled


def mark_verified(request: HttpRequest, device: Device) -> None:
    """This session passed the second factor (a new session key: a session id seen before it verifies nothing)."""
    request.session.cycle_key()
    otp_login(request, device)


# --- the middleware ------------------------------------------------------------------------------------------------


class SignInStepsMiddleware(MiddlewareMixin):
    """Sends a signed-in user who owes a sign-in step (`pending_step`) to that step's page and lets nothing else
    through, except signing out and what is not the console: static files, the language switch, the machine APIs
    (terminal, merchant, notifications), /healthz and the sandbox. Django admin is held to it for its staff users
    (others get admin's own refusal). The staff API, signed in with the console's session, answers 403 in the API's
    shape instead of redirecting."""

    OPEN_VIEWS = frozenset({"portal:login", "portal:logout", "admin:login", "admin:logout", "set_language"})
    OPEN_PREFIXES = ("/api/", "/notify/", "/healthz", "/sandbox/")
    SESSION_API_PREFIX = "/api/staff/"

    def __init__(self, get_response):
        super().__init__(get_response)
        self.outage = DependencyOutageMiddleware(get_response)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        path = request.path_info
        view_name = request.resolver_match.view_name if request.resolver_match else ""
        static = "/" + settings.STATIC_URL.lstrip("/")
        if view_name in self.OPEN_VIEWS or path.startswith(static):
            return None
        if path.startswith(self.OPEN_PREFIXES) and not path.startswith(self.SESSION_API_PREFIX):
            return None
        try:
            if view_name.startswith("admin:") and not request.user.is_staff:
                return None
            step = pending_step(request.user)
        except DEPENDENCY_ERRORS as exc:
            return self.outage.process_exception(request, exc)
        if step is None or view_name == STEP_VIEWS[step]:
            return None
        if path.startswith(self.SESSION_API_PREFIX):
            code, message = {
                VERIFY: ("TWO_FACTOR_REQUIRED", "Enter your second-factor code in the console first."),
                ENROL: ("TWO_FACTOR_REQUIRED", "Set up two-factor sign-in in the console first."),
                PASSWORD: ("PASSWORD_CHANGE_REQUIRED", "Choose a new password in the console first."),
            }[step]
            return JsonResponse(error_body(code, message), status=403)
        target = reverse(STEP_VIEWS[step])
        if request.method in ("GET", "HEAD") and not request.headers.get("HX-Request"):
            target += "?" + query_string({"next": request.get_full_path()})
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = target  # a polled fragment: htmx loads the whole page instead
            return response
        return redirect(target)
