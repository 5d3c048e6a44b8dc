"""Writes of the members domain (every state change is a function here): identification visits, unionid lookups,
card activation results, erasure and retention. Views and tasks call these; nothing else changes a Member or writes
a MemberEvent."""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from members import activation
from members.models import ERASED_PREFIX, Member, MemberEvent
from payments import channels
from payments.gateways import wechatpay_v3
from payments.gateways.base import Outcome
from payments.gateways.http import Timeouts
from portal.errors import DomainError, InvalidInput, NotFound
from portal.models import AuditLog, Device, Merchant
from portal.services import audit_record

logger = logging.getLogger(__name__)

# WeChat openids are 28 characters of [0-9A-Za-z_-]; allow up to 128 (the field size) of the same alphabet. The
# alphabet has no ":", so no real openid can ever equal an erased placeholder ("erased:…").
OPENID = re.compile(r"^[0-9A-Za-z_\-]{1,128}$")
DEFAULT_RETENTION_DAYS = 365
RETENTION_BATCH_SIZE = 500
# An identify that loses a race with an erasure of the same member (see `_record_visit`) starts over; more than
# a couple of rounds would mean something else is wrong.
IDENTIFY_ATTEMPTS = 3


def _now() -> datetime:
    return timezone.now()


def _check_openid(field: str, value: str, *, required: bool) -> None:
    if not value and not required:
        return
    if not OPENID.match(value or ""):
        raise InvalidInput(details={field: "1-128 characters of 0-9 A-Z a-z _ -."})


# --- identification --------------------------------------------------------------------------------------------


class UnionidLookup(enum.StrEnum):
    NOT_REQUESTED = "NOT_REQUESTED"  # ask_unionid was false
    ALREADY_KNOWN = "ALREADY_KNOWN"  # the member's unionid is on file; a unionid never changes, so no upstream call
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # recorded as an UNIONID_LOOKUP_FAILED event; the identification itself still counts


@dataclass(frozen=True, kw_only=True)
class IdentifyInput:
    openid: str
    sub_openid: str = ""
    nickname: str = ""
    face_sid: str = ""  # the `token` getWxpayfaceUserInfo returns when asked with ask_unionid=1
    ask_unionid: bool = False


@dataclass(frozen=True)
class IdentifyResult:
    member: Member
    is_returning: bool  # the member existed before this identification
    unionid_lookup: UnionidLookup


def member_identify(*, device: Device, data: IdentifyInput) -> IdentifyResult:
    """Record that `device` identified the user `data.openid`: upsert the member under the device's merchant, count
    the visit, and, when asked, resolve the unionid through facemch. A failed lookup is recorded, never raised."""
    _check_openid("openid", data.openid, required=True)
    _check_openid("sub_openid", data.sub_openid, required=False)
    if data.ask_unionid and not data.face_sid:
        raise InvalidInput(details={"face_sid": "Required when ask_unionid is true (the SDK's token)."})
    member, is_returning = _record_visit(device=device, data=data)
    lookup = UnionidLookup.NOT_REQUESTED
    if data.ask_unionid:
        if member.unionid:
            lookup = UnionidLookup.ALREADY_KNOWN
        else:
            # Outside any transaction: no row lock or open transaction is held across the upstream call.
            member, lookup = _resolve_unionid(member=member, device=device, face_sid=data.face_sid)
    return IdentifyResult(member=member, is_returning=is_returning, unionid_lookup=lookup)


def _record_visit(*, device: Device, data: IdentifyInput) -> tuple[Member, bool]:
    merchant = device.store.merchant
    for _ in range(IDENTIFY_ATTEMPTS):
        now = _now()
        with transaction.atomic():
            # Concurrent first visits of the same openid: the unique constraint lets one INSERT win; get_or_create
            # rolls the loser back to its savepoint and reads the winner's row.
            member, created = Member.objects.get_or_create(
                merchant=merchant,
                openid=data.openid,
                defaults={
                    "sub_openid": data.sub_openid,
                    "nickname": data.nickname,
                    "first_seen_at": now,
                    "last_seen_at": now,
                },
            )
            # Count under the row lock so concurrent visits of one member never lose an increment.
            member = Member.objects.select_for_update().get(pk=member.pk)
            if member.is_anonymised:
                # Erased between our read and the lock: the openid now belongs to nobody here. Start over, which
                # creates a fresh member (nothing of the erased one comes back).
                continue
            member.visit_count += 1
            member.last_seen_at = now
            changed = ["visit_count", "last_seen_at"]
            if data.nickname and data.nickname != member.nickname:
                member.nickname = data.nickname
                changed.append("nickname")
            if data.sub_openid and data.sub_openid != member.sub_openid:
                member.sub_openid = data.sub_openid
                changed.append("sub_openid")
            member.save(update_fields=changed)
            MemberEvent.objects.create(
                member=member, store=device.store, device=device, kind=MemberEvent.Kind.IDENTIFIED
            )
            return member, not created
    raise DomainError("The member changed while being identified; try again.", code="MEMBER_BUSY")


