"""WeChat Pay platform keys kept current without a person (docs/platform-keys.md).

WeChat signs every API v3 answer and notification with a platform certificate (named by its serial) or, in
public-key mode, with the platform public key (named by its PUB_KEY_ID_…). Certificates expire and are replaced:
WeChat publishes the new one in `GET /v3/certificates` before it starts signing with it. The beat downloads them every
PLATFORM_CERTIFICATE_REFRESH_SECONDS for every credentials row that uses certificates and merges them into what is
stored, so the new serial is known before the first answer signed with it arrives, and the old one stays until it
expires.

The download runs outside any transaction (an upstream call holds no row lock and no database connection); only
the merge is done under the row's lock, against what is stored at that moment, so two workers refreshing the same
row at once each add what they found and neither loses the other's write. A worker killed half-way leaves the row as
it was: the next run does the work again.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from payments import channels
from payments.gateways import wechatpay_v3
from payments.gateways.base import Outcome
from payments.gateways.http import Timeouts
from payments.gateways.wechatpay_v3_certificates import CertificatesResult, PlatformCertificate, download_certificates
from portal.credentials import CredentialError, certificate_pem, certificate_serial, load_certificates
from portal.models import ChannelCredentials, ServiceProvider
from portal.services import audit_record

logger = logging.getLogger(__name__)

NO_CERTIFICATES = "NO_CERTIFICATES"  # WeChat answered 404: it has no platform certificate for this mchid
SCHEDULER = "system"  # the audit log's actor label for the beat's refreshes (shown as "the system")
ERROR_MAX = 200  # ChannelCredentials.wechat_platform_keys_error


class Mode(enum.StrEnum):
    """How WeChat's answers to these credentials are verified."""

    CERTIFICATE = "certificate"  # platform certificates only: they must be downloaded and kept current
    PUBLIC_KEY = "public_key"  # the platform public key only: nothing to download
    TRANSITION = "transition"  # both, while WeChat moves the merchant from certificates to the public key
    NONE = "none"  # neither yet


MODE_LABELS = {
    Mode.CERTIFICATE: _("Platform certificates"),
    Mode.PUBLIC_KEY: _("WeChat Pay public key"),
    Mode.TRANSITION: _("Switching from platform certificates to the public key"),
    Mode.NONE: _("No platform key yet"),
}

# What a refresh failure means, for the console; codes not listed are WeChat's own refusals.
ERROR_TEXTS = {
    "NOT_CONFIGURED": _("The APIv3 key, the merchant API private key or its certificate is missing."),
    NO_CERTIFICATES: _(
        "WeChat Pay has no platform certificate for this merchant number: it uses the WeChat Pay public key. Enter "
        "the public key and its ID."
    ),
    "LOCAL_ERROR": _("A stored key could not be used; enter the merchant API private key again."),
    "BAD_SIGNATURE": _("The answer's signature did not verify: nothing from it was stored."),
    "DECRYPT_FAILED": _("The certificates did not decrypt: check that the APIv3 key is the one set in WeChat Pay."),
    "SERIAL_MISMATCH": _("A certificate did not carry the serial number WeChat gave for it: nothing was stored."),
    "UNPARSEABLE": _("WeChat Pay's answer could not be read."),
    "TIMEOUT": _("WeChat Pay did not answer in time."),
    "CONNECT_ERROR": _("WeChat Pay could not be reached."),
    "NETWORK_ERROR": _("The connection to WeChat Pay broke off."),
}


def error_text(code: str) -> str:
    """The failure `code` (ours or WeChat's) in the reader's language."""
    if code in ERROR_TEXTS:
        return str(ERROR_TEXTS[code])
    if code.startswith("HTTP_"):
        return str(_("WeChat Pay answered with an unexpected HTTP status."))
    return str(_("WeChat Pay refused the download."))


def _now() -> datetime:
    """The product's clock (the same instant the v3 signatures are checked against)."""
    return datetime.fromtimestamp(channels._timestamp(), UTC)


def _has_public_key(credentials: ChannelCredentials) -> bool:
    return bool(credentials.wechat_platform_public_key and credentials.wechat_platform_public_key_id)


def mode_of(credentials: ChannelCredentials) -> Mode:
    certificates, public_key = bool(credentials.wechat_platform_certificates), _has_public_key(credentials)
    if certificates and public_key:
        return Mode.TRANSITION
    if certificates:
        return Mode.CERTIFICATE
    return Mode.PUBLIC_KEY if public_key else Mode.NONE


