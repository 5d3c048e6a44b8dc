"""Console forms: signing in (password, then a second factor), onboarding (merchants, credentials, stores, devices)
and staff accounts.

Forms only shape and label the input; the rules live in the services (`portal.services`, `portal.users`: they raise
InvalidInput naming each bad field) and views copy those errors onto the fields with `add_service_errors`.
"""

from __future__ import annotations

import hashlib
import logging

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import two_factor
from portal.client_address import client_address
from portal.errors import InvalidInput
from portal.models import Merchant, ServiceProvider, StaffMembership
from portal.services import MERCHANT_FIELDS

logger = logging.getLogger(__name__)


class SignInLimit:
    """Mixin for sign-in forms: failed sign-ins are counted three ways, and an attempt any of them refuses is answered
    without the password being checked (docs/operations.md, "Sign-in limit"):

    - one username from one client address: LOGIN_MAX_FAILURES, then that pair waits LOGIN_LOCKOUT_SECONDS;
    - one client address, whatever the usernames: LOGIN_IP_MAX_FAILURES, then that address waits LOGIN_LOCKOUT_SECONDS;
    - one username from every address together: LOGIN_USERNAME_MAX_FAILURES, then that username waits the shorter
      LOGIN_USERNAME_LOCKOUT_SECONDS (guessing spread over many addresses).

    Each wait runs from the last failure. One address can thus lock itself out, and a username from itself, but not
    another address's sign-in: it reaches its own limits long before the username's shared one. The client address
    is the one behind the trusted proxies (portal.client_address), not the proxy's own. Console and admin share it:
    their users move money and credentials. Counted in the shared cache (Redis in production)."""

    def _limited_username(self) -> str:
        """The username this attempt counts against: the one typed in (the second step: the one signing in)."""
        return self.data.get("username") or ""

    def _counters(self) -> list[tuple[str, int, int]]:
        """(cache key, limit, lockout seconds) of each counter this attempt is under."""
        username = self._limited_username().strip().lower()[:150]
        # Hashed: a username may hold characters a cache key should not, and the cache need not hold names.
        user = hashlib.sha256(username.encode()).hexdigest()[:32]
        address = client_address(self.request) if self.request is not None else ""
        lockout = settings.LOGIN_LOCKOUT_SECONDS
        return [
            (f"signin-fail:user-ip:{user}:{address}", settings.LOGIN_MAX_FAILURES, lockout),
            (f"signin-fail:ip:{address}", settings.LOGIN_IP_MAX_FAILURES, lockout),
            (f"signin-fail:user:{user}", settings.LOGIN_USERNAME_MAX_FAILURES, settings.LOGIN_USERNAME_LOCKOUT_SECONDS),
        ]

    def clean(self):
        counters = self._counters()
        locked = [(key, timeout) for key, limit, timeout in counters if (cache.get(key) or 0) >= limit]
        if locked:
            which = ", ".join(key.split(":")[1] for key, _timeout in locked)
            logger.warning("Sign-in refused: too many failures (%s limit)", which)
            raise ValidationError(
                gettext("Too many failed sign-ins. Try again in %(minutes)s minutes.")
                % {"minutes": max(1, round(max(timeout for _key, timeout in locked) / 60))},
                code="locked",
            )
        try:
            return super().clean()
        except ValidationError:
            for key, _limit, timeout in counters:
                if not cache.add(key, 1, timeout=timeout):
                    cache.incr(key)
                    cache.touch(key, timeout)
            raise


class SignInForm(SignInLimit, AuthenticationForm):
    pass


class AdminSignInForm(SignInLimit, AdminAuthenticationForm):
    pass


