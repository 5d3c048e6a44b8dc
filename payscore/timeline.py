"""A PayScore service order's timeline for people: each event (ServiceOrderEvent) as a sentence in the console's
language, with amounts in yuan and states by name, the codes labelled beside it (as payments.timeline does)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from payments.timeline import Line, china_datetime, code_text, outcome_label
from payscore.models import ServiceOrder, ServiceOrderEvent
from portal.templatetags.console import fen

# Codes the PayScore services record themselves (besides payments.timeline.OUR_CODES).
OUR_CODES = {
    "NOT_APPLIED": gettext_lazy("WeChat Pay did not act on the last call; send it again."),
    "OPENID_MISMATCH": gettext_lazy("The face belongs to another user than the order's."),
    "NO_UNIONID": gettext_lazy("WeChat Pay returned no unionid for this user."),
    "INTERNAL_ERROR": gettext_lazy("The lookup failed on our side; see the server log."),
    "UNKNOWN": gettext_lazy("WeChat Pay's answer was lost; it is being confirmed."),
    "TRANSIENT": gettext_lazy("The call failed; it will be tried again."),
}

NOTIFICATIONS = {
    "PAYSCORE.USER_CONFIRM": gettext_lazy("the user confirmed the order"),
    "PAYSCORE.USER_PAID": gettext_lazy("the user paid"),
}

# How the services write a state in an event: STATE, STATE/DESCRIPTION, either followed by " (COLLECTION)".
_STATE = re.compile(r"^(?P<state>[A-Z_]+)(?:/(?P<description>[A-Z_]+))?(?: \((?P<collection>[A-Z_]+)\))?$")


def _label(choices, value: str) -> str:
    return str(choices(value).label) if value in choices.values else value


def state_text(text: str) -> str:
    """A state as an event records it, by its names: e.g. DOING/USER_CONFIRM (USER_PAYING) → "In service · User
    confirmed · Collecting". Text that is no such state stays as it is."""
    found = _STATE.match(text)
    if not found:
        return text or "—"
    parts = [_label(ServiceOrder.State, found["state"])]
    if found["description"]:
        parts.append(_label(ServiceOrder.StateDescription, found["description"]))
    if found["collection"]:
        parts.append(_label(ServiceOrder.Collection, found["collection"]))
    return " · ".join(parts)


def _details(event: ServiceOrderEvent) -> dict:
    return event.response if isinstance(event.response, dict) else {}


def _created(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    return _("Service order created for %(service)s (%(risk_fund)s, at most %(amount)s)") % {
        "service": order.service_introduction,
        "risk_fund": order.risk_fund_label,
        "amount": fen(order.risk_fund.get("amount")),
    }


def _state(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    return _("Status changed: %(from)s → %(to)s") % {
        "from": state_text(event.from_state),
        "to": state_text(event.to_state),
    }


def _notification(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    kind = NOTIFICATIONS.get(event.code, event.code)
    return _("Notification from WeChat Pay: %(kind)s") % {"kind": kind}


def _not_applied(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    return _("WeChat Pay did not act on the %(action)s call; send it again.") % {
        "action": _label(ServiceOrder.PendingAction, event.message),
    }


def _complete_requested(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    return _("Completion requested for %(amount)s") % {"amount": fen(_details(event).get("total_amount"))}


def _sync_requested(event: ServiceOrderEvent, order: ServiceOrder) -> str:
    return _("Asked to record the order as paid through another channel at %(time)s") % {
        "time": china_datetime(_details(event).get("paid_time", "")),
    }


def _fixed(text) -> Callable[[ServiceOrderEvent, ServiceOrder], str]:
    return lambda event, order: str(text)


SENTENCES: dict[str, Callable[[ServiceOrderEvent, ServiceOrder], str]] = {
    "created": _created,
    "create": _fixed(gettext_lazy("Created the service order at WeChat Pay")),
    "query": _fixed(gettext_lazy("Queried the service order at WeChat Pay")),
    "complete": _fixed(gettext_lazy("Completed the service order at WeChat Pay")),
    "cancel": _fixed(gettext_lazy("Cancelled the service order at WeChat Pay")),
    "sync": _fixed(gettext_lazy("Told WeChat Pay the order was paid through another channel")),
    "facemch": _fixed(gettext_lazy("Looked up the face-pay user's unionid at WeChat Pay")),
    "complete.requested": _complete_requested,
    "cancel.requested": _fixed(gettext_lazy("Cancellation requested")),
    "sync.requested": _sync_requested,
    "state": _state,
    "notification": _notification,
    "pending.not_applied": _not_applied,
}


def _message(event: ServiceOrderEvent) -> str:
    """What follows the sentence: the cancel's reason, the channel's message (ours translated when the catalogue
    knows it); nothing the sentence already says."""
    if event.action == "cancel.requested":
        reason = _details(event).get("reason", "")
        return _("Reason: %(reason)s") % {"reason": reason} if reason else ""
    if event.action == "pending.not_applied" or not event.message:
        return ""
    return _(event.message)


def line(event: ServiceOrderEvent, order: ServiceOrder) -> Line:
    """The event as a sentence; an action without one (a future kind of event) reads as "Event <action>"."""
    describe = SENTENCES.get(event.action)
    sentence = describe(event, order) if describe else format_html("{} <code>{}</code>", _("Event"), event.action)
    upstream = _("Notification type") if event.action == "notification" else _("WeChat Pay code")
    label, message = code_text(event.code, _message(event), upstream=upstream, ours=OUR_CODES)
    return Line(event=event, sentence=sentence, outcome=outcome_label(event.outcome), code_label=label, message=message)


def order_timeline(order: ServiceOrder, events: Iterable[ServiceOrderEvent]) -> list[Line]:
    return [line(event, order) for event in events]


def order_error(order: ServiceOrder) -> tuple[str, str]:
    """(label, message) of the order's last error, as the timeline shows an event's code."""
    message = _(order.last_error_message) if order.last_error_message else ""
    return code_text(order.last_error_code, message, upstream=_("WeChat Pay code"), ours=OUR_CODES)
