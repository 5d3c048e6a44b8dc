"""Every write of the alerts app: an alert with its deliveries (routing and the quiet period), the chat robots, read
marks, and pruning old alerts.

`alert_raise` is the only way an alert is made: the unique key decides, in the database, that a finding is raised
once however many evaluations see it at the same time.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from portal.errors import InvalidInput, InvalidState
from portal.models import Merchant, ServiceProvider
from portal.services import audit_record

from . import delivery, robots, text
from .models import Alert, AlertChannel, AlertDelivery, AlertRead, RobotKind, Severity

Status = AlertDelivery.Status


def _now() -> datetime:
    return timezone.now()


# --- alerts ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What a rule found: raised as an alert unless an alert with its key exists."""

    rule: str
    severity: int
    key: str
    topic: str  # rule and subject: a robot's quiet period is per topic
    merchant: Merchant | None = None
    provider_id: int | None = None  # for a finding without a merchant; a merchant's alert takes its provider
    data: dict = field(default_factory=dict)


def alert_raise(finding: Finding, *, now: datetime | None = None) -> Alert | None:
    """The alert and its deliveries, in one transaction; None when the finding was raised before (by an earlier
    evaluation or one running at the same time: the unique key refuses the second insert)."""
    now = now or _now()
    merchant = finding.merchant
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=finding.rule,
                severity=finding.severity,
                key=finding.key,
                topic=finding.topic,
                merchant=merchant,
                provider_id=merchant.provider_id if merchant is not None else finding.provider_id,
                data=finding.data,
                created_at=now,
            )
            _route(alert, now)
    except IntegrityError:
        return None
    return alert


def _route(alert: Alert, now: datetime) -> None:
    """A delivery for every enabled robot the alert is for: its merchant's, and its provider's (which get all their
    merchants' alerts), at or above the robot's lowest severity. A robot that had a message on the same topic within
    its quiet period gets the delivery as SKIPPED: the console still lists the alert."""
    owners = Q(provider_id=alert.provider_id) if alert.provider_id else Q(pk__in=[])
    if alert.merchant_id:
        owners |= Q(merchant_id=alert.merchant_id)
    channels = list(AlertChannel.objects.filter(owners, is_active=True, min_severity__lte=alert.severity))
    if not channels:
        return
    longest = max(channel.quiet_minutes for channel in channels)
    recent = AlertDelivery.objects.filter(
        channel__in=channels,
        alert__topic=alert.topic,
        status__in=[Status.PENDING, Status.SENT],
        created_at__gte=now - timedelta(minutes=longest),
    ).values_list("channel_id", "created_at")
    last = {}
    for channel_id, created_at in recent:
        last[channel_id] = max(created_at, last.get(channel_id, created_at))
    rows = []
    for channel in channels:
        quiet = (
            channel.quiet_minutes
            and channel.pk in last
            and last[channel.pk] >= now - timedelta(minutes=channel.quiet_minutes)
        )
        rows.append(
            AlertDelivery(
                alert=alert,
                channel=channel,
                status=Status.SKIPPED if quiet else Status.PENDING,
                next_attempt_at=None if quiet else now,
                created_at=now,
            )
        )
    AlertDelivery.objects.bulk_create(rows)


def prune(*, now: datetime | None = None) -> int:
    """Delete alerts (with their deliveries and read marks) older than ALERT_RETENTION_DAYS. Returns how many."""
    cutoff = (now or _now()) - timedelta(days=settings.ALERT_RETENTION_DAYS)
    deleted = 0
    while batch := list(Alert.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:1000]):
        Alert.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
    return deleted


# --- read marks ------------------------------------------------------------------------------------------------------


def alert_mark_read(*, alert: Alert, user: AbstractBaseUser) -> None:
    AlertRead.objects.bulk_create([AlertRead(alert=alert, user=user)], ignore_conflicts=True)


def alerts_mark_all_read(*, alerts: QuerySet[Alert], user: AbstractBaseUser) -> int:
    """Mark every alert of `alerts` (those the user sees) read for `user`. Returns how many were unread."""
    unread = list(
        alerts.exclude(Exists(AlertRead.objects.filter(alert=OuterRef("pk"), user=user))).values_list("pk", flat=True)
    )
    AlertRead.objects.bulk_create([AlertRead(alert_id=pk, user=user) for pk in unread], ignore_conflicts=True)
    return len(unread)


# --- chat robots -----------------------------------------------------------------------------------------------------


