"""Writes of the merchant domain. Every state change goes through a function here."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import time, timedelta

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal import credentials as cred
from portal.errors import InvalidInput
from portal.models import AuditLog, ChannelCredentials, Device, Merchant, ServiceProvider, Store

DEVICE_SECRET_BYTES = 32


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    obj,
    details: Mapping | None = None,
    actor_label: str | None = None,
) -> AuditLog:
    """Append an audit row. `details` must never contain secret values (callers pass field names instead)."""
    merchant = provider = None
    if isinstance(obj, Merchant):
        merchant, provider = obj, obj.provider
    elif isinstance(obj, ServiceProvider):
        provider = obj
    elif isinstance(obj, Store):
        merchant = obj.merchant
        provider = merchant.provider
    elif isinstance(obj, Device):
        merchant = obj.store.merchant
        provider = merchant.provider
    elif hasattr(obj, "merchant"):
        merchant = obj.merchant
        provider = merchant.provider if merchant else None
    label = actor_label or (actor.get_username() if actor is not None else "system")
    return AuditLog.objects.create(
        actor=actor,
        actor_label=label,
        action=action,
        object_type=type(obj).__name__,
        object_id=str(obj.pk),
        provider=provider,
        merchant=merchant,
        details=dict(details or {}),
    )


# --- Channel credentials ---

CREDENTIAL_INPUTS = (
    "wechat_api_v2_key",
    "wechat_api_v3_key",
    "wechat_private_key",
    "wechat_certificate",
    "wechat_platform_certificates",
    "wechat_platform_public_key",
    "wechat_platform_public_key_id",
    "umpay_private_key",
    "umpay_certificate",
)


def _normalise_credentials(values: Mapping[str, str | bytes], existing: ChannelCredentials) -> dict[str, str]:
    """Validate what was entered (blank = keep what is stored) and return the values to store.

    Raises InvalidInput naming every bad field; nothing is stored unless every field is valid.
    """
    out: dict[str, str] = {}
    errors: dict[str, str] = {}

    def check(field: str, fn):
        raw = values.get(field)
        if raw in (None, "", b""):
            return
        try:
            out.update(fn(raw))
        except cred.CredentialError as exc:
            errors[exc.field] = exc.message

    def as_text(raw) -> str:
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw

    check("wechat_api_v2_key", lambda v: {"wechat_api_v2_key": cred.validate_api_v2_key(as_text(v))})
    check("wechat_api_v3_key", lambda v: {"wechat_api_v3_key": cred.validate_api_v3_key(as_text(v))})
    check(
        "wechat_private_key",
        lambda v: {"wechat_private_key": cred.private_key_pem(cred.load_private_key("wechat_private_key", v))},
    )
    check(
        "wechat_certificate",
        lambda v: {"wechat_certificate": cred.certificate_pem(cred.load_certificate("wechat_certificate", v))},
    )
    check(
        "wechat_platform_certificates",
        lambda v: {
            "wechat_platform_certificates": "".join(
                cred.certificate_pem(c) for c in cred.load_certificates("wechat_platform_certificates", as_text(v))
            )
        },
    )

    def platform_key(v):
        key = cred.load_public_key("wechat_platform_public_key", v)
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"wechat_platform_public_key": pem.decode("ascii")}

    check("wechat_platform_public_key", platform_key)

    def key_id(v):
        v = as_text(v).strip()
        if not v.startswith("PUB_KEY_ID_") or len(v) > 64:
            raise cred.CredentialError("wechat_platform_public_key_id", "A public key id looks like PUB_KEY_ID_….")
        return {"wechat_platform_public_key_id": v}

    check("wechat_platform_public_key_id", key_id)
    check(
        "umpay_private_key",
        lambda v: {"umpay_private_key": cred.private_key_pem(cred.load_private_key("umpay_private_key", v))},
    )
    check(
        "umpay_certificate",
        lambda v: {"umpay_certificate": cred.certificate_pem(cred.load_certificate("umpay_certificate", v))},
    )

    # Cross-field rules, against the new value or, if not replaced, the stored one.
    if not errors:
        key_pem = out.get("wechat_private_key") or _reveal(existing.wechat_private_key)
        cert_pem = out.get("wechat_certificate") or _reveal(existing.wechat_certificate)
        if ("wechat_private_key" in out or "wechat_certificate" in out) and key_pem and cert_pem:
            certificate = cred.load_certificate("wechat_certificate", cert_pem)
            if not cred.certificate_matches_key(certificate, cred.load_private_key("wechat_private_key", key_pem)):
                errors["wechat_certificate"] = "This certificate does not belong to the merchant private key."
            else:
                out["wechat_cert_serial"] = cred.certificate_serial(certificate)
        has_pub_key = out.get("wechat_platform_public_key") or existing.wechat_platform_public_key
        has_key_id = out.get("wechat_platform_public_key_id") or existing.wechat_platform_public_key_id
        if bool(has_pub_key) != bool(has_key_id) and (
            "wechat_platform_public_key" in out or "wechat_platform_public_key_id" in out
        ):
            errors["wechat_platform_public_key_id"] = "The platform public key and its id must be entered together."
    if errors:
        raise InvalidInput("Some credentials are not valid.", details=errors, code="INVALID_CREDENTIALS")
    return out


def _reveal(value) -> str:
    return value.reveal() if value else ""


def _credentials_of(owner: ServiceProvider | Merchant, *, for_update: bool) -> ChannelCredentials:
    lookup = {"provider": owner} if isinstance(owner, ServiceProvider) else {"merchant": owner}
    queryset = ChannelCredentials.objects.filter(**lookup)
    if for_update:
        queryset = queryset.select_for_update()
    return queryset.first() or ChannelCredentials(**lookup)


def _check_known_fields(values: Mapping) -> None:
    unknown = set(values) - set(CREDENTIAL_INPUTS)
    if unknown:
        raise InvalidInput(details={name: "Unknown credential field." for name in sorted(unknown)})


def credentials_check(*, owner: ServiceProvider | Merchant, values: Mapping[str, str | bytes]) -> None:
    """Raise InvalidInput (one message per bad field) if `values` could not be stored; store nothing."""
    _check_known_fields(values)
    _normalise_credentials(values, _credentials_of(owner, for_update=False))


@transaction.atomic
def credentials_update(
    *,
    owner: ServiceProvider | Merchant,
    values: Mapping[str, str | bytes],
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> ChannelCredentials:
    """Validate and store channel credentials for a provider or merchant. Blank inputs keep the stored value."""
    _check_known_fields(values)
    credentials = _credentials_of(owner, for_update=True)
    changes = _normalise_credentials(values, credentials)
    for name, value in changes.items():
        setattr(credentials, name, value)
    credentials.save()
    if changes:
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="credentials.update",
            obj=owner,
            details={"fields": sorted(changes)},  # names only: values are secrets
        )
    return credentials


# --- Devices ---


def _new_device_secret() -> str:
    return secrets.token_urlsafe(DEVICE_SECRET_BYTES)


def _new_device_id() -> str:
    return "T" + secrets.token_hex(8).upper()


@transaction.atomic
def device_register(
    *,
    store: Store,
    device_id: str | None = None,
    name: str = "",
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> tuple[Device, str]:
    """Create a device and return it with its secret — the only time the secret is shown in clear."""
    device_id = (device_id or _new_device_id()).strip()
    if not re.fullmatch(r"[0-9A-Za-z_\-]{1,32}", device_id):
        raise InvalidInput(details={"device_id": "1-32 letters, digits, '_' or '-'."})
    secret = _new_device_secret()
    try:
        # The unique constraint on device_id settles concurrent registrations of the same id.
        with transaction.atomic():
            device = Device.objects.create(store=store, device_id=device_id, name=name, secret=secret)
    except IntegrityError as exc:
        raise InvalidInput(
            details={"device_id": "A device with this id already exists."}, code="DEVICE_EXISTS"
        ) from exc
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="device.register",
        obj=device,
        details={"device_id": device_id, "store_id": store.store_id},
    )
    return device, secret


@transaction.atomic
def device_rotate_secret(*, device: Device, actor: AbstractBaseUser | None, actor_label: str | None = None) -> str:
    """Replace a device's secret; the old one stops working at once. Returns the new secret (shown once)."""
    device = Device.objects.select_for_update().get(pk=device.pk)
    secret = _new_device_secret()
    device.secret = secret
    device.secret_rotated_at = timezone.now()
    device.save(update_fields=["secret", "secret_rotated_at"])
    audit_record(actor=actor, actor_label=actor_label, action="device.rotate_secret", obj=device)
    return secret