@dataclass(frozen=True)
class _Lookup:
    union_id: str = ""
    sub_openid: str = ""
    code: str = ""
    message: str = ""


def _facemch_lookup(*, merchant: Merchant, face_sid: str, openid: str) -> _Lookup:
    """The facemch answer, or why there is none (code + message). Never raises: a unionid is a nice-to-have."""
    if merchant.channel == Merchant.Channel.UMPAY:
        return _Lookup(code="UNSUPPORTED_CHANNEL", message="unionid lookup needs WeChat Pay API v3 credentials.")
    try:
        config = channels.wechat_v3_config(merchant)
    except DomainError as exc:
        return _Lookup(code=exc.code, message=exc.message)
    if not (config.merchant_private_key_pem and config.merchant_serial_no and config.platform_keys):
        return _Lookup(
            code="CHANNEL_NOT_CONFIGURED", message="API v3 private key, certificate or platform key missing."
        )
    try:
        result = channels.observed(
            "facemch_user",
            merchant,
            lambda: wechatpay_v3.facemch_user(
                config,
                face_sid,
                # Read at call time: tests and the benchmark replace channels.upstream_client.
                client=channels.upstream_client,
                timeouts=Timeouts(connect=settings.UPSTREAM_CONNECT_TIMEOUT, read=settings.UPSTREAM_READ_TIMEOUT),
            ),
        )
    except Exception:  # a bug or unusable key material; the visit must still count
        logger.exception("facemch lookup raised for merchant %s", merchant.pk)
        return _Lookup(code="INTERNAL_ERROR", message="The lookup failed unexpectedly; see the server log.")
    if result.outcome is not Outcome.SUCCESS:
        return _Lookup(code=result.code or str(result.outcome), message=result.message)
    if result.openid and result.openid != openid:
        # The face_sid belongs to someone else: never attach another user's unionid to this member.
        return _Lookup(code="OPENID_MISMATCH", message="face_sid does not belong to this openid.")
    if not result.union_id:
        return _Lookup(code="NO_UNIONID", message="WeChat returned no union_id for this user.")
    return _Lookup(union_id=result.union_id, sub_openid=result.sub_openid)


def _resolve_unionid(*, member: Member, device: Device, face_sid: str) -> tuple[Member, UnionidLookup]:
    found = _facemch_lookup(merchant=member.merchant, face_sid=face_sid, openid=member.openid)
    with transaction.atomic():
        member = Member.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=member.pk)
        if found.union_id and not member.is_anonymised:
            member.unionid = found.union_id
            changed = ["unionid"]
            if found.sub_openid and not member.sub_openid:
                member.sub_openid = found.sub_openid
                changed.append("sub_openid")
            member.save(update_fields=changed)
            return member, UnionidLookup.SUCCESS
        MemberEvent.objects.create(
            member=member,
            store=device.store,
            device=device,
            kind=MemberEvent.Kind.UNIONID_LOOKUP_FAILED,
            err_code=(found.code or "ERASED")[:64],
            err_message=(found.message or "The member was erased during the lookup.")[:255],
        )
        return member, UnionidLookup.FAILED


# --- card activation (activateWxpayfaceMember) ------------------------------------------------------------------


@dataclass(frozen=True)
class ActivationOutcome:
    member: Member
    event: MemberEvent
    code: str  # the code that decided the guidance
    guidance: activation.Guidance

    @property
    def is_success(self) -> bool:
        return self.event.kind == MemberEvent.Kind.ACTIVATION_SUCCESS


