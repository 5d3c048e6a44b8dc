"""A payment's timeline for people: each event (PaymentEvent) as a sentence in the console's language, with amounts
in yuan and statuses by name. The codes stay beside the sentence, labelled ("WeChat Pay code USERPAYING"), for the
operators who compare them with the channel's documentation. PayScore's timeline (payscore.timeline) reuses the
outcome and code helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from payments.gateways.base import Outcome
from payments.models import Payment, PaymentEvent, PaymentStatus, Refund
from portal.models import Merchant
from portal.templatetags.console import fen

OUTCOMES = {
    Outcome.SUCCESS: gettext_lazy("Succeeded"),
    Outcome.REJECTED: gettext_lazy("Refused"),
    Outcome.TRANSIENT: gettext_lazy("Failed, to be tried again"),
    Outcome.UNKNOWN: gettext_lazy("Outcome unknown"),
}

# Codes this product records itself (the gateways' transport trouble, the services' own checks), never the channel's.
OUR_CODES = {
    "TIMEOUT": gettext_lazy("The channel did not answer in time."),
    "CONNECT_ERROR": gettext_lazy("The channel could not be reached."),
    "NETWORK_ERROR": gettext_lazy("The connection to the channel broke off."),
    "UNPARSEABLE": gettext_lazy("The channel's answer could not be read."),
    "BAD_SIGNATURE": gettext_lazy("The signature of the channel's answer did not verify."),
    "MISMATCH": gettext_lazy("The channel answered about another order."),
    "CHANNEL_NOT_CONFIGURED": gettext_lazy("This merchant has no channel credentials configured."),
    "LOCAL_ERROR": gettext_lazy("The call failed on our side; see the server log."),
    "TRANSACTION_ID_CONFLICT": gettext_lazy("The channel's transaction id belongs to another order."),
}

# What a person recorded when settling a refund by hand (payments.services.REFUND_RESOLUTIONS).
REFUND_RESOLUTIONS = {
    "SUCCESS": Refund.Status.SUCCESS.label,
    "FAILED": Refund.Status.FAILED.label,
    "RETRY": gettext_lazy("Sent again under the same refund number"),
}
# Actions whose code is what a person chose (the sentence names it), not a channel's answer.
CHOSEN_CODES = frozenset({"refund_resolve"})


@dataclass(frozen=True)
class Line:
    """One timeline entry: the event (a PaymentEvent, or PayScore's ServiceOrderEvent), what it says, its outcome's
    name, its code's label (empty without a code) and the message that follows the sentence."""

    event: Any
    sentence: str
    outcome: str
    code_label: str
    message: str


def outcome_label(outcome: str) -> str:
    return str(OUTCOMES[outcome]) if outcome in OUTCOMES else outcome


def code_text(code: str, message: str, *, upstream: str, ours: dict | None = None) -> tuple[str, str]:
    """(label, message) for an event's code and message. One of our codes is labelled as such and its message (often
    an exception's name) replaced by what the code means; any other is the channel's (`upstream`: its label, e.g.
    "WeChat Pay code") and keeps the channel's message. No code: no label."""
    known = {**OUR_CODES, **(ours or {})}
    if code in known:
        return _("System code"), str(known[code]) if message else ""
    if code.startswith("HTTP_"):
        return _("System code"), _("The channel answered with HTTP status %(status)s.") % {"status": code[5:]}
    return (upstream if code else ""), message


def china_datetime(text: str) -> str:
    """yyyyMMddHHmmss (China time, as the channels write it) → YYYY-MM-DD HH:MM:SS; anything else as it is."""
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        return text


def status_label(status: str) -> str:
    return str(PaymentStatus(status).label) if status in PaymentStatus.values else status


# --- the payment's events ------------------------------------------------------------------------------------------


def _channel(payment: Payment) -> str:
    return _("UMF") if payment.channel == Merchant.Channel.UMPAY else _("WeChat Pay")


def _upstream(payment: Payment) -> str:
    return _("UMF code") if payment.channel == Merchant.Channel.UMPAY else _("WeChat Pay code")


def _refund_no(event: PaymentEvent) -> str:
    return event.refund.out_refund_no if event.refund else ""


def _created(event: PaymentEvent, payment: Payment) -> str:
    return _("Order created for %(amount)s") % {"amount": fen(payment.total_fee)}


def _micropay(event: PaymentEvent, payment: Payment) -> str:
    return _("Sent the payment of %(amount)s to %(channel)s") % {
        "amount": fen(payment.total_fee),
        "channel": _channel(payment),
    }


def _orderquery(event: PaymentEvent, payment: Payment) -> str:
    return _("Queried the order at %(channel)s") % {"channel": _channel(payment)}


def _reverse(event: PaymentEvent, payment: Payment) -> str:
    if event.refund:
        return _("Asked %(channel)s to reverse the order for refund %(refund_no)s") % {
            "channel": _channel(payment),
            "refund_no": _refund_no(event),
        }
    return _("Asked %(channel)s to reverse the order") % {"channel": _channel(payment)}


def _refund(event: PaymentEvent, payment: Payment) -> str:
    return _("Sent refund %(refund_no)s of %(amount)s to %(channel)s") % {
        "refund_no": _refund_no(event),
        "amount": fen(event.refund.refund_fee if event.refund else None),
        "channel": _channel(payment),
    }


def _refundquery(event: PaymentEvent, payment: Payment) -> str:
    return _("Queried refund %(refund_no)s at %(channel)s") % {
        "refund_no": _refund_no(event),
        "channel": _channel(payment),
    }


def _notification(event: PaymentEvent, payment: Payment) -> str:
    if event.refund:
        return _("Notification from %(channel)s about refund %(refund_no)s") % {
            "channel": _channel(payment),
            "refund_no": _refund_no(event),
        }
    return _("Notification from %(channel)s") % {"channel": _channel(payment)}


def _state(event: PaymentEvent, payment: Payment) -> str:
    return _("Status changed: %(from)s → %(to)s") % {
        "from": status_label(event.from_status) if event.from_status else "—",
        "to": status_label(event.to_status),
    }


def _transaction_id_conflict(event: PaymentEvent, payment: Payment) -> str:
    details = event.response if isinstance(event.response, dict) else {}
    other = details.get("other_payment") or {}
    return _(
        "The channel's transaction id %(transaction_id)s already belongs to order %(other)s: a person must check "
        "which order was paid."
    ) % {
        "transaction_id": details.get("transaction_id", ""),
        "other": other.get("out_trade_no") or _("another order"),
    }


def _refund_created(event: PaymentEvent, payment: Payment) -> str:
    return _("Refund %(refund_no)s of %(amount)s requested") % {
        "refund_no": _refund_no(event),
        "amount": fen(event.refund.refund_fee if event.refund else None),
    }


def _refund_resolve(event: PaymentEvent, payment: Payment) -> str:
    return _("Refund %(refund_no)s settled by hand: %(outcome)s") % {
        "refund_no": _refund_no(event),
        "outcome": REFUND_RESOLUTIONS.get(event.code, event.code),
    }


SENTENCES: dict[str, Callable[[PaymentEvent, Payment], str]] = {
    "created": _created,
    "micropay": _micropay,
    "orderquery": _orderquery,
    "reverse": _reverse,
    "refund": _refund,
    "refundquery": _refundquery,
    "notification": _notification,
    "state": _state,
    "transaction_id.conflict": _transaction_id_conflict,
    "refund.created": _refund_created,
    "refund_resolve": _refund_resolve,
}


def _message(event: PaymentEvent) -> str:
    """What follows the sentence: the reason of a state change or the channel's message (ours translated when the
    catalogue knows it), the refund's reason; nothing the sentence already says."""
    if event.action == "refund.created":
        reason = event.refund.reason if event.refund else ""
        return _("Reason: %(reason)s") % {"reason": reason} if reason else ""
    if event.action == "transaction_id.conflict" or not event.message:
        return ""
    return _(event.message)


def line(event: PaymentEvent, payment: Payment) -> Line:
    """The event as a sentence; an action without one (a future kind of event) reads as "Event <action>"."""
    describe = SENTENCES.get(event.action)
    sentence = describe(event, payment) if describe else format_html("{} <code>{}</code>", _("Event"), event.action)
    label, message = code_text(event.code, _message(event), upstream=_upstream(payment))
    if event.action in CHOSEN_CODES:
        label = ""
    return Line(event=event, sentence=sentence, outcome=outcome_label(event.outcome), code_label=label, message=message)


def payment_timeline(payment: Payment, events: Iterable[PaymentEvent]) -> list[Line]:
    return [line(event, payment) for event in events]


def payment_error(payment: Payment) -> tuple[str, str]:
    """(label, message) of the payment's last error, as the timeline shows an event's code."""
    message = _(payment.err_message) if payment.err_message else ""
    return code_text(payment.err_code, message, upstream=_upstream(payment))