def _ids(credentials: ChannelCredentials) -> tuple[str, str]:
    """(mchid, appid) of whoever owns the credentials: the provider's in service-provider mode, the direct
    merchant's otherwise."""
    owner = credentials.provider if credentials.provider_id else credentials.merchant
    if isinstance(owner, ServiceProvider):
        return owner.wechat_mch_id, owner.wechat_appid
    return owner.mch_id, owner.appid


def can_sign(credentials: ChannelCredentials) -> bool:
    """Whether a v3 request can be signed with these credentials: the APIv3 key (to decrypt the certificates), the
    merchant API private key and its certificate serial, and the owner's WeChat mch_id."""
    return bool(
        credentials.wechat_api_v3_key
        and credentials.wechat_private_key
        and credentials.wechat_cert_serial
        and _ids(credentials)[0]
    )


def refreshable(credentials: ChannelCredentials) -> bool:
    """Whether the scheduler downloads certificates for these credentials: it can sign, and they are not in
    public-key-only mode (a public key and no certificate: WeChat has none to give; in the transition both are
    kept, and the certificates refreshed, until the operator removes them)."""
    return can_sign(credentials) and mode_of(credentials) is not Mode.PUBLIC_KEY


def v3_config(credentials: ChannelCredentials) -> wechatpay_v3.WechatPayV3Config:
    """The API v3 config of a credentials row by itself (channels.wechat_v3_config needs a merchant; a provider's
    certificates are the provider's, whichever sub-merchant there is). No sub_mchid: the certificates are the
    mchid's."""
    mchid, appid = _ids(credentials)
    return channels.v3_config_of(credentials, mchid=mchid, appid=appid)


# --- the stored certificates --------------------------------------------------------------------------------------


def stored_certificates(credentials: ChannelCredentials) -> list[x509.Certificate]:
    if not credentials.wechat_platform_certificates:
        return []
    try:
        return load_certificates("wechat_platform_certificates", credentials.wechat_platform_certificates)
    except CredentialError:
        # Checked when entered, so only a hand-edited row gets here; the download replaces it.
        logger.warning("platform certificates of credentials %s do not parse", credentials.pk)
        return []


def merge(
    stored: list[x509.Certificate], downloaded: tuple[PlatformCertificate, ...], now: datetime
) -> tuple[str, list[str], list[str]]:
    """(the PEMs to store, serials added, serials removed), newest first. WeChat lists every platform certificate
    that is valid, the old and the new side by side during a rotation, each with the `expire_time` after which it
    no longer signs: so a verified list replaces what is stored, without the entries past their `expire_time`. A
    certificate WeChat stopped listing is dropped (it no longer signs with it); an empty list changes nothing (the
    stored ones stay until they expire)."""
    kept: dict[str, tuple[datetime, str]] = {}
    for certificate in stored:
        kept[certificate_serial(certificate)] = (certificate.not_valid_after_utc, certificate_pem(certificate))
    before = set(kept)
    if downloaded:
        kept = {entry.serial: (entry.expire_time, entry.pem) for entry in downloaded}
    current = {serial: value for serial, value in kept.items() if value[0] > now}
    order = sorted(current, key=lambda serial: (current[serial][0], serial), reverse=True)
    return "".join(current[serial][1] for serial in order), sorted(set(current) - before), sorted(before - set(current))