@transaction.atomic
def member_activation_record(
    *, device: Device, openid: str, return_code: str, err_code: str = "", return_msg: str = ""
) -> ActivationOutcome:
    """Record what activateWxpayfaceMember answered on `device` and say what the terminal should do next.

    Only the device's own merchant's members can be activated; an unknown openid is MEMBER_NOT_FOUND (404).
    A repeated SUCCESS keeps the first activated_at.
    """
    _check_openid("openid", openid, required=True)
    merchant = device.store.merchant
    member = Member.objects.select_for_update().filter(merchant=merchant, openid=openid).first()
    if member is None:
        raise NotFound(
            "No member with this openid at this merchant; identify the user (members/identify) first.",
            code="MEMBER_NOT_FOUND",
            details={"openid": "Unknown at this merchant."},
        )
    code, guidance = activation.classify(return_code, err_code)
    success = code == activation.SUCCESS
    if success and not member.card_activated:
        member.card_activated = True
        member.activated_at = _now()
        member.save(update_fields=["card_activated", "activated_at"])
    event = MemberEvent.objects.create(
        member=member,
        store=device.store,
        device=device,
        kind=MemberEvent.Kind.ACTIVATION_SUCCESS if success else MemberEvent.Kind.ACTIVATION_FAILED,
        return_code=return_code[:32],
        err_code=err_code[:64],
        err_message=return_msg[:255],
        next_action=guidance.next_action.value,
    )
    return ActivationOutcome(member=member, event=event, code=code, guidance=guidance)


# --- erasure and retention --------------------------------------------------------------------------------------


def _placeholder(member: Member) -> str:
    # Salted with fresh randomness: the placeholder cannot be recomputed from the openid, so it links to nobody.
    digest = hashlib.sha256(secrets.token_bytes(32) + f"{member.pk}:{member.openid}".encode()).hexdigest()
    return ERASED_PREFIX + digest[:40]


def _anonymise(member: Member, *, reason: str, now: datetime) -> None:
    """Drop every personal field; keep the row, its counters and its events (which hold no personal data). The
    unionid a PayScore order of this member learnt goes too; the orders' openid stays, like the payments' (records
    of money)."""
    from payscore.models import ServiceOrder

    ServiceOrder.objects.filter(merchant_id=member.merchant_id, openid=member.openid).exclude(union_id="").update(
        union_id=""
    )
    member.openid = _placeholder(member)
    member.sub_openid = ""
    member.unionid = ""
    member.nickname = ""
    member.anonymised_at = now
    member.anonymised_reason = reason
    member.save(update_fields=["openid", "sub_openid", "unionid", "nickname", "anonymised_at", "anonymised_reason"])


@transaction.atomic
def member_erase(*, member: Member, actor: AbstractBaseUser | None, actor_label: str | None = None) -> Member:
    """Erase a member's personal data on request (audited). Erasing an erased member changes and audits nothing."""
    member = Member.objects.select_for_update(of=("self",)).select_related("merchant__provider").get(pk=member.pk)
    if member.is_anonymised:
        return member
    _anonymise(member, reason=Member.AnonymisedReason.ERASURE_REQUEST, now=_now())
    audit_record(
        actor=actor,
        actor_label=actor_label,
        action="member.erase",
        obj=member,
        details={"visit_count": member.visit_count, "card_activated": member.card_activated},  # no personal data
    )
    return member


def retention_days() -> int:
    return int(getattr(settings, "MEMBER_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))


@dataclass(frozen=True)
class RetentionRun:
    count: int
    days: int
    cutoff: datetime
    audit: AuditLog


def members_anonymise_stale(*, days: int | None = None, now: datetime | None = None) -> RetentionRun:
    """Anonymise every member not identified for `days` (default MEMBER_RETENTION_DAYS), in batches; one audit row
    per run with the count. Safe to run twice or concurrently: rows are re-checked under their lock."""
    days = retention_days() if days is None else days
    if days < 1:
        # 0 would erase every member at once: refuse rather than guess.
        raise InvalidInput(details={"MEMBER_RETENTION_DAYS": "A positive number of days."})
    now = now or _now()
    cutoff = now - timedelta(days=days)
    by_merchant: Counter[int] = Counter()
    while True:
        with transaction.atomic():
            # skip_locked: a member being identified right now is not stale; a later batch or run re-checks it.
            batch = list(
                Member.objects.select_for_update(skip_locked=True)
                .filter(anonymised_at__isnull=True, last_seen_at__lt=cutoff)
                .order_by("pk")[:RETENTION_BATCH_SIZE]
            )
            for member in batch:
                _anonymise(member, reason=Member.AnonymisedReason.RETENTION, now=now)
                by_merchant[member.merchant_id] += 1
        if len(batch) < RETENTION_BATCH_SIZE:
            break
    count = sum(by_merchant.values())
    # A run concerns many merchants and no single object, so it is one row written directly rather than through
    # audit_record (which describes one object).
    audit = AuditLog.objects.create(
        actor=None,
        actor_label="system",
        action="member.retention_anonymise",
        object_type="Member",
        object_id="*",
        details={
            "count": count,
            "days": days,
            "cutoff": cutoff.isoformat(),
            "by_merchant": {str(pk): n for pk, n in sorted(by_merchant.items())},
        },
    )
    return RetentionRun(count=count, days=days, cutoff=cutoff, audit=audit)