class TwoFactorCodeForm(forms.Form):
    """A code from the user's authenticator app, or one of their recovery codes."""

    code = forms.CharField(
        label=_("Code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )

    def __init__(self, *args, user, request: HttpRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.request, self.device = user, request, None

    def clean(self):
        cleaned = super().clean()
        if "code" in cleaned:
            self.device, throttled = two_factor.verify(self.user, cleaned["code"])
            if self.device is None:
                if throttled:
                    raise ValidationError(gettext("Too many wrong codes. Wait a moment, then enter the newest code."))
                raise ValidationError(
                    gettext("This code is not valid. Enter the current code from your app or an unused recovery code.")
                )
        return cleaned


class TwoFactorVerifyForm(SignInLimit, TwoFactorCodeForm):
    """The second step of signing in. A wrong code counts against the same sign-in limit as a wrong password, so
    codes cannot be guessed faster than passwords."""

    def _limited_username(self) -> str:
        return self.user.get_username()


class TwoFactorEnrolForm(forms.Form):
    """Enrolment: the first code the new authenticator shows proves it holds the secret."""

    code = forms.CharField(
        label=_("Code from the app"),
        max_length=6,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, device, **kwargs):
        super().__init__(*args, **kwargs)
        self.device = device

    def clean_code(self) -> str:
        code = "".join(self.cleaned_data["code"].split())
        if not self.device.verify_token(code):
            raise ValidationError(gettext("This code does not match. Check the time on your phone and try again."))
        return code


def owner_key(owner: ServiceProvider | Merchant) -> str:
    return f"{'provider' if isinstance(owner, ServiceProvider) else 'merchant'}:{owner.pk}"


class StaffCreateForm(forms.Form):
    username = forms.CharField(
        label=_("Username"), max_length=150, help_text=_("For signing in: letters, digits and @ . + - _ only.")
    )
    name = forms.CharField(label=_("Full name"), max_length=150)
    owner = forms.ChoiceField(label=_("Works for"))
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, roles: list[str], owners: list[ServiceProvider | Merchant], **kwargs):
        super().__init__(*args, **kwargs)
        self.owners = {owner_key(owner): owner for owner in owners}
        providers = [(key, owner.name) for key, owner in self.owners.items() if isinstance(owner, ServiceProvider)]
        merchants = [(key, owner.name) for key, owner in self.owners.items() if isinstance(owner, Merchant)]
        self.fields["owner"].choices = [
            (group, choices)
            for group, choices in ((_("Service provider"), providers), (_("Merchants"), merchants))
            if choices
        ]
        self.fields["role"].choices = [(role, StaffMembership.Role(role).label) for role in roles]

    def owner_values(self) -> dict[str, ServiceProvider | Merchant | None]:
        """{"provider": …, "merchant": …} of the chosen owner (one of them None)."""
        owner = self.owners[self.cleaned_data["owner"]]
        provider = owner if isinstance(owner, ServiceProvider) else None
        return {"provider": provider, "merchant": None if provider else owner}


class StaffRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, roles: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(role, StaffMembership.Role(role).label) for role in roles]


CHANNEL_CHOICES = [
    (Merchant.Channel.WECHAT_DIRECT, _("WeChat Pay (direct merchant)")),
    (Merchant.Channel.WECHAT_PROVIDER, _("WeChat Pay (service provider, sub_mch_id)")),
    (Merchant.Channel.UMPAY, _("UMF 联动优势 (acquirer)")),
]


def add_service_errors(form: forms.Form, exc: InvalidInput) -> None:
    """Show each service error next to its field (translated when the catalogue knows the message)."""
    if not exc.details:
        form.add_error(None, gettext(exc.message))
    for field, message in exc.details.items():
        form.add_error(field if field in form.fields else None, gettext(message))


class MerchantForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=128)
    channel = forms.ChoiceField(label=_("Channel"), choices=CHANNEL_CHOICES)
    appid = forms.CharField(label=_("WeChat appid"), max_length=32, required=False, help_text=_("Direct mode."))
    mch_id = forms.CharField(label=_("WeChat mch_id"), max_length=32, required=False, help_text=_("Direct mode."))
    sub_appid = forms.CharField(
        label=_("WeChat sub_appid"), max_length=32, required=False, help_text=_("Service-provider mode, optional.")
    )
    sub_mch_id = forms.CharField(
        label=_("WeChat sub_mch_id"), max_length=32, required=False, help_text=_("Service-provider mode.")
    )
    umpay_acq_mer_id = forms.CharField(
        label=_("UMF acqMerId"), max_length=8, required=False, help_text=_("UMF merchant number, 8 characters.")
    )
    payscore_service_id = forms.CharField(
        label=_("PayScore service_id"),
        max_length=32,
        required=False,
        help_text=_("Only if the merchant uses PayScore (direct WeChat Pay merchants only)."),
    )
    wechat_api = forms.ChoiceField(
        label=_("WeChat Pay API version"),
        choices=Merchant.WechatApi.choices,
        initial=Merchant.WechatApi.V2,
        required=False,
        help_text=_(
            "Payments, queries, reversals and refunds of a WeChat merchant go over this API. v3 needs the APIv3 key, "
            "the merchant API certificate and WeChat Pay platform keys."
        ),
    )

    def __init__(self, *args, providers=None, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # The channel decides whose credentials sign the merchant's calls; it is fixed once onboarded.
            del self.fields["channel"]
        elif providers is not None:
            # Platform superusers belong to no provider: they pick one (or none, for a direct merchant).
            self.fields["provider"] = forms.ModelChoiceField(
                label=_("Service provider"), queryset=providers, required=False, empty_label="—"
            )
            self.order_fields(["provider", "name", "channel"])

    def service_values(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name, "") for name in MERCHANT_FIELDS}


