"""The merchant domain: service providers, merchants and their channel credentials, stores, devices, staff roles,
and the audit log of staff actions."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.fields import EncryptedTextField


class ServiceProvider(models.Model):
    """A service provider (服务商) that onboards merchants: a WeChat Pay service provider, a UMF agent, or both."""

    name = models.CharField(_("name"), max_length=128)
    code = models.SlugField(
        _("code"), max_length=32, unique=True, help_text="Short identifier used in URLs and exports."
    )
    umpay_acq_sp_id = models.CharField(
        _("UMF acqSpId"), max_length=10, blank=True, help_text="UMF agent number (acqSpId), assigned by UMF."
    )
    wechat_appid = models.CharField(
        _("WeChat appid"), max_length=32, blank=True, help_text="Service provider's appid (appid in 服务商 mode)."
    )
    wechat_mch_id = models.CharField(
        _("WeChat mch_id"), max_length=32, blank=True, help_text="Service provider's merchant number (mch_id)."
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("service provider")
        verbose_name_plural = _("service providers")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Merchant(models.Model):
    class Channel(models.TextChoices):
        WECHAT_DIRECT = "WECHAT_DIRECT", _("WeChat Pay (direct merchant)")
        WECHAT_PROVIDER = "WECHAT_PROVIDER", _("WeChat Pay (service provider, sub_mch_id)")
        UMPAY = "UMPAY", _("UMF 联动优势 (acquirer)")

    class Status(models.TextChoices):
        ACTIVE = "ACTIVE", _("Active")
        SUSPENDED = "SUSPENDED", _("Suspended")

    class WechatApi(models.TextChoices):
        V2 = "V2", _("API v2 (XML)")
        V3 = "V3", _("API v3 (JSON)")

    provider = models.ForeignKey(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="merchants",
        help_text="Empty for a direct merchant that no provider manages.",
    )
    name = models.CharField(_("name"), max_length=128)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE)
    appid = models.CharField(_("WeChat appid"), max_length=32, blank=True, help_text="WeChat appid (direct mode).")
    mch_id = models.CharField(_("WeChat mch_id"), max_length=32, blank=True, help_text="WeChat mch_id (direct mode).")
    sub_appid = models.CharField(
        _("WeChat sub_appid"), max_length=32, blank=True, help_text="WeChat sub_appid (service-provider mode)."
    )
    sub_mch_id = models.CharField(
        _("WeChat sub_mch_id"), max_length=32, blank=True, help_text="WeChat sub_mch_id (service-provider mode)."
    )
    umpay_acq_mer_id = models.CharField(
        _("UMF acqMerId"), max_length=8, blank=True, help_text="UMF merchant number (acqMerId)."
    )
    payscore_service_id = models.CharField(
        _("PayScore service_id"), max_length=32, blank=True, help_text="WeChat PayScore service_id (支付分服务ID)."
    )
    wechat_api = models.CharField(
        _("WeChat Pay API version"),
        max_length=2,
        choices=WechatApi.choices,
        default=WechatApi.V2,
        help_text="Which WeChat Pay API the payments and refunds of a WeChat merchant go over (authinfo stays v2).",
    )
    webhook_event_types = models.JSONField(
        _("webhook event types"),
        default=list,
        blank=True,
        editable=False,
        help_text="The event types some active webhook endpoint of this merchant subscribes to (kept by the webhooks "
        "app), so a payment of a merchant without webhooks costs no lookup.",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="merchant_channel_valid",
                condition=Q(channel__in=["WECHAT_DIRECT", "WECHAT_PROVIDER", "UMPAY"]),
            ),
            models.CheckConstraint(name="merchant_status_valid", condition=Q(status__in=["ACTIVE", "SUSPENDED"])),
            models.CheckConstraint(name="merchant_wechat_api_valid", condition=Q(wechat_api__in=["V2", "V3"])),
            # Service-provider channels are signed with the provider's credentials, so they need a provider.
            models.CheckConstraint(
                name="merchant_provider_channel_has_provider",
                condition=Q(channel="WECHAT_DIRECT") | Q(provider__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["provider", "sub_mch_id"],
                condition=~Q(sub_mch_id=""),
                name="merchant_unique_sub_mch_id_per_provider",
            ),
            models.UniqueConstraint(
                fields=["provider", "umpay_acq_mer_id"],
                condition=~Q(umpay_acq_mer_id=""),
                name="merchant_unique_acq_mer_id_per_provider",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class ChannelCredentials(models.Model):
    """Upstream secrets of a provider or a direct merchant, encrypted at rest and never shown after entry.

    Which owner's credentials sign a call: WeChat direct → the merchant's; WeChat service-provider and UMF → the
    provider's (see `portal.selectors.signing_credentials_for`).
    """

    provider = models.OneToOneField(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="credentials",
    )
    merchant = models.OneToOneField(
        Merchant,
        verbose_name=_("merchant"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="credentials",
    )
    wechat_api_v2_key = EncryptedTextField(
        _("WeChat API v2 key"), blank=True, help_text="API v2 key (32 chars), signs v2 XML calls."
    )
    wechat_api_v3_key = EncryptedTextField(
        _("WeChat APIv3 key"), blank=True, help_text="APIv3 key (32 bytes), decrypts v3 notifications."
    )
    wechat_private_key = EncryptedTextField(
        _("merchant API private key"),
        blank=True,
        help_text="Merchant API private key (apiclient_key.pem): v3 signatures and secapi mutual TLS.",
    )
    wechat_certificate = EncryptedTextField(
        _("merchant API certificate"),
        blank=True,
        help_text="Merchant API certificate (apiclient_cert.pem), the client certificate for secapi.",
    )
    wechat_cert_serial = models.CharField(
        _("merchant API certificate serial"),
        max_length=64,
        blank=True,
        help_text="Serial of the merchant API certificate (serial_no), upper hex.",
    )
    wechat_platform_certificates = models.TextField(
        _("WeChat Pay platform certificates"),
        blank=True,
        help_text="WeChat Pay platform certificates (PEM, one or more); public.",
    )
    wechat_platform_public_key = models.TextField(
        _("WeChat Pay platform public key"), blank=True, help_text="WeChat Pay platform public key (PEM)."
    )
    wechat_platform_public_key_id = models.CharField(
        _("WeChat Pay platform public key id"),
        max_length=64,
        blank=True,
        help_text="Platform public key id (PUB_KEY_ID_…), sent as Wechatpay-Serial.",
    )
    # Kept by payments.platform_certificates, which downloads the platform certificates on a schedule.
    wechat_platform_keys_refreshed_at = models.DateTimeField(
        _("platform keys refreshed at"),
        null=True,
        blank=True,
        editable=False,
        help_text="When the platform certificates were last downloaded and verified.",
    )
    wechat_platform_keys_error = models.CharField(
        _("platform keys refresh error"),
        max_length=200,
        blank=True,
        editable=False,
        help_text="Why the last download of the platform certificates failed: a code and a short reason, never a "
        "secret. Empty after a success.",
    )
    wechat_platform_keys_failing_since = models.DateTimeField(
        _("platform keys failing since"),
        null=True,
        blank=True,
        editable=False,
        help_text="The first of the downloads that failed since the last success. Empty after a success.",
    )
    umpay_private_key = EncryptedTextField(
        _("UMF private key"), blank=True, help_text="UMF private key (*.key.p8), signs requests."
    )
    umpay_certificate = models.TextField(
        _("UMF certificate"), blank=True, help_text="UMF certificate (*.cert.crt) as PEM; public."
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("channel credentials")
        verbose_name_plural = _("channel credentials")
        constraints = [
            models.CheckConstraint(
                name="credentials_exactly_one_owner",
                condition=(Q(provider__isnull=False) & Q(merchant__isnull=True))
                | (Q(provider__isnull=True) & Q(merchant__isnull=False)),
            )
        ]

    def __str__(self) -> str:
        owner = self.provider or self.merchant
        return f"Credentials of {owner}"

    SECRET_FIELDS = (
        "wechat_api_v2_key",
        "wechat_api_v3_key",
        "wechat_private_key",
        "wechat_certificate",
        "umpay_private_key",
    )

    def configured(self) -> dict[str, bool]:
        """Which credentials are present — the only thing the console ever shows about them."""
        names = (
            *self.SECRET_FIELDS,
            "wechat_platform_certificates",
            "wechat_platform_public_key",
            "umpay_certificate",
        )
        return {name: bool(getattr(self, name)) for name in names}


class Store(models.Model):
    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="stores")
    store_id = models.CharField(
        _("store number"), max_length=32, help_text="Store number sent to WeChat as store_id (≤32)."
    )
    name = models.CharField(_("name"), max_length=128, help_text="Sent to WeChat as store_name (≤128).")
    address = models.CharField(_("address"), max_length=255, blank=True)
    area_code = models.CharField(
        _("area code"), max_length=12, blank=True, help_text="Administrative area code, e.g. 440305."
    )
    # Opening hours, China time: a terminal offline while the store is open is an alert (alerts app). Both empty: no
    # hours known, no such alert; equal: open all day; closing before opening: open past midnight.
    opens_at = models.TimeField(_("opens at"), null=True, blank=True)
    closes_at = models.TimeField(_("closes at"), null=True, blank=True)
    payscore_materiel_url = models.URLField(
        _("PayScore materiel URL"),
        max_length=255,
        blank=True,
        help_text="Sent to WeChat as PayScore device.materiel_no (物料URL) when set.",
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("store")
        verbose_name_plural = _("stores")
        ordering = ["merchant_id", "store_id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "store_id"], name="store_unique_store_id_per_merchant"),
            models.CheckConstraint(name="store_store_id_not_empty", condition=~Q(store_id="")),
            models.CheckConstraint(
                name="store_hours_both_or_neither",
                condition=Q(opens_at__isnull=True, closes_at__isnull=True)
                | Q(opens_at__isnull=False, closes_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.store_id})"


class Presence(models.TextChoices):
    """A device's presence, derived from `Device.last_seen_at` (never stored): online when it was seen within
    DEVICE_OFFLINE_AFTER_SECONDS, offline when seen before that, never seen when no authenticated request arrived."""

    ONLINE = "online", _("Online")
    OFFLINE = "offline", _("Offline")
    NEVER = "never", _("Never seen")


def online_since(now: datetime | None = None) -> datetime:
    """The earliest last_seen_at that still counts as online at `now`."""
    return (now or timezone.now()) - timedelta(seconds=settings.DEVICE_OFFLINE_AFTER_SECONDS)


class DeviceQuerySet(models.QuerySet):
    def presence(self, presence: str, now: datetime | None = None) -> DeviceQuerySet:
        """The devices whose presence at `now` is `presence` (a `Presence` value), filtered in SQL."""
        since = online_since(now)
        return self.filter(
            {
                Presence.ONLINE: Q(last_seen_at__gte=since),
                Presence.OFFLINE: Q(last_seen_at__lt=since),
                Presence.NEVER: Q(last_seen_at__isnull=True),
            }[presence]
        )

    def presence_counts(self, now: datetime | None = None) -> dict[str, int]:
        """{"total", "online", "offline", "never"} of this set at `now`, in one query."""
        counts = self.aggregate(
            total=Count("pk"),
            online=Count("pk", filter=Q(last_seen_at__gte=online_since(now))),
            never=Count("pk", filter=Q(last_seen_at__isnull=True)),
        )
        return {**counts, "offline": counts["total"] - counts["online"] - counts["never"]}


class Device(models.Model):
    """A face-pay terminal. Its secret signs every terminal API request (HMAC-SHA256)."""

    store = models.ForeignKey(Store, verbose_name=_("store"), on_delete=models.PROTECT, related_name="devices")
    device_id = models.CharField(
        _("device number"), max_length=32, unique=True, help_text="Terminal number sent to WeChat as device_id (≤32)."
    )
    name = models.CharField(_("name"), max_length=64, blank=True)
    secret = EncryptedTextField(_("secret"), help_text="HMAC key shared with the terminal; shown once when generated.")
    is_active = models.BooleanField(_("active"), default=True)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    sdk_version = models.CharField(_("SDK version"), max_length=32, blank=True)
    app_version = models.CharField(_("app version"), max_length=32, blank=True)
    secret_rotated_at = models.DateTimeField(_("secret rotated at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = DeviceQuerySet.as_manager()

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["device_id"]
        constraints = [
            models.CheckConstraint(
                name="device_device_id_charset", condition=Q(device_id__regex=r"^[0-9A-Za-z_\-]{1,32}$")
            ),
        ]

    def __str__(self) -> str:
        return self.device_id

    def presence(self, now: datetime | None = None) -> Presence:
        """The device's presence at `now`, by the rule `DeviceQuerySet.presence` filters with."""
        if self.last_seen_at is None:
            return Presence.NEVER
        return Presence.ONLINE if self.last_seen_at >= online_since(now) else Presence.OFFLINE