# --- refreshing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """status: REFRESHED (downloaded and merged), FAILED (nothing stored; `code` says why) or SKIPPED (nothing to
    download: PUBLIC_KEY_ONLY, NOT_CONFIGURED — the credentials cannot sign yet —, or NO_CERTIFICATES — WeChat has
    none any more for credentials that have the public key, the end of the transition)."""

    status: str
    code: str = ""
    message: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)  # what is stored afterwards, newest first

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def _timeouts() -> Timeouts:
    return Timeouts(connect=settings.UPSTREAM_CONNECT_TIMEOUT, read=settings.UPSTREAM_READ_TIMEOUT)


def _download(credentials: ChannelCredentials) -> CertificatesResult | RefreshOutcome:
    try:
        return download_certificates(
            v3_config(credentials), client=channels.upstream_client, timeouts=_timeouts(), clock=channels._timestamp
        )
    except Exception as exc:  # noqa: BLE001 - a key that no longer loads, a bug: recorded like a failed download
        logger.exception("platform certificates of credentials %s: download raised", credentials.pk)
        return RefreshOutcome("FAILED", "LOCAL_ERROR", type(exc).__name__)


def _failure(downloaded: CertificatesResult | RefreshOutcome) -> RefreshOutcome | None:
    """Why the download gives nothing to store, or None when it does."""
    if isinstance(downloaded, RefreshOutcome):
        return downloaded
    if downloaded.outcome is Outcome.REJECTED and downloaded.http_status == 404:
        # WeChat (verified) has no certificate for this mchid: it has moved the merchant to the public key.
        return RefreshOutcome("FAILED", NO_CERTIFICATES, f"{downloaded.code} {downloaded.message}".strip())
    if downloaded.outcome is not Outcome.SUCCESS:
        return RefreshOutcome("FAILED", downloaded.code or "FAILED", downloaded.message)
    return None


def _apply(row: ChannelCredentials, downloaded: CertificatesResult | RefreshOutcome, now: datetime) -> RefreshOutcome:
    """Write what the download means for the (locked) row."""
    rows = ChannelCredentials.objects.filter(pk=row.pk)
    failed = _failure(downloaded)
    if failed is not None and failed.code == NO_CERTIFICATES and _has_public_key(row):
        # The end of the transition: the public key verifies everything now, so this is no failure. The stored
        # certificates stay until they expire (an answer signed with one may still be in flight).
        rows.update(wechat_platform_keys_error="", wechat_platform_keys_failing_since=None)
        return RefreshOutcome("SKIPPED", NO_CERTIFICATES)
    if failed is not None:
        error = f"{failed.code}: {failed.message}" if failed.message else failed.code
        rows.update(
            wechat_platform_keys_error=error[:ERROR_MAX],
            wechat_platform_keys_failing_since=row.wechat_platform_keys_failing_since or now,
        )
        return failed
    pems, added, removed = merge(stored_certificates(row), downloaded.certificates, now)
    fields = {
        "wechat_platform_keys_refreshed_at": now,
        "wechat_platform_keys_error": "",
        "wechat_platform_keys_failing_since": None,
    }
    if added or removed:
        fields |= {"wechat_platform_certificates": pems, "updated_at": timezone.now()}
    rows.update(**fields)
    serials = [certificate_serial(c) for c in x509.load_pem_x509_certificates(pems.encode())] if pems else []
    return RefreshOutcome("REFRESHED", added=added, removed=removed, serials=serials)


def refresh(
    credentials: ChannelCredentials,
    *,
    actor: AbstractBaseUser | None = None,
    actor_label: str | None = None,
) -> RefreshOutcome:
    """Download the platform certificates of one credentials row and merge them into what is stored.

    On success the certificates (every one not yet expired, stored or downloaded), the refresh time and an empty
    error are written under the row's lock; on failure only the error (nothing else is touched: the stored
    certificates keep working). A verified 404 (WeChat has no certificate for the mchid) is a failure in certificate
    mode — the operator must enter the public key — and the end of the transition when the public key is stored.
    Changes are audited (`credentials.platform_keys_refresh`), as the beat's under `actor_label`; a refresh a person
    asked for (`actor`) is audited whatever its result."""
    credentials = ChannelCredentials.objects.select_related("provider", "merchant").get(pk=credentials.pk)
    if not refreshable(credentials):
        return RefreshOutcome("SKIPPED", "PUBLIC_KEY_ONLY" if can_sign(credentials) else "NOT_CONFIGURED")
    downloaded = _download(credentials)  # outside the transaction: no lock held while WeChat answers
    with transaction.atomic():
        row = ChannelCredentials.objects.select_for_update().get(pk=credentials.pk)
        outcome = _apply(row, downloaded, _now())
        if actor is not None or outcome.changed:
            details = {
                "result": {"REFRESHED": "OK", "SKIPPED": NO_CERTIFICATES}.get(outcome.status, "FAILED"),
                "certificates_added": outcome.added,
                "certificates_removed": outcome.removed,
            }
            if outcome.code:
                details["code"] = outcome.code
            audit_record(
                actor=actor,
                actor_label=actor_label or (None if actor is not None else SCHEDULER),
                action="credentials.platform_keys_refresh",
                obj=credentials.provider if credentials.provider_id else credentials.merchant,
                details=details,
            )
    logger.log(
        logging.INFO if outcome.status == "REFRESHED" else logging.WARNING,
        "platform certificates of credentials %s: %s %s",
        credentials.pk,
        outcome.status,
        outcome.code or ",".join(outcome.added) or "-",
    )
    return outcome


def refresh_all(*, now: datetime | None = None) -> dict[str, int]:
    """Refresh every credentials row that uses platform certificates and is due: never downloaded, downloaded
    PLATFORM_CERTIFICATE_REFRESH_SECONDS ago or more, or failing. Returns how many were refreshed, failed and
    skipped. One row's failure (or exception) does not stop the others."""
    counts = {"REFRESHED": 0, "FAILED": 0, "SKIPPED": 0}
    stale = (now or _now()) - timedelta(seconds=settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS)
    due = (
        Q(wechat_platform_keys_refreshed_at__isnull=True)
        | Q(wechat_platform_keys_refreshed_at__lte=stale)
        | Q(wechat_platform_keys_failing_since__isnull=False)
    )
    rows = ChannelCredentials.objects.exclude(wechat_cert_serial="").filter(due).select_related("provider", "merchant")
    for credentials in rows.order_by("pk").iterator():
        if not refreshable(credentials):
            counts["SKIPPED"] += 1
            continue
        try:
            counts[refresh(credentials, actor_label=SCHEDULER).status] += 1
        except Exception:  # noqa: BLE001 - the others still run; the next run tries this one again
            logger.exception("platform certificates of credentials %s: refresh raised", credentials.pk)
            counts["FAILED"] += 1
    return {key.lower(): value for key, value in counts.items()}


