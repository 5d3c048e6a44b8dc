"""An alert in words: its title, its body and the console page of its subject, written from `rule` and `data` in the
active language (the console reader's; the chat robots get the site's, LANGUAGE_CODE), and the chat messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from payments.models import PaymentStatus
from portal.models import Merchant
from portal.templatetags.console import fen
from reconciliation.models import DifferenceKind

from .models import Alert, Rule, Severity

CHINA = ZoneInfo("Asia/Shanghai")
WECOM_MAX_BYTES = 4096  # the longest markdown content a WeCom robot takes
SUMMARY_LINES = 10  # alerts named one by one in a summary message


def china_time(moment: datetime | str) -> str:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def title(alert: Alert) -> str:
    data = alert.data
    match alert.rule:
        case Rule.PAYMENT_ATTENTION:
            return _("Payment %(order)s needs attention") % {"order": data.get("out_trade_no", "—")}
        case Rule.REFUND_ATTENTION:
            return _("Refund %(refund)s needs attention") % {"refund": data.get("out_refund_no", "—")}
        case Rule.DEVICE_OFFLINE:
            return _("Device %(device)s is offline") % {"device": data.get("device_id", "—")}
        case Rule.FAILURE_RATE:
            return _("%(percent)d%% of recent payments failed") % {"percent": data.get("percent", 0)}
        case Rule.UPSTREAM_ERRORS:
            return _("Calls to %(channel)s are failing") % {"channel": _channel(data)}
        case Rule.RECONCILIATION:
            return _("New reconciliation differences on %(date)s") % {"date": data.get("bill_date", "—")}
        case Rule.PLATFORM_KEYS if data.get("kind") == "expiring":
            return _("WeChat Pay platform certificate expires on %(date)s") % {"date": _day(data.get("valid_until"))}
        case Rule.PLATFORM_KEYS:
            return _("WeChat Pay platform keys are not being refreshed")
    return alert.get_rule_display()  # a stored alert of a rule this version no longer has


def body(alert: Alert) -> str:
    data = alert.data
    match alert.rule:
        case Rule.PAYMENT_ATTENTION:
            text = _(
                "Payment %(order)s of %(amount)s at %(store)s has an outcome the system cannot settle by itself: "
                "check it with the channel and settle it in the attention queue."
            ) % {"order": data.get("out_trade_no"), "amount": fen(data.get("amount")), "store": data.get("store")}
            return _with_code(text, data)
        case Rule.REFUND_ATTENTION:
            text = _(
                "Refund %(refund)s of %(amount)s on payment %(order)s has an outcome the system cannot settle by "
                "itself: check it with the channel and settle it by hand."
            ) % {
                "refund": data.get("out_refund_no"),
                "amount": fen(data.get("amount")),
                "order": data.get("out_trade_no"),
            }
            return _with_code(text, data)
        case Rule.DEVICE_OFFLINE:
            return _(
                "Device %(device)s at %(store)s was last seen at %(seen)s and is offline while the store is open "
                "(%(opens)s–%(closes)s)."
            ) % {
                "device": data.get("device_id"),
                "store": data.get("store"),
                "seen": china_time(data["last_seen_at"]) if data.get("last_seen_at") else "—",
                "opens": data.get("opens_at"),
                "closes": data.get("closes_at"),
            }
        case Rule.FAILURE_RATE:
            return ngettext(
                "%(failed)d of the %(total)d payments settled in the last %(minutes)d minute failed (%(percent)d%%).",
                "%(failed)d of the %(total)d payments settled in the last %(minutes)d minutes failed (%(percent)d%%).",
                data.get("minutes", 0),
            ) % {key: data.get(key, 0) for key in ("failed", "total", "minutes", "percent")}
        case Rule.UPSTREAM_ERRORS:
            return ngettext(
                "%(count)d call to %(channel)s failed or went unanswered in the last %(minutes)d minutes.",
                "%(count)d calls to %(channel)s failed or went unanswered in the last %(minutes)d minutes.",
                data.get("count", 0),
            ) % {"count": data.get("count", 0), "channel": _channel(data), "minutes": data.get("minutes", 0)}
        case Rule.RECONCILIATION:
            kinds = dict(DifferenceKind.choices)
            counted = _("; ").join(
                f"{kinds.get(kind, kind)} × {count}" for kind, count in sorted(data.get("kinds", {}).items())
            )
            return ngettext(
                "The bill of %(date)s shows %(count)d new difference: %(kinds)s.",
                "The bill of %(date)s shows %(count)d new differences: %(kinds)s.",
                data.get("count", 0),
            ) % {"date": data.get("bill_date"), "count": data.get("count", 0), "kinds": counted}
        case Rule.PLATFORM_KEYS if data.get("kind") == "expiring":
            days = data.get("days_left", 0)
            values = {"name": data.get("name", "—"), "serial": data.get("serial", "—"), "days": days}
            values["date"] = _day(data.get("valid_until"))
            if days < 0:
                text = _("The newest WeChat Pay platform certificate of %(name)s (%(serial)s) expired on %(date)s.")
            else:
                text = ngettext(
                    "The newest WeChat Pay platform certificate of %(name)s (%(serial)s) expires on %(date)s, in "
                    "%(days)d day.",
                    "The newest WeChat Pay platform certificate of %(name)s (%(serial)s) expires on %(date)s, in "
                    "%(days)d days.",
                    days,
                )
            advice = _(
                "Replace it in the WeChat Pay merchant platform or switch to the WeChat Pay public key, then refresh "
                "the platform keys in the console."
            )
            return f"{text % values} {advice}"
        case Rule.PLATFORM_KEYS:
            return _(
                "Downloading the WeChat Pay platform certificates of %(name)s has failed since %(since)s (code "
                "%(code)s). The stored ones keep working until they expire; check the APIv3 key and the merchant API "
                "certificate, then refresh the platform keys in the console."
            ) % {
                "name": data.get("name", "—"),
                "since": china_time(data["since"]) if data.get("since") else "—",
                "code": data.get("code") or "—",
            }
    return ""


def _day(moment: str | None) -> str:
    return china_time(moment)[:10] if moment else "—"


def _with_code(text: str, data: dict) -> str:
    if not data.get("code"):
        return text
    return f"{text} " + _("The channel's last code: %(code)s.") % {"code": data["code"]}


def _channel(data: dict) -> str:
    return str(dict(Merchant.Channel.choices).get(data.get("channel"), data.get("channel", "—")))


def subject_url(alert: Alert) -> str:
    """The console page where the alert's subject is seen and handled."""
    data = alert.data
    match alert.rule:
        case Rule.PAYMENT_ATTENTION | Rule.REFUND_ATTENTION:
            return reverse("portal:payment_detail", args=[data["payment"]])
        case Rule.DEVICE_OFFLINE:
            return reverse("portal:store_detail", args=[data["store_pk"]])
        case Rule.FAILURE_RATE:
            query = {"merchant": alert.merchant_id, "status": PaymentStatus.FAILED}
            return f"{reverse('portal:payment_list')}?{urlencode(query)}"
        case Rule.UPSTREAM_ERRORS:
            return f"{reverse('portal:payment_list')}?{urlencode({'channel': data['channel']})}"
        case Rule.RECONCILIATION:
            day = data["bill_date"]
            query = {"merchant": alert.merchant_id, "from": day, "to": day, "status": "OPEN"}
            return f"{reverse('portal:reconciliation_differences')}?{urlencode(query)}"
        case Rule.PLATFORM_KEYS if data.get("owner") == "provider":
            return reverse("portal:provider_credentials", args=[data["owner_pk"]])
        case Rule.PLATFORM_KEYS:
            return reverse("portal:merchant_credentials", args=[data["owner_pk"]])
    return reverse("portal:alert_list")


