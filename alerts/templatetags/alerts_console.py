"""Console helpers of the alerts pages, and the header's unread-alerts link (one COUNT per request, however often a
page asks for it)."""

from django import template
from django.utils.html import format_html

from alerts.models import Severity
from alerts.selectors import unread_count

register = template.Library()

TONES = {Severity.CRITICAL: "bad", Severity.WARNING: "warn", Severity.INFO: "muted"}


@register.simple_tag(takes_context=True)
def unread_alerts(context) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    if not hasattr(request, "_unread_alerts"):
        request._unread_alerts = unread_count(user)
    return request._unread_alerts


@register.simple_tag
def severity_badge(severity: int) -> str:
    return format_html('<span class="badge {}">{}</span>', TONES.get(severity, "muted"), Severity(severity).label)
