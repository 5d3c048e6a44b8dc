"""Console display helpers. Money arrives as integer fen and is only formatted here (never floats)."""

from django import template
from django.utils import timezone
from django.utils.html import format_html

from portal.models import Presence

register = template.Library()


@register.filter
def fen(value) -> str:
    """12345 → ¥123.45 (integer arithmetic, no floats)."""
    if value is None or value == "":
        return "—"
    amount = int(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    return f"{sign}¥{amount // 100:,}.{amount % 100:02d}"


STATUS_TONE = {
    "SUCCESS": "ok", "REFUNDED": "muted", "PARTIALLY_REFUNDED": "ok", "REVERSED": "muted", "FAILED": "bad",
    "PAYING": "warn", "REVERSING": "warn", "ATTENTION": "bad", "PENDING": "warn", "PROCESSING": "warn",
    "DONE": "ok", "DOING": "warn", "CREATED": "warn", "REVOKED": "muted", "EXPIRED": "muted",
    "OPEN": "bad", "EXPLAINED": "ok", "CLOSED": "muted",
}  # fmt: skip


@register.simple_tag
def status_badge(status: str, label: str = "") -> str:
    return format_html('<span class="badge {}">{}</span>', STATUS_TONE.get(status, "muted"), label or status)


@register.filter
def can(perms: set, action: str) -> bool:
    return action in (perms or set())


@register.inclusion_tag("portal/onboarding/_device_presence.html")
def device_presence(device, now=None) -> dict:
    """A device's presence at `now` (the page's moment, so it agrees with the page's filters and counts): online
    with the minutes since it was last seen, offline since when, or never seen."""
    now = now or timezone.now()
    presence = device.presence(now)
    seen = device.last_seen_at
    return {
        "presence": presence,
        "online": presence == Presence.ONLINE,
        "last_seen_at": seen,
        "minutes": max(0, int((now - seen).total_seconds() // 60)) if seen else None,  # another node's clock may lead
    }
