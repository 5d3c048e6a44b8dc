"""The audit log in sentences: every action the product records (portal, payments, PayScore, members, the merchant
API, reconciliation, webhooks, alerts) has a name and a sentence here — who did what to which object, the object by its
name — and an entry's details read as labelled fields in the console's language. An action without a sentence (a new
one) reads as a generic sentence naming its code; tests/console/test_readable_text.py fails until it has one.

Value names from the apps above portal (payment statuses, refund kinds, …) are passed in by the console view as
`labels`: portal's domain modules import no other app."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import conditional_escape, escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from portal.forms import CredentialsForm, MerchantForm
from portal.models import AuditLog, Device, Merchant, StaffMembership, Store
from portal.templatetags.console import fen

Labels = Mapping[str, Mapping[str, str]]  # a kind of value (e.g. "payment_status") → {code: name}


@dataclass(frozen=True)
class Action:
    name: str  # short, for the action filter
    sentence: str  # %(actor)s and the object's placeholders (see `_placeholders`)


ACTIONS: dict[str, Action] = {
    # portal: merchants, stores, devices, credentials
    "merchant.create": Action(
        gettext_lazy("Merchant onboarded"), gettext_lazy("%(actor)s onboarded merchant %(merchant)s")
    ),
    "merchant.update": Action(
        gettext_lazy("Merchant changed"), gettext_lazy("%(actor)s changed the details of merchant %(merchant)s")
    ),
    "merchant.status": Action(
        gettext_lazy("Merchant suspended or resumed"),
        gettext_lazy("%(actor)s set the status of merchant %(merchant)s to %(status)s"),
    ),
    "merchant.test_connection": Action(
        gettext_lazy("Channel connection tested"),
        gettext_lazy("%(actor)s tested the channel connection of merchant %(merchant)s: %(result)s"),
    ),
    "credentials.update": Action(
        gettext_lazy("Channel credentials changed"),
        gettext_lazy("%(actor)s changed the channel credentials of %(owner)s"),
    ),
    "credentials.platform_keys_refresh": Action(
        gettext_lazy("WeChat Pay platform keys refreshed"),
        gettext_lazy("%(actor)s refreshed the WeChat Pay platform keys of %(owner)s: %(result)s"),
    ),
    "store.create": Action(
        gettext_lazy("Store created"), gettext_lazy("%(actor)s created store %(store)s for merchant %(merchant)s")
    ),
    "store.update": Action(gettext_lazy("Store changed"), gettext_lazy("%(actor)s changed store %(store)s")),
    "store.enable": Action(gettext_lazy("Store enabled"), gettext_lazy("%(actor)s enabled store %(store)s")),
    "store.disable": Action(gettext_lazy("Store disabled"), gettext_lazy("%(actor)s disabled store %(store)s")),
    "device.register": Action(
        gettext_lazy("Device registered"), gettext_lazy("%(actor)s registered device %(device)s at store %(store)s")
    ),
    "device.rotate_secret": Action(
        gettext_lazy("Device secret rotated"), gettext_lazy("%(actor)s rotated the secret of device %(device)s")
    ),
    "device.enable": Action(gettext_lazy("Device enabled"), gettext_lazy("%(actor)s enabled device %(device)s")),
    "device.disable": Action(gettext_lazy("Device disabled"), gettext_lazy("%(actor)s disabled device %(device)s")),
    # portal: staff accounts and sign-in
    "staff.created": Action(
        gettext_lazy("Staff account created"), gettext_lazy("%(actor)s created the account %(user)s as %(role)s")
    ),
    "staff.role_changed": Action(
        gettext_lazy("Staff role changed"), gettext_lazy("%(actor)s changed the role of %(user)s to %(role)s")
    ),
    "staff.enabled": Action(
        gettext_lazy("Staff account enabled"), gettext_lazy("%(actor)s enabled the account %(user)s")
    ),
    "staff.disabled": Action(
        gettext_lazy("Staff account disabled"), gettext_lazy("%(actor)s disabled the account %(user)s")
    ),
    "staff.password_reset": Action(
        gettext_lazy("Password reset"), gettext_lazy("%(actor)s reset the password of %(user)s")
    ),
    "staff.password_changed": Action(
        gettext_lazy("Password changed"), gettext_lazy("%(actor)s changed their own password")
    ),
    "staff.two_factor_enrolled": Action(
        gettext_lazy("Two-factor sign-in set up"), gettext_lazy("%(actor)s set up two-factor sign-in")
    ),
    "staff.two_factor_disabled": Action(
        gettext_lazy("Two-factor sign-in turned off"), gettext_lazy("%(actor)s turned off two-factor sign-in")
    ),
    "staff.two_factor_reset": Action(
        gettext_lazy("Two-factor sign-in reset"), gettext_lazy("%(actor)s reset the two-factor sign-in of %(user)s")
    ),
    "staff.recovery_codes_regenerated": Action(
        gettext_lazy("Recovery codes renewed"), gettext_lazy("%(actor)s made new recovery codes")
    ),
    # payments
    "payment.refund": Action(
        gettext_lazy("Refund requested"),
        gettext_lazy("%(actor)s requested a refund of %(amount)s for payment %(payment)s"),
    ),
    "payment.reverse": Action(
        gettext_lazy("Payment reversed"), gettext_lazy("%(actor)s asked to reverse payment %(payment)s")
    ),
    "payment.refresh": Action(
        gettext_lazy("Payment queried"), gettext_lazy("%(actor)s asked the channel about payment %(payment)s")
    ),
    "payment.resolve": Action(
        gettext_lazy("Payment settled by hand"), gettext_lazy("%(actor)s settled payment %(payment)s as %(outcome)s")
    ),
    "refund.resolve": Action(
        gettext_lazy("Refund settled by hand"),
        gettext_lazy("%(actor)s settled refund %(refund)s of payment %(payment)s as %(outcome)s"),
    ),
    # PayScore
    "payscore.complete": Action(
        gettext_lazy("PayScore order completed"),
        gettext_lazy("%(actor)s completed PayScore order %(order)s for %(amount)s"),
    ),
    "payscore.cancel": Action(
        gettext_lazy("PayScore order cancelled"), gettext_lazy("%(actor)s cancelled PayScore order %(order)s")
    ),
    "payscore.sync": Action(
        gettext_lazy("PayScore order synced as paid"),
        gettext_lazy("%(actor)s recorded PayScore order %(order)s as paid through another channel"),
    ),
    "payscore.refresh": Action(
        gettext_lazy("PayScore order queried"),
        gettext_lazy("%(actor)s asked WeChat Pay about PayScore order %(order)s"),
    ),
    # members
    "member.erase": Action(
        gettext_lazy("Member's personal data erased"),
        gettext_lazy("%(actor)s erased the personal data of member %(member)s"),
    ),
    "member.retention_anonymise": Action(
        gettext_lazy("Members past retention erased"),
        gettext_lazy("%(actor)s erased the personal data of %(count)s members not seen for %(days)s days"),
    ),
    # merchant API
    "merchant_api.client_create": Action(
        gettext_lazy("API client created"),
        gettext_lazy("%(actor)s created the API client %(client)s for merchant %(merchant)s"),
    ),
    "merchant_api.client_revoke": Action(
        gettext_lazy("API client revoked"),
        gettext_lazy("%(actor)s revoked the API client %(client)s of merchant %(merchant)s"),
    ),
    # reconciliation
    "reconciliation.upload": Action(
        gettext_lazy("Bill imported"), gettext_lazy("%(actor)s imported the bill of %(date)s for merchant %(merchant)s")
    ),
    "reconciliation.explain": Action(
        gettext_lazy("Difference explained"),
        gettext_lazy("%(actor)s explained the difference of %(date)s on order %(payment)s"),
    ),
    "reconciliation.requery": Action(
        gettext_lazy("Order queried for a difference"),
        gettext_lazy("%(actor)s asked the channel about order %(payment)s for the difference of %(date)s"),
    ),
    # webhooks
    "webhook.create": Action(
        gettext_lazy("Webhook endpoint created"),
        gettext_lazy("%(actor)s created the webhook endpoint %(endpoint)s for merchant %(merchant)s"),
    ),
    "webhook.update": Action(
        gettext_lazy("Webhook endpoint changed"), gettext_lazy("%(actor)s changed the webhook endpoint %(endpoint)s")
    ),
    "webhook.rotate_secret": Action(
        gettext_lazy("Webhook secret rotated"),
        gettext_lazy("%(actor)s rotated the signing secret of the webhook endpoint %(endpoint)s"),
    ),
    "webhook.test": Action(
        gettext_lazy("Webhook test event sent"),
        gettext_lazy("%(actor)s sent a test event to the webhook endpoint %(endpoint)s"),
    ),
    "webhook.resend": Action(
        gettext_lazy("Webhook event sent again"),
        gettext_lazy("%(actor)s sent event %(event)s again to the webhook endpoint %(endpoint)s"),
    ),
    "webhook.resend_failed": Action(
        gettext_lazy("Failed webhook deliveries sent again"),
        gettext_lazy("%(actor)s sent %(count)s failed deliveries again to the webhook endpoint %(endpoint)s"),
    ),
    # alerts: the chat robots
    "alert_channel.create": Action(
        gettext_lazy("Alert robot added"), gettext_lazy("%(actor)s added the alert robot %(robot)s for %(owner)s")
    ),
    "alert_channel.enable": Action(
        gettext_lazy("Alert robot enabled"), gettext_lazy("%(actor)s enabled the alert robot %(robot)s")
    ),
    "alert_channel.disable": Action(
        gettext_lazy("Alert robot disabled"), gettext_lazy("%(actor)s disabled the alert robot %(robot)s")
    ),
    "alert_channel.delete": Action(
        gettext_lazy("Alert robot deleted"), gettext_lazy("%(actor)s deleted the alert robot %(robot)s")
    ),
    "alert_channel.test": Action(
        gettext_lazy("Alert robot tested"),
        gettext_lazy("%(actor)s sent a test message to the alert robot %(robot)s"),
    ),
}

UNKNOWN_ACTION = gettext_lazy("%(actor)s did %(action)s on %(object)s")

ACTORS = {"system": gettext_lazy("The system"), "cli": gettext_lazy("An operator on the command line")}

# The details' keys by name; the merchant and credentials forms name their own fields.
FIELDS: dict[str, str] = {
    **{name: field.label for name, field in MerchantForm.base_fields.items()},
    **{name: field.label for name, field in CredentialsForm.base_fields.items()},
    "address": gettext_lazy("Address"),
    "area_code": gettext_lazy("Area code"),
    "bill_date": gettext_lazy("Bill date"),
    "by_merchant": pgettext_lazy("audit", "Members erased per merchant"),
    "card_activated": gettext_lazy("Member card"),
    "certificates_added": pgettext_lazy("audit", "Platform certificates added"),
    "certificates_removed": pgettext_lazy("audit", "Expired platform certificates removed"),
    "changed": pgettext_lazy("audit", "Changes"),
    "client_id": gettext_lazy("Client ID"),
    "closes_at": gettext_lazy("Closes at"),
    "code": pgettext_lazy("audit", "Code"),
    "count": pgettext_lazy("audit", "Count"),
    "cutoff": pgettext_lazy("audit", "Not seen since"),
    "days": pgettext_lazy("audit", "Retention (days)"),
    "description": gettext_lazy("Description"),
    "device_id": gettext_lazy("Device ID"),
    "end_location": pgettext_lazy("audit", "End location"),
    "end_time": pgettext_lazy("audit", "End time"),
    "endpoint": gettext_lazy("Endpoint"),
    "event": gettext_lazy("Event"),
    "events": gettext_lazy("Events"),
    "fields": pgettext_lazy("audit", "Credentials changed"),
    "from": pgettext_lazy("audit", "Before"),
    "is_active": pgettext_lazy("audit", "Enabled"),
    "kind": pgettext_lazy("audit", "Kind"),
    "location": pgettext_lazy("audit", "Location"),
    "matched": gettext_lazy("Matched"),
    "name": gettext_lazy("Name"),
    "note": gettext_lazy("Note"),
    "old_valid_until": pgettext_lazy("audit", "Old secret valid until"),
    "opens_at": gettext_lazy("Opens at"),
    "out_order_no": gettext_lazy("Order no."),
    "out_refund_no": gettext_lazy("Refund no."),
    "out_trade_no": gettext_lazy("Order no."),
    "outcome": gettext_lazy("Outcome"),
    "paid_time": gettext_lazy("Paid at"),
    "post_discounts": pgettext_lazy("audit", "Discounts"),
    "post_payments": pgettext_lazy("audit", "Charges"),
    "reason": gettext_lazy("Reason"),
    "refund_fee": pgettext_lazy("audit", "Refund amount"),
    "refund_no": gettext_lazy("Refund no."),
    "result": gettext_lazy("Result"),
    "role": gettext_lazy("Role"),
    "rows": pgettext_lazy("audit", "Rows"),
    "since": pgettext_lazy("audit", "Failed since"),
    "start_location": pgettext_lazy("audit", "Start location"),
    "start_time": pgettext_lazy("audit", "Start time"),
    "status": gettext_lazy("Status"),
    "store_id": gettext_lazy("Store ID"),
    "time_range": pgettext_lazy("audit", "Service time"),
    "to": pgettext_lazy("audit", "After"),
    "tokens_deleted": pgettext_lazy("audit", "Access tokens deleted"),
    "total_amount": gettext_lazy("Total"),
    "type": pgettext_lazy("audit", "Kind"),
    "url": gettext_lazy("URL"),
    "username": gettext_lazy("Username"),
    "visit_count": gettext_lazy("Visits"),
    "wechat_cert_serial": pgettext_lazy("audit", "Merchant API certificate serial number"),
}

AMOUNTS = frozenset({"amount", "refund_fee", "total_amount"})
# Identifiers and upstream codes, shown verbatim as code.
VERBATIM = frozenset(
    {
        "client_id",
        "code",
        "device_id",
        "event",
        "out_order_no",
        "out_refund_no",
        "out_trade_no",
        "refund_no",
        "store_id",
    }
)
MOMENTS = frozenset({"cutoff", "since", "old_valid_until"})  # ISO 8601 date-times
CHINA_TIMES = frozenset({"paid_time", "start_time", "end_time"})  # yyyyMMddHHmmss, China time

# Which kind of value a detail holds, per action: its code is shown by name.
VALUE_KINDS: dict[str, dict[str, str]] = {
    "merchant.create": {"channel": "channel"},
    "merchant.status": {"from": "merchant_status", "to": "merchant_status"},
    "merchant.test_connection": {"result": "connection"},
    "credentials.platform_keys_refresh": {"result": "platform_keys_refresh"},
    "staff.created": {"role": "role"},
    "staff.role_changed": {"from": "role", "to": "role"},
    "payment.refund": {"kind": "refund_kind"},
    "payment.refresh": {"status": "payment_status"},
    "payment.resolve": {"outcome": "payment_status"},
    "refund.resolve": {"outcome": "refund_resolution"},
    "payscore.sync": {"type": "payscore_sync"},
    "reconciliation.explain": {"kind": "difference_kind"},
    "reconciliation.requery": {"kind": "difference_kind"},
    "webhook.update": {"events": "webhook_event"},
}

PORTAL_LABELS: dict[str, Mapping[str, str]] = {
    "channel": dict(Merchant.Channel.choices),
    "merchant_status": dict(Merchant.Status.choices),
    "role": dict(StaffMembership.Role.choices),
    "connection": {
        "OK": gettext_lazy("credentials accepted"),
        "NOT_ACCEPTED": gettext_lazy("credentials not accepted"),
        "UNREACHABLE": gettext_lazy("channel unreachable"),
        "NOT_CONFIGURED": gettext_lazy("no usable credentials"),
        "INCONCLUSIVE": gettext_lazy("inconclusive"),
    },
    "payscore_sync": {"Order_Paid": gettext_lazy("Paid through another channel")},
    "platform_keys_refresh": {
        "OK": gettext_lazy("downloaded and verified"),
        "FAILED": gettext_lazy("failed"),
        "NO_CERTIFICATES": gettext_lazy("no certificates any more: the public key is used"),
    },
}


@dataclass(frozen=True)
class Line:
    """An audit entry as the console shows it: the sentence (HTML, every value escaped) and the labelled details."""

    entry: AuditLog
    sentence: SafeString
    fields: list[tuple[str, str]]


def action_name(action: str) -> str:
    return str(ACTIONS[action].name) if action in ACTIONS else action


def audit_lines(entries: Iterable[AuditLog], *, labels: Labels | None = None) -> list[Line]:
    """The entries (with `actor`, `merchant` and `provider` selected) in sentences. Devices and stores are read in
    one query each, by the ids the entries name."""
    entries = list(entries)
    reader = _Reader(entries, {**PORTAL_LABELS, **(labels or {})})
    return [Line(entry=entry, sentence=reader.sentence(entry), fields=reader.fields(entry)) for entry in entries]


class _Reader:
    """Reads a page of entries: knows the devices, stores and merchants they name, and the names of the values."""

    def __init__(self, entries: list[AuditLog], labels: Labels) -> None:
        self.labels = labels
        self.devices = _by_pk(Device.objects.select_related("store"), entries, "Device")
        self.stores = _by_pk(Store.objects.all(), entries, "Store")
        merchant_ids = {pk for entry in entries for pk in _details(entry).get("by_merchant") or {}}
        self.merchants = {
            str(pk): name for pk, name in Merchant.objects.filter(pk__in=_ints(merchant_ids)).values_list("pk", "name")
        }

    def sentence(self, entry: AuditLog) -> SafeString:
        values = self._placeholders(entry)
        if entry.action in ACTIONS:
            return _fill(str(ACTIONS[entry.action].sentence), values)
        values["action"] = format_html("<code>{}</code>", entry.action)
        values["object"] = f"{entry.object_type} {entry.object_id}"
        return _fill(str(UNKNOWN_ACTION), values)

    def _placeholders(self, entry: AuditLog) -> dict[str, object]:
        details = _details(entry)
        device = self.devices.get(entry.object_id) if entry.object_type == "Device" else None
        store = device.store if device else (self.stores.get(entry.object_id) if entry.object_type == "Store" else None)
        merchant = entry.merchant.name if entry.merchant else ""
        endpoint = details.get("url") or (f"#{details['endpoint']}" if "endpoint" in details else "")
        changed_to = self._value(entry, "to", details.get("to"))  # the new status or role
        return {
            "actor": _actor(entry),
            "merchant": merchant or "—",
            "owner": merchant or (entry.provider.name if entry.provider else "—"),
            "device": device.device_id if device else details.get("device_id") or f"#{entry.object_id}",
            "store": store.name if store else details.get("name") or details.get("store_id") or f"#{entry.object_id}",
            "payment": details.get("out_trade_no", "—"),
            "refund": details.get("out_refund_no", "—"),
            "order": details.get("out_order_no", "—"),
            "user": details.get("username", "—"),
            "client": details.get("name", "—"),
            "robot": details.get("name", "—"),
            "member": f"#{entry.object_id}",
            "endpoint": endpoint or "—",
            "event": details.get("event", "—"),
            "date": details.get("bill_date", "—"),
            "count": details.get("count", "—"),
            "days": details.get("days", "—"),
            "amount": fen(details.get("refund_fee", details.get("total_amount"))),
            "status": changed_to,
            "role": changed_to if "to" in details else self._value(entry, "role", details.get("role")),
            "outcome": self._value(entry, "outcome", details.get("outcome")),
            "result": self._value(entry, "result", details.get("result")),
        }

    def fields(self, entry: AuditLog) -> list[tuple[str, str]]:
        # In the order of their keys: PostgreSQL's jsonb keeps its own order, not the one they were written in.
        found = []
        for key, value in sorted(_details(entry).items()):
            if isinstance(value, Mapping) and value and all(_is_change(change) for change in value.values()):
                found.extend(
                    self._field(entry, name, change) for name, change in sorted(value.items())
                )  # {"changed": …}
            else:
                found.append(self._field(entry, key, value))
        return found

    def _field(self, entry: AuditLog, key: str, value) -> tuple[str, str]:
        text = self._value(entry, key, value)
        return str(FIELDS.get(key, key)), format_html("<code>{}</code>", text) if key in VERBATIM else text

    def _value(self, entry: AuditLog, key: str, value) -> str:
        """A detail's value as text: names for codes, yuan for fen, China time for moments, lists and nested objects
        spelled out (never a raw dict)."""
        if value is None or value in ("", [], {}):
            return "—"
        kind = VALUE_KINDS.get(entry.action, {}).get(key)
        if _is_change(value):
            return format_html("{} → {}", self._value(entry, key, value["from"]), self._value(entry, key, value["to"]))
        if isinstance(value, bool):
            return _("Yes") if value else _("No")
        if isinstance(value, list):
            return _one_per_line(self._value(entry, key, item) for item in value)
        if key == "by_merchant" and isinstance(value, Mapping):
            return _one_per_line(f"{self.merchants.get(str(pk), f'#{pk}')}: {count}" for pk, count in value.items())
        if isinstance(value, Mapping):
            if "name" in value and "amount" in value:  # a PayScore line: name, amount, description
                line = f"{value['name']} {fen(value['amount'])}"
                return f"{line} ({value['description']})" if value.get("description") else line
            return _one_per_line(
                format_html("{}: {}", FIELDS.get(k, k), self._value(entry, k, v)) for k, v in value.items()
            )
        if kind:
            return str(self.labels.get(kind, {}).get(value, value))
        if key == "fields":
            return str(FIELDS.get(value, value))
        if key in AMOUNTS and isinstance(value, int):
            return fen(value)
        if key in MOMENTS:
            return _moment(str(value))
        if key in CHINA_TIMES:
            return _china_time(str(value))
        if key == "endpoint":
            return f"#{value}"
        return str(value)


def _fill(template: str, values: Mapping[str, object]) -> SafeString:
    """The translated template (trusted) with every value escaped (a value already safe, e.g. <code>, kept)."""
    return mark_safe(escape(template) % {key: conditional_escape(value) for key, value in values.items()})


def _one_per_line(texts: Iterable[str]) -> SafeString:
    return format_html_join(mark_safe("<br>"), "{}", ((text,) for text in texts))


def _details(entry: AuditLog) -> dict:
    return entry.details if isinstance(entry.details, dict) else {}


def _is_change(value) -> bool:
    return isinstance(value, Mapping) and set(value) == {"from", "to"}


def _actor(entry: AuditLog) -> str | SafeString:
    """The person by their full name (their username on hover), else the recorded label (the system, the command
    line, an API client)."""
    user = entry.actor
    if user is not None and user.first_name:
        return format_html('<span title="{}">{}</span>', user.get_username(), user.first_name)
    return str(ACTORS.get(entry.actor_label, entry.actor_label))


def _ints(values: Iterable) -> list[int]:
    return [int(value) for value in values if str(value).isdigit()]


def _by_pk(queryset, entries: list[AuditLog], object_type: str) -> dict:
    ids = _ints(entry.object_id for entry in entries if entry.object_type == object_type)
    return {str(row.pk): row for row in queryset.filter(pk__in=ids)} if ids else {}


def _moment(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _china_time(text: str) -> str:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return text