class DeviceNonce(models.Model):
    """Nonces seen within the timestamp window. The unique constraint rejects a replay in any process."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "nonce"], name="device_nonce_unique")]

    def __str__(self) -> str:
        return f"{self.device_id}:{self.nonce}"


class StaffMembership(models.Model):
    """Ties a console user to the provider or merchant they work for, with one role."""

    class Role(models.TextChoices):
        PROVIDER_ADMIN = "PROVIDER_ADMIN", _("Provider admin")
        PROVIDER_REVIEWER = "PROVIDER_REVIEWER", _("Provider reviewer")
        MERCHANT_ADMIN = "MERCHANT_ADMIN", _("Merchant admin")
        MERCHANT_STAFF = "MERCHANT_STAFF", _("Merchant staff")

    PROVIDER_ROLES = (Role.PROVIDER_ADMIN, Role.PROVIDER_REVIEWER)
    MERCHANT_ROLES = (Role.MERCHANT_ADMIN, Role.MERCHANT_STAFF)

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="membership"
    )
    role = models.CharField(_("role"), max_length=20, choices=Role.choices)
    provider = models.ForeignKey(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="staff",
    )
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), null=True, blank=True, on_delete=models.CASCADE, related_name="staff"
    )
    must_change_password = models.BooleanField(
        _("must change password"),
        default=False,
        help_text="Set when an admin created the account or reset its password: the user must choose a new password "
        "before anything else in the console.",
    )

    class Meta:
        verbose_name = _("console role")
        verbose_name_plural = _("console roles")
        constraints = [
            models.CheckConstraint(
                name="membership_role_matches_owner",
                condition=(
                    Q(role__in=["PROVIDER_ADMIN", "PROVIDER_REVIEWER"], provider__isnull=False, merchant__isnull=True)
                    | Q(role__in=["MERCHANT_ADMIN", "MERCHANT_STAFF"], merchant__isnull=False, provider__isnull=True)
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} of {self.provider or self.merchant}"

    @property
    def is_provider_role(self) -> bool:
        return self.role in self.PROVIDER_ROLES


class AuditLog(models.Model):
    """Append-only record of staff and operator actions (credential changes, device state, refunds, …)."""

    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor_label = models.CharField(
        _("by"), max_length=150, help_text="Username, or 'cli' / 'system' for non-user actions."
    )
    action = models.CharField(_("action"), max_length=64, db_index=True)
    object_type = models.CharField(_("object type"), max_length=64)
    object_id = models.CharField(_("object id"), max_length=64)
    provider = models.ForeignKey(
        ServiceProvider,
        verbose_name=_("service provider"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(_("details"), default=dict, blank=True, help_text="What changed; never secret values.")

    class Meta:
        verbose_name = _("audit log entry")
        verbose_name_plural = _("audit log entries")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"
