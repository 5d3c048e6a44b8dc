"""Console display helpers. Money arrives as integer fen and is only formatted here (never floats)."""

from django import template
from django.utils.html import format_html

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