def owner_name(alert: Alert) -> str:
    if alert.merchant is not None:
        return alert.merchant.name
    return alert.provider.name if alert.provider is not None else "—"


# --- chat messages ---------------------------------------------------------------------------------------------


def _console_url(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def _fit(text: str) -> str:
    """The text cut to what a WeCom robot takes (DingTalk takes more), whole characters only."""
    encoded = text.encode("utf-8")
    if len(encoded) <= WECOM_MAX_BYTES:
        return text
    return encoded[: WECOM_MAX_BYTES - 3].decode("utf-8", "ignore") + "…"


def _line(text: str) -> str:
    """A name or sentence as one line of markdown (no line breaks of its own)."""
    return " ".join(str(text).split())


def chat_message(alert: Alert) -> tuple[str, str]:
    """(title, markdown) of one alert's message, in the site's language."""
    with translation.override(settings.LANGUAGE_CODE):
        heading = f"【{Severity(alert.severity).label}】{_line(title(alert))}"
        text = (
            f"### {heading}\n\n{_line(body(alert))}\n\n"
            f"> {_line(owner_name(alert))} · {china_time(alert.created_at)}\n\n"
            f"[{_('Open in the console')}]({_console_url(reverse('portal:alert_detail', args=[alert.pk]))})"
        )
        return heading, _fit(text)


def chat_summary(alerts: Sequence[Alert]) -> tuple[str, str]:
    """(title, markdown) of one message for several alerts: what a robot is sent once its minute's messages are used
    up."""
    with translation.override(settings.LANGUAGE_CODE):
        heading = ngettext("%(count)d more alert", "%(count)d more alerts", len(alerts)) % {"count": len(alerts)}
        lines = [
            f"- 【{Severity(alert.severity).label}】{_line(title(alert))} · {_line(owner_name(alert))}"
            for alert in alerts[:SUMMARY_LINES]
        ]
        if len(alerts) > SUMMARY_LINES:
            lines.append(_("- and %(count)d more") % {"count": len(alerts) - SUMMARY_LINES})
        text = (
            f"### {heading}\n\n"
            + _("This robot takes at most %(limit)d messages a minute, so these come together:")
            % {"limit": settings.ALERT_ROBOT_MESSAGES_PER_MINUTE}
            + "\n\n"
            + "\n".join(lines)
            + f"\n\n[{_('Open in the console')}]({_console_url(reverse('portal:alert_list'))})"
        )
        return heading, _fit(text)


def test_message(moment: datetime) -> tuple[str, str]:
    with translation.override(settings.LANGUAGE_CODE):
        heading = _("Test message from the face-pay console")
        text = f"### {heading}\n\n" + _(
            "This robot is connected: alerts of the face-pay console will be sent to this group. (%(time)s)"
        ) % {"time": china_time(moment)}
        return heading, text
