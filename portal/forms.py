"""Console forms for onboarding (merchants, credentials, stores, devices).

Forms only shape and label the input; the rules live in `portal.services` (which raise InvalidInput naming each bad
field) and views copy those errors onto the fields with `add_service_errors`.
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
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal.client_address import client_address
from portal.errors import InvalidInput
from portal.models import Merchant

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

    def _counters(self) -> list[tuple[str, int, int]]:
        """(cache key, limit, lockout seconds) of each counter this attempt is under."""
        username = (self.data.get("username") or "").strip().lower()[:150]
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
        names = ("name", "appid", "mch_id", "sub_appid", "sub_mch_id", "umpay_acq_mer_id", "payscore_service_id")
        return {name: self.cleaned_data.get(name, "") for name in names}


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