@transaction.atomic
def device_set_active(
    *, device: Device, is_active: bool, actor: AbstractBaseUser | None, actor_label: str | None = None
) -> Device:
    device = Device.objects.select_for_update().get(pk=device.pk)
    if device.is_active != is_active:
        device.is_active = is_active
        device.save(update_fields=["is_active"])
        audit_record(
            actor=actor, actor_label=actor_label, action="device.enable" if is_active else "device.disable", obj=device
        )
    return device


@transaction.atomic
def store_set_active(
    *, store: Store, is_active: bool, actor: AbstractBaseUser | None, actor_label: str | None = None
) -> Store:
    store = Store.objects.select_for_update().get(pk=store.pk)
    if store.is_active != is_active:
        store.is_active = is_active
        store.save(update_fields=["is_active"])
        audit_record(
            actor=actor, actor_label=actor_label, action="store.enable" if is_active else "store.disable", obj=store
        )
    return store


@transaction.atomic
def merchant_set_status(
    *, merchant: Merchant, status: str, actor: AbstractBaseUser | None, actor_label: str | None = None
) -> Merchant:
    if status not in Merchant.Status.values:
        raise InvalidInput(details={"status": f"One of {', '.join(Merchant.Status.values)}."})
    merchant = Merchant.objects.select_for_update().get(pk=merchant.pk)
    if merchant.status != status:
        previous = merchant.status
        merchant.status = status
        merchant.save(update_fields=["status"])
        audit_record(
            actor=actor,
            actor_label=actor_label,
            action="merchant.status",
            obj=merchant,
            details={"from": previous, "to": status},
        )
    return merchant


