"""The fault run's invariants, as pure functions over plain rows (tested in tests/bench/test_invariants.py).

`ours` are the product's payments and refunds, `ledger` is `sandbox.services.sandbox_ledger()`: the
upstream's own order book, which records what really happened whatever answers were lost on the way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNSETTLED = {"PAYING", "REVERSING"}
OPEN_REFUNDS = {"PENDING", "PROCESSING"}
# What the user should be out of pocket, by our status.
KEEPS_MONEY = {"SUCCESS", "PARTIALLY_REFUNDED"}
RETURNS_MONEY = {"FAILED", "REVERSED", "REFUNDED"}
REVERSED_THERE = {"REVOKED", "CLOSED", "04", "03"}


@dataclass(frozen=True)
class PaymentRow:
    out_trade_no: str
    status: str
    total_fee: int
    refunded_fee: int = 0
    reserved_refund_fee: int = 0
    has_next_check: bool = False


@dataclass(frozen=True)
class RefundRow:
    out_trade_no: str
    refund_fee: int
    status: str
    has_next_check: bool = False


@dataclass
class Report:
    not_final: list[str] = field(default_factory=list)
    charged_there_failed_here: list[str] = field(default_factory=list)
    reversed_there_success_here: list[str] = field(default_factory=list)
    amount_differs: list[str] = field(default_factory=list)
    unknown_here_charged_there: list[str] = field(default_factory=list)
    double_charges: list[str] = field(default_factory=list)
    refunds_exceeding: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    attention_charged_there: list[str] = field(default_factory=list)

    @property
    def money_disagreements(self) -> int:
        return (
            len(self.charged_there_failed_here)
            + len(self.reversed_there_success_here)
            + len(self.amount_differs)
            + len(self.unknown_here_charged_there)
        )

    def counts(self) -> dict[str, int]:
        return {
            "orders not final after the resolution window": len(self.not_final),
            "money disagreements with the upstream's ledger": self.money_disagreements,
            "  charged there, FAILED here": len(self.charged_there_failed_here),
            "  reversed there, SUCCESS here": len(self.reversed_there_success_here),
            "  any fen of difference": len(self.amount_differs),
            "  charged there, unknown here": len(self.unknown_here_charged_there),
            "double charges for one out_trade_no": len(self.double_charges),
            "refunds exceeding payments": len(self.refunds_exceeding),
        }


def check(
    payments: Iterable[PaymentRow],
    refunds: Iterable[RefundRow],
    ledger: Mapping[str, Mapping[str, Any]],
    upstream_orders_per_number: Mapping[str, int] | None = None,
) -> Report:
    report = Report()
    payments = list(payments)
    ours = {p.out_trade_no: p for p in payments}
    refunded_ok: Counter[str] = Counter()
    for refund in refunds:
        if refund.status in OPEN_REFUNDS or refund.has_next_check:
            report.not_final.append(f"refund of {refund.out_trade_no} {refund.status}")
        if refund.status == "SUCCESS":
            refunded_ok[refund.out_trade_no] += refund.refund_fee

    for p in payments:
        there = ledger.get(p.out_trade_no)
        charged_there = int(there["charged"]) if there else 0
        if p.status in UNSETTLED or p.has_next_check:
            report.not_final.append(f"{p.out_trade_no} {p.status}")
            continue
        if p.status == "ATTENTION":
            report.attention.append(p.out_trade_no)
            if charged_there:
                report.attention_charged_there.append(p.out_trade_no)
            continue
        if (
            p.refunded_fee > p.total_fee
            or p.reserved_refund_fee > p.total_fee
            or refunded_ok[p.out_trade_no] > p.total_fee
            or (there and int(there.get("refunded", 0)) > p.total_fee)
            or charged_there < 0
        ):
            report.refunds_exceeding.append(p.out_trade_no)
        if p.status in KEEPS_MONEY:
            expected = p.total_fee - p.refunded_fee
        elif p.status in RETURNS_MONEY:
            expected = 0
        else:
            report.not_final.append(f"{p.out_trade_no} {p.status}")
            continue
        if charged_there == expected and not (there and int(there.get("refund_pending", 0))):
            continue
        if p.status == "FAILED" and charged_there > 0:
            report.charged_there_failed_here.append(p.out_trade_no)
        elif p.status in KEEPS_MONEY and there and str(there.get("state")) in REVERSED_THERE:
            report.reversed_there_success_here.append(p.out_trade_no)
        else:
            report.amount_differs.append(f"{p.out_trade_no}: ours {expected}, theirs {charged_there} ({p.status})")

    for number, there in ledger.items():
        if number not in ours and there.get("channel") != "payscore" and int(there["charged"]) != 0:
            report.unknown_here_charged_there.append(number)
    for number, count in (upstream_orders_per_number or {}).items():
        if count > 1:
            report.double_charges.append(number)
    return report


# --- webhooks: what the merchants' systems were sent --------------------------------------------------------------

# The event a payment's final status implies it was sent (a refunded payment was SUCCESS first), and a refund's.
PAYMENT_EVENT_OF = {
    "SUCCESS": "payment.succeeded",
    "PARTIALLY_REFUNDED": "payment.succeeded",
    "REFUNDED": "payment.succeeded",
    "FAILED": "payment.failed",
    "REVERSED": "payment.reversed",
    "ATTENTION": "payment.attention",
}
REFUND_EVENT_OF = {"SUCCESS": "refund.succeeded", "FAILED": "refund.failed"}


@dataclass(frozen=True)
class WebhookDeliveryRow:
    """One delivery as the database has it at the end: its endpoint (the receiver's path), its event, the payment the
    event is about (its out_trade_no, from the event's data) and the event's creation order (its primary key)."""

    endpoint: str
    event_id: str
    type: str
    out_trade_no: str
    status: str
    sequence: int = 0


@dataclass(frozen=True)
class ReceivedRow:
    """One request the receiver got, from its log: the answer is the status it sent ("200", "503", "400"),
    "timeout" (held, then closed without an answer) or "reset"; times are the receiver's clock (Unix seconds)."""

    endpoint: str
    event_id: str
    attempt: int
    answer: str
    received_at: float
    answered_at: float
    signature_ok: bool = True

    @property
    def ok(self) -> bool:
        return self.answer.isdigit() and 200 <= int(self.answer) < 300


def expected_webhook_events(
    payments: Iterable[tuple[str, str]], refunds: Iterable[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    """(out_trade_no, final status) of the payments and of the refunds of merchants with a subscribed endpoint → the
    events that must exist: (out_trade_no, type) → how many at least."""
    expected: Counter[tuple[str, str]] = Counter()
    for number, status in payments:
        if status in PAYMENT_EVENT_OF:
            expected[(number, PAYMENT_EVENT_OF[status])] = 1
    for number, status in refunds:
        if status in REFUND_EVENT_OF:
            expected[(number, REFUND_EVENT_OF[status])] += 1
    return expected


@dataclass
class WebhookReport:
    not_delivered: list[str] = field(default_factory=list)
    missing_events: list[str] = field(default_factory=list)
    seen_twice_after_recorded_2xx: list[str] = field(default_factory=list)
    at_least_once_duplicates: list[str] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    refund_before_payment: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """The invariants (each must be 0); the at-least-once duplicates are reported apart (`info`)."""
        return {
            "webhook_events_not_delivered": len(self.not_delivered) + len(self.missing_events),
            "  deliveries not DELIVERED after the receiver recovered": len(self.not_delivered),
            "  events missing for payments' and refunds' final states": len(self.missing_events),
            "webhook_2xx_seen_twice (sent again after a 2xx we recorded)": len(self.seen_twice_after_recorded_2xx),
            "webhook deliveries with a bad signature": len(self.bad_signatures),
            "webhook refund events before their payment's 2xx": len(self.refund_before_payment),
        }

    def info(self) -> dict[str, int]:
        return {"webhook_at_least_once_duplicates (a 2xx we never recorded)": len(self.at_least_once_duplicates)}


def check_webhooks(
    deliveries: Iterable[WebhookDeliveryRow],
    received: Iterable[ReceivedRow],
    expected: Mapping[tuple[str, str], int],
    recorded_2xx: set[tuple[str, str, int]],
) -> WebhookReport:
    """`deliveries`: every delivery once the backlog drained after the receiver recovered; `received`: the
    receiver's log; `expected`: expected_webhook_events(); `recorded_2xx`: (endpoint, event_id, attempt number) of
    every attempt our database logged with a 2xx answer.

    An event received again after the receiver answered it 2xx is a duplicate: `webhook_2xx_seen_twice` when our
    database had recorded that 2xx (it should never have been sent again), an at-least-once duplicate when it had
    not (a worker killed between the answer and the record, or the sender's timeout just as the receiver answered).
    A refund's event must not arrive at an endpoint before every earlier event of its payment there was answered
    2xx."""
    report = WebhookReport()
    deliveries = list(deliveries)
    by_event: dict[tuple[str, str], list[ReceivedRow]] = {}
    for row in sorted(received, key=lambda r: r.received_at):
        if not row.signature_ok:
            report.bad_signatures.append(f"{row.endpoint} {row.event_id} attempt {row.attempt}")
            continue
        by_event.setdefault((row.endpoint, row.event_id), []).append(row)

    for d in deliveries:
        if d.status != "DELIVERED":
            report.not_delivered.append(f"{d.endpoint} {d.event_id} {d.type} {d.out_trade_no} {d.status}")
    present: Counter[tuple[str, str]] = Counter({key: len(ids) for key, ids in _distinct_events(deliveries).items()})
    for (number, kind), count in sorted(expected.items()):
        if present[(number, kind)] < count:
            report.missing_events.append(f"{number} {kind}: {present[(number, kind)]} of {count}")

    for (endpoint, event_id), rows in by_event.items():
        for row in rows:
            earlier_2xx = [r for r in rows if r is not row and r.ok and r.answered_at <= row.received_at]
            if not earlier_2xx:
                continue
            recorded = [r for r in earlier_2xx if (endpoint, event_id, r.attempt) in recorded_2xx]
            what = f"{endpoint} {event_id} attempt {row.attempt} after a 2xx to attempt {earlier_2xx[0].attempt}"
            (report.seen_twice_after_recorded_2xx if recorded else report.at_least_once_duplicates).append(what)

    first_arrival = {key: rows[0].received_at for key, rows in by_event.items()}
    first_2xx = {
        key: min(r.answered_at for r in rows if r.ok) for key, rows in by_event.items() if any(r.ok for r in rows)
    }
    payment_events: dict[tuple[str, str], list[WebhookDeliveryRow]] = {}
    for d in deliveries:
        if d.type.startswith("payment."):
            payment_events.setdefault((d.endpoint, d.out_trade_no), []).append(d)
    for refund in deliveries:
        arrived = first_arrival.get((refund.endpoint, refund.event_id))
        if not refund.type.startswith("refund.") or arrived is None:
            continue
        for payment in payment_events.get((refund.endpoint, refund.out_trade_no), []):
            answered = first_2xx.get((payment.endpoint, payment.event_id))
            if payment.sequence < refund.sequence and (answered is None or answered > arrived):
                report.refund_before_payment.append(
                    f"{refund.endpoint} {refund.out_trade_no}: {refund.type} {refund.event_id} before "
                    f"{payment.type} {payment.event_id}"
                )
    return report


def _distinct_events(deliveries: list[WebhookDeliveryRow]) -> dict[tuple[str, str], set[str]]:
    events: dict[tuple[str, str], set[str]] = {}
    for d in deliveries:
        events.setdefault((d.out_trade_no, d.type), set()).add(d.event_id)
    return events


@dataclass
class AlertReport:
    not_alerted: list[str] = field(default_factory=list)
    alerted_twice: list[str] = field(default_factory=list)
    alerted_never_in_attention: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "ATTENTION payments and refunds not alerted": len(self.not_alerted),
            "ATTENTION payments and refunds alerted more than once": len(self.alerted_twice),
            "alerts for payments and refunds that were never in ATTENTION": len(self.alerted_never_in_attention),
        }


def check_alerts(in_attention: Iterable[str], ever_in_attention: Iterable[str], alerted: Iterable[str]) -> AlertReport:
    """`in_attention`: what is in ATTENTION at the end ("payment:42", "refund:7"); `ever_in_attention`: what was in
    ATTENTION at some point (the state changes and the refunds that reached it); `alerted`: the subject of each
    ATTENTION alert raised, one entry per alert. Every one now in ATTENTION is alerted exactly once; nothing that
    settled without ever being in ATTENTION is alerted."""
    raised = Counter(alerted)
    ever = set(ever_in_attention)
    return AlertReport(
        not_alerted=sorted(subject for subject in set(in_attention) if not raised[subject]),
        alerted_twice=sorted(subject for subject, n in raised.items() if n > 1),
        alerted_never_in_attention=sorted(subject for subject in raised if subject not in ever),
    )