class CredentialsForm(forms.Form):
    """Write-only: inputs never render a stored value, and a blank input keeps what is stored."""

    wechat_api_v2_key = forms.CharField(
        label=_("WeChat API v2 key"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("32 letters or digits."),
    )
    wechat_api_v3_key = forms.CharField(
        label=_("WeChat APIv3 key"),
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("32 bytes."),
    )
    wechat_private_key = forms.FileField(
        label=_("Merchant API private key"), required=False, help_text="apiclient_key.pem"
    )
    wechat_certificate = forms.FileField(
        label=_("Merchant API certificate"), required=False, help_text="apiclient_cert.pem"
    )
    wechat_platform_certificates = forms.FileField(
        label=_("WeChat Pay platform certificates"), required=False, help_text=_("PEM, one or more.")
    )
    wechat_platform_public_key = forms.FileField(
        label=_("WeChat Pay platform public key"), required=False, help_text="pub_key.pem"
    )
    wechat_platform_public_key_id = forms.CharField(
        label=_("Platform public key ID"), required=False, max_length=64, help_text="PUB_KEY_ID_…"
    )
    umpay_private_key = forms.FileField(label=_("UMF private key"), required=False, help_text="*.key.p8")
    umpay_certificate = forms.FileField(label=_("UMF certificate"), required=False, help_text="*.cert.crt")

    WECHAT_FIELDS = (
        "wechat_api_v2_key",
        "wechat_api_v3_key",
        "wechat_private_key",
        "wechat_certificate",
        "wechat_platform_certificates",
        "wechat_platform_public_key",
        "wechat_platform_public_key_id",
    )
    UMPAY_FIELDS = ("umpay_private_key", "umpay_certificate")

    def __init__(self, *args, include_umpay: bool = True, include_wechat: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not include_umpay:
            for name in self.UMPAY_FIELDS:
                del self.fields[name]
        if not include_wechat:
            for name in self.WECHAT_FIELDS:
                del self.fields[name]

    def credential_values(self) -> dict[str, str | bytes]:
        """What was entered, files read as bytes; blank inputs left out (they keep the stored value)."""
        values: dict[str, str | bytes] = {}
        for name in self.fields:
            value = self.cleaned_data.get(name)
            if hasattr(value, "read"):
                value = value.read()
            if value:
                values[name] = value
        return values


class MerchantChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Merchant) -> str:
        return obj.name


class StoreForm(forms.Form):
    merchant = MerchantChoiceField(label=_("Merchant"), queryset=Merchant.objects.none())
    store_id = forms.CharField(
        label=_("Store ID"), max_length=32, help_text=_("Sent to WeChat as store_id; at most 32 characters.")
    )
    name = forms.CharField(label=_("Name"), max_length=128)
    address = forms.CharField(label=_("Address"), max_length=255, required=False)
    area_code = forms.CharField(
        label=_("Area code"), max_length=12, required=False, help_text=_("Administrative area code, e.g. 440305.")
    )
    opens_at = forms.TimeField(
        label=_("Opens at"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("China time. A terminal offline while the store is open is an alert; without hours, none is."),
    )
    closes_at = forms.TimeField(
        label=_("Closes at"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text=_("The opening time again: open all day. Earlier than it: open past midnight."),
    )
    payscore_materiel_url = forms.URLField(
        label=_("PayScore materiel URL"),
        max_length=255,
        required=False,
        assume_scheme="https",
        help_text=_(
            "Sent to WeChat with PayScore orders as the materiel URL: the URL WeChat Pay gave you for a policy you "
            "take part in, otherwise your own. Leave blank to send none."
        ),
    )

    def __init__(self, *args, merchants=None, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            # store_id is what payments and terminals refer to upstream; it does not change once created.
            del self.fields["merchant"]
            del self.fields["store_id"]
        else:
            self.fields["merchant"].queryset = merchants if merchants is not None else Merchant.objects.none()


class DeviceRegisterForm(forms.Form):
    device_id = forms.CharField(
        label=_("Device ID"), max_length=32, required=False, help_text=_("Leave blank to generate one.")
    )
    name = forms.CharField(label=_("Device name"), max_length=64, required=False)