def device_mark_seen(device: Device) -> None:
    """Move `device.last_seen_at` to now for an authenticated terminal request, at most once per
    DEVICE_SEEN_WRITE_SECONDS: the loaded row decides whether a write is due (no query otherwise), and the UPDATE
    repeats the condition, so concurrent requests of one device write once. One autocommitted statement of one
    column, outside any payment's transaction."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.DEVICE_SEEN_WRITE_SECONDS)
    if device.last_seen_at is not None and device.last_seen_at >= stale_before:
        return
    stale = Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=stale_before)
    if Device.objects.filter(stale, pk=device.pk).update(last_seen_at=now):
        device.last_seen_at = now


def device_record_heartbeat(*, device: Device, sdk_version: str, app_version: str) -> Device:
    device.last_seen_at = timezone.now()
    device.sdk_version = sdk_version
    device.app_version = app_version
    Device.objects.filter(pk=device.pk).update(
        last_seen_at=device.last_seen_at, sdk_version=sdk_version, app_version=app_version
    )
    return device


# --- Console onboarding: merchants and stores ---

MERCHANT_FIELDS = (
    "name",
    "appid",
    "mch_id",
    "sub_appid",
    "sub_mch_id",
    "umpay_acq_mer_id",
    "payscore_service_id",
    "wechat_api",
)
_APPID_PATTERN = re.compile(r"[0-9A-Za-z_]{1,32}")
_MCH_ID_PATTERN = re.compile(r"[0-9]{1,32}")
_ACQ_MER_ID_PATTERN = re.compile(r"[0-9A-Za-z]{8}")
_STORE_ID_PATTERN = re.compile(r"[^\s]{1,32}")
_AREA_CODE_PATTERN = re.compile(r"[0-9]{1,12}")
# Store.payscore_materiel_url: WeChat's materiel_no (物料URL), an http(s) URL.
_MATERIEL_URL_VALIDATOR = URLValidator(schemes=["http", "https"])


def _merchant_errors(*, channel: str, provider: ServiceProvider | None, values: Mapping[str, str]) -> dict[str, str]:
    """Per-channel rules: which upstream ids a merchant needs before its first call can be signed."""
    errors: dict[str, str] = {}
    if not values.get("name"):
        errors["name"] = "This field is required."
    if channel not in Merchant.Channel.values:
        errors["channel"] = "Choose a channel."
        return errors
    for field, pattern, message in (
        ("appid", _APPID_PATTERN, "Up to 32 letters, digits or '_'."),
        ("sub_appid", _APPID_PATTERN, "Up to 32 letters, digits or '_'."),
        ("mch_id", _MCH_ID_PATTERN, "Up to 32 digits."),
        ("sub_mch_id", _MCH_ID_PATTERN, "Up to 32 digits."),
        ("umpay_acq_mer_id", _ACQ_MER_ID_PATTERN, "The UMF acqMerId is exactly 8 letters or digits."),
        ("payscore_service_id", _APPID_PATTERN, "Up to 32 letters, digits or '_'."),
    ):
        if values.get(field) and not pattern.fullmatch(values[field]):
            errors[field] = message
    if values.get("payscore_service_id") and channel != Merchant.Channel.WECHAT_DIRECT:
        # WeChat: the PayScore service-order API serves direct merchants only (适用对象:直连商户).
        errors.setdefault("payscore_service_id", "PayScore is for direct WeChat Pay merchants only.")
    if channel == Merchant.Channel.WECHAT_DIRECT:
        for field in ("appid", "mch_id"):
            if not values.get(field):
                errors.setdefault(field, "Required for a direct WeChat Pay merchant.")
    elif channel == Merchant.Channel.WECHAT_PROVIDER:
        if not values.get("sub_mch_id"):
            errors.setdefault("sub_mch_id", "Required for a service-provider (sub_mch_id) merchant.")
        if provider is None or not provider.wechat_mch_id:
            errors["channel"] = "The service provider has no WeChat mch_id, so it cannot sign for sub-merchants."
    elif channel == Merchant.Channel.UMPAY:
        if not values.get("umpay_acq_mer_id"):
            errors.setdefault("umpay_acq_mer_id", "Required for a UMF merchant.")
        if provider is None or not provider.umpay_acq_sp_id:
            errors["channel"] = "The service provider has no UMF acqSpId, so it cannot sign for UMF merchants."
    return errors


def _merchant_duplicates(*, provider: ServiceProvider | None, values: Mapping[str, str], exclude_pk=None) -> dict:
    errors: dict[str, str] = {}
    if provider is None:
        return errors
    others = Merchant.objects.filter(provider=provider).exclude(pk=exclude_pk)
    if values.get("sub_mch_id") and others.filter(sub_mch_id=values["sub_mch_id"]).exists():
        errors["sub_mch_id"] = "Another merchant of this provider already has this sub_mch_id."
    if values.get("umpay_acq_mer_id") and others.filter(umpay_acq_mer_id=values["umpay_acq_mer_id"]).exists():
        errors["umpay_acq_mer_id"] = "Another merchant of this provider already has this acqMerId."
    return errors


def _clean_merchant_values(values: Mapping[str, str], *, merchant: Merchant | None = None) -> dict[str, str]:
    """Stripped values; the WeChat API version left out stays what it is (v2 for a new merchant)."""
    cleaned = {name: (values.get(name) or "").strip() for name in MERCHANT_FIELDS}
    cleaned["wechat_api"] = cleaned["wechat_api"] or (merchant.wechat_api if merchant else Merchant.WechatApi.V2)
    return cleaned


def _wechat_api_error(*, channel: str, provider: ServiceProvider | None, merchant: Merchant | None, api: str):
    """Why this merchant cannot go over `api`, or None. API v3 needs a WeChat channel and credentials that sign v3
    requests and verify v3 answers (platform keys included: without them every answer would be unverifiable and
    every payment end in a reversal)."""
    if api not in Merchant.WechatApi.values:
        return "Choose v2 or v3."
    if api == Merchant.WechatApi.V2:
        return None
    if channel == Merchant.Channel.UMPAY:
        return "UMF merchants have no WeChat Pay API version."
    if channel == Merchant.Channel.WECHAT_DIRECT:
        credentials = ChannelCredentials.objects.filter(merchant=merchant).first() if merchant else None
    else:
        credentials = ChannelCredentials.objects.filter(provider=provider).first() if provider else None
    if credentials is None or not cred.wechat_v3_configured(credentials):
        return (
            "API v3 needs the APIv3 key, the merchant API private key and certificate, and WeChat Pay platform keys "
            "(downloaded automatically once the others are entered, or a platform public key)."
        )
    return None


@transaction.atomic
def merchant_create(
    *,
    provider: ServiceProvider | None,
    channel: str,
    values: Mapping[str, str],
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> Merchant:
    """Onboard a merchant under `provider`. Raises InvalidInput naming each bad field; creates nothing then."""
    cleaned = _clean_merchant_values(values)
    errors = _merchant_errors(channel=channel, provider=provider, values=cleaned)
    errors = {**_merchant_duplicates(provider=provider, values=cleaned), **errors}
    if api_error := _wechat_api_error(channel=channel, provider=provider, merchant=None, api=cleaned["wechat_api"]):
        errors.setdefault("wechat_api", api_error)
    if errors:
        raise InvalidInput("Some fields are invalid.", details=errors)
    try:
        # The unique constraints settle a concurrent onboarding of the same sub_mch_id / acqMerId.
        with transaction.atomic():
            merchant = Merchant.objects.create(provider=provider, channel=channel, **cleaned)
    except IntegrityError as exc:
        raise InvalidInput(
            details=_merchant_duplicates(provider=provider, values=cleaned)
            or {"name": "This merchant conflicts with an existing one."}
        ) from exc
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="merchant.create",
        obj=merchant,
        details={"channel": channel, **{k: v for k, v in cleaned.items() if v}},  # ids only, no secrets
    )
    return merchant


@transaction.atomic
def merchant_update(
    *,
    merchant: Merchant,
    values: Mapping[str, str],
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> Merchant:
    """Change a merchant's name and upstream ids (not its channel or provider: those decide whose credentials
    sign its calls). Same per-channel rules as `merchant_create`."""
    merchant = Merchant.objects.select_for_update(of=("self",)).select_related("provider").get(pk=merchant.pk)
    cleaned = _clean_merchant_values(values, merchant=merchant)
    errors = _merchant_errors(channel=merchant.channel, provider=merchant.provider, values=cleaned)
    errors = {**_merchant_duplicates(provider=merchant.provider, values=cleaned, exclude_pk=merchant.pk), **errors}
    if cleaned["wechat_api"] != merchant.wechat_api and (
        api_error := _wechat_api_error(
            channel=merchant.channel, provider=merchant.provider, merchant=merchant, api=cleaned["wechat_api"]
        )
    ):
        errors.setdefault("wechat_api", api_error)
    if errors:
        raise InvalidInput("Some fields are invalid.", details=errors)
    changes = {
        name: {"from": getattr(merchant, name), "to": value}
        for name, value in cleaned.items()
        if getattr(merchant, name) != value
    }
    if not changes:
        return merchant
    for name in changes:
        setattr(merchant, name, cleaned[name])
    try:
        with transaction.atomic():
            merchant.save(update_fields=list(changes))
    except IntegrityError as exc:
        raise InvalidInput(
            details=_merchant_duplicates(provider=merchant.provider, values=cleaned, exclude_pk=merchant.pk)
        ) from exc
    audit_record(actor=actor, actor_label=actor_label, action="merchant.update", obj=merchant, details=changes)
    return merchant


def _store_errors(values: Mapping[str, str]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if "store_id" in values and not _STORE_ID_PATTERN.fullmatch(values["store_id"]):
        errors["store_id"] = "1-32 characters without spaces."
    if not values.get("name"):
        errors["name"] = "This field is required."
    elif len(values["name"]) > 128:
        errors["name"] = "At most 128 characters."
    if len(values.get("address", "")) > 255:
        errors["address"] = "At most 255 characters."
    if values.get("area_code") and not _AREA_CODE_PATTERN.fullmatch(values["area_code"]):
        errors["area_code"] = "Up to 12 digits, e.g. 440305."
    if url := values.get("payscore_materiel_url"):
        try:
            _MATERIEL_URL_VALIDATOR(url)
            valid = len(url) <= 255
        except ValidationError:
            valid = False
        if not valid:
            errors["payscore_materiel_url"] = "An http(s) URL of at most 255 characters."
    return errors


def _hours_errors(opens_at: time | None, closes_at: time | None) -> dict[str, str]:
    if (opens_at is None) != (closes_at is None):
        return {"opens_at" if opens_at is None else "closes_at": "Enter both opening hours, or neither."}
    return {}


def _audit_value(value):
    """A store's value as the audit log's details hold it (JSON): opening hours as HH:MM."""
    return value.strftime("%H:%M") if isinstance(value, time) else value


@transaction.atomic
def store_create(
    *,
    merchant: Merchant,
    store_id: str,
    name: str,
    address: str = "",
    area_code: str = "",
    opens_at: time | None = None,
    closes_at: time | None = None,
    payscore_materiel_url: str = "",
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> Store:
    """Create a store. store_id is what WeChat receives as store_id: ≤32, unique per merchant (DB constraint)."""
    values = {
        "store_id": (store_id or "").strip(),
        "name": (name or "").strip(),
        "address": (address or "").strip(),
        "area_code": (area_code or "").strip(),
        "payscore_materiel_url": (payscore_materiel_url or "").strip(),
    }
    errors = _store_errors(values) | _hours_errors(opens_at, closes_at)
    if errors:
        raise InvalidInput("Some fields are invalid.", details=errors)
    try:
        # The unique constraint (not a prior lookup) decides between two concurrent creations of one store_id.
        with transaction.atomic():
            store = Store.objects.create(merchant=merchant, opens_at=opens_at, closes_at=closes_at, **values)
    except IntegrityError as exc:
        raise InvalidInput(
            details={"store_id": "This merchant already has a store with this store ID."}, code="STORE_EXISTS"
        ) from exc
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="store.create",
        obj=store,
        details={"store_id": store.store_id, "name": store.name},
    )
    return store


@transaction.atomic
def store_update(
    *,
    store: Store,
    name: str,
    address: str = "",
    area_code: str = "",
    opens_at: time | None = None,
    closes_at: time | None = None,
    payscore_materiel_url: str = "",
    actor: AbstractBaseUser | None,
    actor_label: str | None = None,
) -> Store:
    """Change a store's name, address, area code, opening hours and PayScore materiel URL. Its store_id stays:
    payments and terminals refer to it."""
    store = Store.objects.select_for_update(of=("self",)).select_related("merchant__provider").get(pk=store.pk)
    values = {
        "name": (name or "").strip(),
        "address": (address or "").strip(),
        "area_code": (area_code or "").strip(),
        "payscore_materiel_url": (payscore_materiel_url or "").strip(),
    }
    errors = _store_errors(values) | _hours_errors(opens_at, closes_at)
    if errors:
        raise InvalidInput("Some fields are invalid.", details=errors)
    values |= {"opens_at": opens_at, "closes_at": closes_at}
    changed = [k for k, v in values.items() if getattr(store, k) != v]
    changes = {k: {"from": _audit_value(getattr(store, k)), "to": _audit_value(values[k])} for k in changed}
    if changes:
        for field in changed:
            setattr(store, field, values[field])
        store.save(update_fields=changed)
        audit_record(actor=actor, actor_label=actor_label, action="store.update", obj=store, details=changes)
    return store