# --- status, for the console and the alert -------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateStatus:
    serial: str
    valid_from: datetime
    valid_until: datetime
    days_left: int  # whole days until valid_until (negative once expired)

    @property
    def expired(self) -> bool:
        return self.days_left < 0


@dataclass(frozen=True)
class PlatformKeyStatus:
    mode: Mode
    certificates: list[CertificateStatus]  # newest (latest valid_until) first
    public_key_id: str
    refreshed_at: datetime | None
    error: str  # "CODE: reason" of the last failed refresh, "" after a success
    failing_since: datetime | None  # the first failed refresh since the last success
    refreshable: bool
    expiring: CertificateStatus | None  # the newest certificate, when it expires within the warning period
    refresh_failing: bool  # refreshes have failed, without a success in between, for two refresh periods

    @property
    def mode_label(self) -> str:
        return str(MODE_LABELS[self.mode])

    @property
    def error_code(self) -> str:
        return self.error.split(":", 1)[0].strip()

    @property
    def error_text(self) -> str:
        return error_text(self.error_code) if self.error else ""

    @property
    def warning_due(self) -> bool:
        return self.expiring is not None or self.refresh_failing


def platform_key_status(credentials: ChannelCredentials, now: datetime | None = None) -> PlatformKeyStatus:
    """What the console shows of the platform keys, and what the alert rule judges. A warning is due when, in
    certificate mode, the newest certificate expires within PLATFORM_CERTIFICATE_WARN_DAYS (in the transition the
    public key takes over), or when refreshing fails: every refresh of the last two refresh periods failed (one
    failed run is not worth waking anyone: the next one usually succeeds)."""
    now = now or timezone.now()
    certificates = sorted(
        (
            CertificateStatus(
                serial=certificate_serial(certificate),
                valid_from=certificate.not_valid_before_utc,
                valid_until=certificate.not_valid_after_utc,
                days_left=(certificate.not_valid_after_utc - now) // timedelta(days=1),
            )
            for certificate in stored_certificates(credentials)
        ),
        key=lambda status: (status.valid_until, status.serial),
        reverse=True,
    )
    mode = mode_of(credentials)
    warn_before = timedelta(days=settings.PLATFORM_CERTIFICATE_WARN_DAYS)
    newest = certificates[0] if certificates else None
    expiring = newest if mode is Mode.CERTIFICATE and newest and newest.valid_until - now <= warn_before else None
    is_refreshable = refreshable(credentials)
    failing_since = credentials.wechat_platform_keys_failing_since
    stale_before = now - timedelta(seconds=2 * settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS)
    failing = bool(
        is_refreshable
        and credentials.wechat_platform_keys_error
        and failing_since is not None
        and failing_since <= stale_before
    )
    return PlatformKeyStatus(
        mode=mode,
        certificates=certificates,
        public_key_id=credentials.wechat_platform_public_key_id if _has_public_key(credentials) else "",
        refreshed_at=credentials.wechat_platform_keys_refreshed_at,
        error=credentials.wechat_platform_keys_error,
        failing_since=failing_since,
        refreshable=is_refreshable,
        expiring=expiring,
        refresh_failing=failing,
    )