def _private_address(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False  # not resolvable now: nothing to judge (sending will fail, and say so)
    return any(not ipaddress.ip_address(info[4][0].split("%")[0]).is_global for info in infos)


def validate_robot(kind: str, url: str, secret: str) -> tuple[str, str]:
    """The robot's address and secret as stored, or InvalidInput naming the field."""
    url, secret = (url or "").strip(), (secret or "").strip()
    parts = urlsplit(url)
    if kind not in RobotKind.values:
        raise InvalidInput(details={"kind": "Choose the robot from the list."})
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 500:
        raise InvalidInput(details={"webhook_url": "An http(s) address of at most 500 characters."})
    if settings.ALERT_ROBOT_REQUIRE_HTTPS and parts.scheme != "https":
        raise InvalidInput(details={"webhook_url": "The address must start with https://."})
    if parts.username or parts.password:
        raise InvalidInput(details={"webhook_url": "No user name or password in the address."})
    if kind == RobotKind.DINGTALK:
        if not dict(parse_qsl(parts.query)).get("access_token"):
            raise InvalidInput(
                details={"webhook_url": "Copy the robot's whole Webhook address: it ends with its access_token."}
            )
        if not secret:
            raise InvalidInput(
                details={"secret": "Enter the robot's signing secret (加签, starts with SEC): unsigned robots are "
                         "not supported."}
            )  # fmt: skip
    if not settings.ALERT_ROBOT_ALLOW_PRIVATE_ADDRESSES and _private_address(parts.hostname):
        raise InvalidInput(details={"webhook_url": "The address points into a private network; use a public one."})
    return url, secret if kind == RobotKind.DINGTALK else ""


def _address_hint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _audit(action: str, channel: AlertChannel, user: AbstractBaseUser | None) -> None:
    """Recorded against the robot's merchant or provider, with its name and where it posts (the host only)."""
    owner = channel.merchant or channel.provider
    audit_record(actor=user, action=action, obj=owner, details={"name": channel.name, "url": channel.address_hint})


def channel_create(
    *,
    owner: Merchant | ServiceProvider,
    name: str,
    kind: str,
    webhook_url: str,
    secret: str = "",
    min_severity: int = Severity.WARNING,
    quiet_minutes: int = 30,
    user: AbstractBaseUser | None,
) -> AlertChannel:
    """A robot for a merchant's alerts or a provider's (all its merchants'). Its address and secret are stored
    encrypted and never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(details={"name": "A name of 1 to 100 characters, e.g. the group's name."})
    if min_severity not in Severity.values:
        raise InvalidInput(details={"min_severity": "Choose a severity from the list."})
    if not 0 <= quiet_minutes <= 1440:
        raise InvalidInput(details={"quiet_minutes": "From 0 to 1440 minutes."})
    url, secret = validate_robot(kind, webhook_url, secret)
    with transaction.atomic():
        channel = AlertChannel.objects.create(
            provider=owner if isinstance(owner, ServiceProvider) else None,
            merchant=owner if isinstance(owner, Merchant) else None,
            name=name,
            kind=kind,
            webhook_url=url,
            secret=secret,
            address_hint=_address_hint(url),
            min_severity=min_severity,
            quiet_minutes=quiet_minutes,
            created_by=user,
        )
        _audit("alert_channel.create", channel, user)
    return channel


def channel_set_active(*, channel: AlertChannel, is_active: bool, user: AbstractBaseUser | None) -> AlertChannel:
    """Enable or disable a robot. Disabled, what waited for it is not sent (later alerts are not routed to it)."""
    with transaction.atomic():
        channel = AlertChannel.objects.select_for_update().get(pk=channel.pk)
        if channel.is_active == is_active:
            return channel
        channel.is_active = is_active
        channel.save(update_fields=["is_active"])
        if not is_active:
            channel.deliveries.filter(status=Status.PENDING).update(status=Status.SKIPPED, next_attempt_at=None)
        _audit("alert_channel.enable" if is_active else "alert_channel.disable", channel, user)
    return channel


def channel_delete(*, channel: AlertChannel, user: AbstractBaseUser | None) -> None:
    with transaction.atomic():
        _audit("alert_channel.delete", channel, user)
        channel.delete()


def channel_send_test(*, channel: AlertChannel, user: AbstractBaseUser | None) -> robots.Answer:
    """Send a test message now and return the robot's answer. It counts against the robot's messages per minute;
    with none left this minute, nothing is sent (InvalidState)."""
    now = _now()
    with transaction.atomic():
        channel = AlertChannel.objects.select_for_update().get(pk=channel.pk)
        if not delivery.take_slots(channel, 1, now):
            raise InvalidState(
                "This robot has been sent its messages for this minute; try again in a minute.", code="RATE_LIMITED"
            )
        _audit("alert_channel.test", channel, user)
    title, markdown = text.test_message(now)
    return robots.send(
        robots.robot_client,
        kind=channel.kind,
        url=channel.webhook_url.reveal(),
        secret=channel.secret.reveal() if channel.secret else "",
        title=title,
        text=markdown,
    )
