"""Face-identified members (刷脸会员): who a merchant's terminals recognised, how often, whether they
activated the merchant's member card, and the append-only log of visits, activations and unionid lookups.

A member is one WeChat user under one merchant, keyed by the openid that getWxpayfaceUserInfo returns (unique per
merchant, a DB constraint). Personal data (openid, sub_openid, unionid, nickname) is erased on request or after the
retention period; the row and its counters stay so visit statistics remain correct (see `members.services`).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from portal.models import Device, Merchant, Store

# Prefix of the placeholder that replaces an erased openid. Real openids never contain ":" (the terminal API only
# accepts [0-9A-Za-z_-]), so a placeholder can never collide with, or be found by, a real openid.
ERASED_PREFIX = "erased:"


class Member(models.Model):
    class AnonymisedReason(models.TextChoices):
        ERASURE_REQUEST = "ERASURE_REQUEST", _("Erased on request")
        RETENTION = "RETENTION", _("Not seen within the retention period")

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="members")
    openid = models.CharField(
        _("openid"),
        max_length=128,
        help_text="openid from the face SDK's getWxpayfaceUserInfo (under the merchant's appid); "
        "'erased:…' once the member's personal data is erased.",
    )
    sub_openid = models.CharField(
        _("sub_openid"),
        max_length=128,
        blank=True,
        help_text="sub_openid from getWxpayfaceUserInfo (service-provider mode: openid under sub_appid).",
    )
    unionid = models.CharField(
        _("unionid"),
        max_length=128,
        blank=True,
        help_text="union_id from GET /v3/facemch/users/{face_sid}?info_type=ASK_UNIONID (face_sid = the SDK's token).",
    )
    nickname = models.CharField(
        _("nickname"), max_length=128, blank=True, help_text="nickname from getWxpayfaceUserInfo."
    )
    first_seen_at = models.DateTimeField(
        _("first visit"), help_text="First identification by any of the merchant's terminals."
    )
    last_seen_at = models.DateTimeField(
        _("last visit"), db_index=True, help_text="Latest identification; drives retention."
    )
    visit_count = models.PositiveIntegerField(
        _("visits"), default=0, help_text="Identifications so far; kept after erasure."
    )
    card_activated = models.BooleanField(
        _("card activated"),
        default=False,
        help_text="activateWxpayfaceMember answered return_code=SUCCESS for this member.",
    )
    activated_at = models.DateTimeField(
        _("card activated at"), null=True, blank=True, help_text="First successful card activation."
    )
    anonymised_at = models.DateTimeField(
        _("erased at"),
        null=True,
        blank=True,
        db_index=True,
        help_text="When the personal fields were erased; null = not erased.",
    )
    anonymised_reason = models.CharField(
        _("erasure reason"), max_length=16, choices=AnonymisedReason.choices, blank=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            # One member per WeChat user per merchant; settles concurrent first identifications (members.services).
            models.UniqueConstraint(fields=["merchant", "openid"], name="member_unique_openid_per_merchant"),
            models.CheckConstraint(name="member_openid_not_empty", condition=~Q(openid="")),
            models.CheckConstraint(
                name="member_activated_has_time",
                condition=Q(card_activated=False) | Q(activated_at__isnull=False),
            ),
            models.CheckConstraint(
                name="member_anonymised_consistent",
                condition=(Q(anonymised_at__isnull=True) & Q(anonymised_reason=""))
                | (
                    Q(anonymised_at__isnull=False)
                    & Q(anonymised_reason__in=["ERASURE_REQUEST", "RETENTION"])
                    & Q(openid__startswith=ERASED_PREFIX)
                    & Q(sub_openid="")
                    & Q(unionid="")
                    & Q(nickname="")
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"Member {self.pk} of {self.merchant_id}"

    @property
    def is_anonymised(self) -> bool:
        return self.anonymised_at is not None


class MemberEvent(models.Model):
    """Append-only: one row per identification (visit), activation result or failed unionid lookup. Holds no
    personal data of its own, so it is kept as is when the member is erased."""

    class Kind(models.TextChoices):
        IDENTIFIED = "IDENTIFIED", _("Identified (visit)")
        ACTIVATION_SUCCESS = "ACTIVATION_SUCCESS", _("Card activation succeeded")
        ACTIVATION_FAILED = "ACTIVATION_FAILED", _("Card activation failed")
        UNIONID_LOOKUP_FAILED = "UNIONID_LOOKUP_FAILED", _("unionid lookup failed")

    member = models.ForeignKey(Member, verbose_name=_("member"), on_delete=models.PROTECT, related_name="events")
    store = models.ForeignKey(
        Store, verbose_name=_("store"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    device = models.ForeignKey(
        Device, verbose_name=_("device"), null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    return_code = models.CharField(
        _("return code"),
        max_length=32,
        blank=True,
        help_text="activateWxpayfaceMember return_code (SUCCESS, ERROR, PARAMS_INVALID, …).",
    )
    err_code = models.CharField(
        _("error code"),
        max_length=64,
        blank=True,
        help_text="The specific code: activateWxpayfaceMember err_code (e.g. 271378620) or error code, "
        "or the facemch v3 `code` / transport code for lookups.",
    )
    err_message = models.CharField(
        _("error message"), max_length=255, blank=True, help_text="return_msg, or the upstream message."
    )
    next_action = models.CharField(
        _("next action"), max_length=24, blank=True, help_text="What the terminal was told to do next."
    )
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("member event")
        verbose_name_plural = _("member events")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="member_event_kind_valid",
                condition=Q(
                    kind__in=["IDENTIFIED", "ACTIVATION_SUCCESS", "ACTIVATION_FAILED", "UNIONID_LOOKUP_FAILED"]
                ),
            ),
        ]
        indexes = [models.Index(fields=["member", "kind", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} member {self.member_id} at {self.created_at:%Y-%m-%d %H:%M}"
