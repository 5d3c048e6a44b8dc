"""Reconciliation: a channel bill in, matched to the fen against our payments and refunds, the result recorded.

`reconcile_day` is the whole pipeline for one merchant and day (the beat job, the task's retries and the
`reconcile` command all run it): obtain the bill (download, or a file an operator gives), keep it with its SHA-256
(the same bill twice is one row; a changed bill a new version), parse it line by line, match every row and every
order of ours of that day, and record the day's totals, the differences and the orders carried to the next day —
all in one transaction, so a bill refused half-way leaves nothing but the record that it was refused.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from rest_framework.fields import DateTimeField

from payments import channels
from payments import services as payment_services
from payments.gateways.base import Outcome
from payments.gateways.umpay import CHINA_TZ
from payments.gateways.wechatpay_bill import BillError, BillRow, WechatBill, decompressed, lines_of
from payments.models import Payment, PaymentStatus, Refund
from portal.errors import InvalidInput, InvalidState
from portal.models import Merchant
from portal.services import audit_record
from webhooks.models import EventType
from webhooks.services import event_emit

from .models import Bill, CarriedOrder, DayResult, Difference, DifferenceKind

logger = logging.getLogger(__name__)
S = PaymentStatus
K = DifferenceKind
WECHAT_CHANNELS = (Merchant.Channel.WECHAT_DIRECT, Merchant.Channel.WECHAT_PROVIDER)
PAID = (S.SUCCESS, S.PARTIALLY_REFUNDED, S.REFUNDED)
UNSETTLED = (S.PAYING, S.REVERSING, S.ATTENTION)
REFUND_UNSETTLED = (Refund.Status.PENDING, Refund.Status.ATTENTION)
# 退款状态 on a refund row: the refund's state when WeChat accepted it (the bill is a snapshot, never updated).
REFUND_ACCEPTED = ("SUCCESS", "PROCESSING")


class BillProblem(Exception):
    """Why a day could not be reconciled: `template` (English, `str.format` fields) and `params` kept apart so the
    console can say it in the user's language; `str()` is the English text (logs, the command, the Bill row)."""

    def __init__(self, template: str, **params: object) -> None:
        self.template, self.params = template, params
        super().__init__(template.format(**params))


class BillRefused(BillProblem):
    """The bill was not imported (truncated, malformed, foreign, totals wrong): the message says why."""


class BillNotReady(BillProblem):
    """The channel has not published the bill yet, or the download failed: try again later."""


class BillUnavailable(BillProblem):
    """No bill can be had this way (the channel refused the download, or offers none): not retried."""


@dataclass
class DayReport:
    merchant: int
    bill_date: date
    status: str
    rows: int = 0
    matched: int = 0
    version: int | None = None
    differences: list[dict[str, Any]] = field(default_factory=list)
    carried: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"merchant": self.merchant, "rows": self.rows, "matched": self.matched, "differences": self.differences}


_datetime = DateTimeField()


def difference_output(difference: Difference) -> dict[str, Any]:
    """A difference as merchants' systems see it (webhook event data, the merchant API): amounts in fen."""
    return {
        "bill_date": difference.bill_date.isoformat(),
        "kind": difference.kind,
        "status": difference.status,
        "out_trade_no": difference.out_trade_no,
        "out_refund_no": difference.refund_no,
        "transaction_id": difference.transaction_id,
        "ours": difference.ours,
        "theirs": difference.theirs,
        "note": difference.note,
        "created_at": _datetime.to_representation(difference.created_at) if difference.created_at else None,
    }


def day_bounds(bill_date: date) -> tuple[datetime, datetime]:
    start = datetime.combine(bill_date, time(0), tzinfo=CHINA_TZ)
    return start, start + timedelta(days=1)


def merchants_with_bills():
    """Merchants whose channel offers a bill download (WeChat Pay v2, direct and service provider)."""
    return Merchant.objects.filter(status=Merchant.Status.ACTIVE, channel__in=WECHAT_CHANNELS).order_by("pk")


# --- the pipeline --------------------------------------------------------------------------------------------------


def reconcile_day(*, merchant: Merchant, bill_date: date, content: bytes | None = None) -> DayReport:
    """Reconcile one merchant's day. `content`: the bill's bytes given by an operator (else it is downloaded).

    Raises BillNotReady (try later), BillUnavailable (no bill this way) or BillRefused (recorded, nothing imported).
    """
    source = Bill.Source.FILE
    if content is None:
        if merchant.channel not in WECHAT_CHANNELS:
            raise BillUnavailable("UMF bills are not downloaded: give the file.")
        result = channels.download_bill(merchant=merchant, bill_date=bill_date.strftime("%Y%m%d"))
        if result.no_bill:
            return _record_no_bill(merchant, bill_date, result.message)
        if result.outcome is not Outcome.SUCCESS:
            message = f"{result.code}: {result.message}".strip(": ")
            if result.outcome is Outcome.REJECTED:
                raise BillUnavailable("The channel refused the bill download ({message}).", message=message)
            raise BillNotReady("The bill is not available yet ({message}).", message=message)
        content, source = result.content, Bill.Source.DOWNLOAD
    else:
        try:
            content = decompressed(content)
        except (OSError, EOFError):
            refused = BillRefused("not a readable gzip file")
            _record_refusal(merchant, bill_date, content, source, str(refused))
            raise refused from None
    if merchant.channel not in WECHAT_CHANNELS:
        refused = BillRefused("UMF's reconciliation file layout is not supported yet.")
        _record_refusal(merchant, bill_date, content, source, str(refused))
        raise refused
    try:
        with transaction.atomic():
            return _import_and_match(merchant, bill_date, content, source)
    except BillError as exc:
        _record_refusal(merchant, bill_date, content, source, str(exc))
        raise BillRefused(exc.template, **exc.params) from None


def _record_refusal(merchant: Merchant, bill_date: date, content: bytes, source: str, reason: str) -> Bill:
    digest = hashlib.sha256(content).hexdigest()
    known = Bill.objects.filter(
        merchant=merchant, bill_date=bill_date, status=Bill.Status.REFUSED, sha256=digest, reason=reason[:500]
    ).first()
    if known is not None:
        return known  # the same bad bill again: refused for the same reason, recorded once
    return Bill.objects.create(
        merchant=merchant,
        bill_date=bill_date,
        channel=merchant.channel,
        source=source,
        status=Bill.Status.REFUSED,
        sha256=digest,
        content_gzip=gzip.compress(content, compresslevel=6),
        size=len(content),
        reason=reason[:500],
    )


def _record_no_bill(merchant: Merchant, bill_date: date, message: str) -> DayReport:
    with transaction.atomic():
        _lock(merchant)
        latest = _latest(merchant, bill_date)
        if latest is None or latest.status != Bill.Status.NO_BILL:
            latest = Bill.objects.create(
                merchant=merchant,
                bill_date=bill_date,
                channel=merchant.channel,
                source=Bill.Source.DOWNLOAD,
                status=Bill.Status.NO_BILL,
                reason=message[:500],
            )
        report = _match(merchant, bill_date, latest, rows=iter(()), summary=None)
    return report


def _latest(merchant: Merchant, bill_date: date) -> Bill | None:
    return (
        Bill.objects.filter(merchant=merchant, bill_date=bill_date)
        .exclude(status=Bill.Status.REFUSED)
        .order_by("-id")
        .first()
    )


def _lock(merchant: Merchant) -> None:
    """One run per merchant at a time: a day's bill versions and differences are decided under this row lock. The
    merchant's webhook subscriptions are taken from the locked row (the caller's copy may predate an endpoint)."""
    locked = Merchant.objects.select_for_update().filter(pk=merchant.pk).values("webhook_event_types").first()
    if locked is not None:
        merchant.webhook_event_types = locked["webhook_event_types"]


def _import_and_match(merchant: Merchant, bill_date: date, content: bytes, source: str) -> DayReport:
    _lock(merchant)
    digest = hashlib.sha256(content).hexdigest()
    bill = Bill.objects.filter(
        merchant=merchant, bill_date=bill_date, bill_type="ALL", sha256=digest, status=Bill.Status.IMPORTED
    ).first()
    if bill is None:
        last = Bill.objects.filter(merchant=merchant, bill_date=bill_date, bill_type="ALL").aggregate(v=Max("version"))
        bill = Bill.objects.create(
            merchant=merchant,
            bill_date=bill_date,
            channel=merchant.channel,
            source=source,
            status=Bill.Status.IMPORTED,
            version=(last["v"] or 0) + 1,
            sha256=digest,
            content_gzip=gzip.compress(content, compresslevel=6),
            size=len(content),
        )
    parsed = WechatBill(lines_of(content))
    report = _match(merchant, bill_date, bill, rows=parsed.rows(), summary=parsed)
    if bill.rows != report.rows:
        bill.rows = report.rows
        bill.save(update_fields=["rows"])
    return report


_STATUS_TEXT = {status.value: status.value for status in PaymentStatus}

# --- matching ------------------------------------------------------------------------------------------------------

# Our side, kept as tuples (a 200,000-row day fits in a few tens of MB).
# payment: (pk, out_trade_no, transaction_id, total_fee, status, paid_at)
# refund:  (pk, out_refund_no, out_trade_no, payment_pk, refund_fee, status, kind)
_PAYMENT_FIELDS = ("pk", "out_trade_no", "transaction_id", "total_fee", "status", "paid_at")
_REFUND_FIELDS = ("pk", "out_refund_no", "payment__out_trade_no", "payment_id", "refund_fee", "status", "kind")


def _payment_json(p: tuple | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {
        "payment": p[0],
        "out_trade_no": p[1],
        "transaction_id": p[2],
        "total_fee": p[3],
        "status": p[4],
        "paid_at": p[5].astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if p[5] else None,
    }


def _refund_json(r: tuple | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"refund": r[0], "out_refund_no": r[1], "out_trade_no": r[2], "refund_fee": r[4], "status": r[5]}


def _row_json(row: BillRow) -> dict[str, Any]:
    data = {
        "line": row.line,
        "trade_time": row.trade_time.strftime("%Y-%m-%d %H:%M:%S"),
        "transaction_id": row.transaction_id,
        "out_trade_no": row.out_trade_no,
        "trade_state": row.trade_state,
        "total_fee": row.total_fee,
        "settlement_fee": row.settlement_fee,
        "fee": row.fee,
    }
    if row.is_refund:
        data.update(
            refund_id=row.refund_id,
            out_refund_no=row.out_refund_no,
            refund_fee=row.refund_fee,
            requested_refund_fee=row.requested_refund_fee,
            refund_status=row.refund_status,
        )
    return data


def _row_from_json(data: dict[str, Any], mch_id: str, sub_mch_id: str) -> BillRow:
    return BillRow(
        line=data["line"],
        trade_time=datetime.strptime(data["trade_time"], "%Y-%m-%d %H:%M:%S"),
        mch_id=mch_id,
        sub_mch_id=sub_mch_id,
        transaction_id=data["transaction_id"],
        out_trade_no=data["out_trade_no"],
        trade_state=data["trade_state"],
        settlement_fee=data["settlement_fee"],
        total_fee=data["total_fee"],
        refund_id=data.get("refund_id", ""),
        out_refund_no=data.get("out_refund_no", ""),
        refund_fee=data.get("refund_fee", 0),
        requested_refund_fee=data.get("requested_refund_fee", 0),
        coupon_refund_fee=0,
        refund_status=data.get("refund_status", ""),
        fee=data["fee"],
    )


def _expected_ids(merchant: Merchant) -> tuple[str, str]:
    """(商户号, 特约商户号) the merchant's bill must carry."""
    if merchant.channel == Merchant.Channel.WECHAT_PROVIDER:
        return merchant.provider.wechat_mch_id, merchant.sub_mch_id
    return merchant.mch_id, ""


class _Matcher:
    def __init__(self, merchant: Merchant, bill_date: date) -> None:
        self.merchant = merchant
        self.bill_date = bill_date
        self.start, self.end = day_bounds(bill_date)
        self.mch_id, self.sub_mch_id = _expected_ids(merchant)
        # A payment belongs to the day it was paid, or (never paid) the day it was made: order_time, the China
        # timestamp sent upstream when it was created.
        day_prefix = bill_date.strftime("%Y%m%d")
        in_day = Q(paid_at__gte=self.start, paid_at__lt=self.end) | Q(
            paid_at__isnull=True, order_time__startswith=day_prefix
        )
        self.payments: dict[str, tuple] = {}
        self.by_transaction: dict[str, str] = {}
        for p in Payment.objects.filter(in_day, merchant=merchant).values_list(*_PAYMENT_FIELDS).iterator(5000):
            self._add_payment(p)
        self.refunds: dict[str, tuple] = {}
        refunds = Refund.objects.filter(
            payment__merchant=merchant, kind=Refund.Kind.REFUND, order_time__startswith=day_prefix
        )
        for r in refunds.values_list(*_REFUND_FIELDS).iterator(5000):
            self.refunds[r[1]] = r
        self.seen_payments: set[str] = set()
        # Payment rows seen: (our pk, REVOKED?) as one int for rows of ours (a 200,000-row day holds no strings
        # here), (transaction id, state) for the rare row we do not know.
        self.seen_payment_rows: set[int | tuple[str, str]] = set()
        self.seen_refunds: set[str] = set()
        self.found: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.carried: dict[tuple[int, int | None], dict[str, Any]] = {}
        self.carried_in: set[str] = set()  # out_trade_no of orders carried from an earlier day, settled since
        self.rows = self.matched = self.payment_count = self.refund_count = 0

    def _add_payment(self, p: tuple) -> None:
        p = (*p[:4], _STATUS_TEXT.get(p[4], p[4]), p[5])  # one shared string per status, not one per row
        self.payments[p[1]] = p
        if p[2]:
            self.by_transaction[p[2]] = p[1]

    def _find_payment(self, row: BillRow) -> tuple | None:
        key = self.by_transaction.get(row.transaction_id) or row.out_trade_no
        found = self.payments.get(key)
        if found is None:
            # Paid (by our clock) on another day, or not ours at all: one lookup for the rare row outside the day.
            found = (
                Payment.objects.filter(merchant=self.merchant)
                .filter(Q(transaction_id=row.transaction_id) | Q(out_trade_no=row.out_trade_no))
                .values_list(*_PAYMENT_FIELDS)
                .first()
            )
            if found is not None:
                self._add_payment(found)
        return found

    def _find_refund(self, row: BillRow) -> tuple | None:
        found = self.refunds.get(row.out_refund_no)
        if found is None:
            found = (
                Refund.objects.filter(payment__merchant=self.merchant, out_refund_no=row.out_refund_no)
                .values_list(*_REFUND_FIELDS)
                .first()
            )
            if found is not None:
                self.refunds[found[1]] = found
        return found

    def difference(self, kind: str, *, out_trade_no: str, refund_no: str = "", **evidence: Any) -> None:
        self.found[(kind, out_trade_no, refund_no)] = evidence

    def carry(self, payment_pk: int, refund_pk: int | None, reason: str, row: BillRow | None) -> None:
        self.carried[(payment_pk, refund_pk)] = {"reason": reason, "theirs": _row_json(row) if row else None}

    # rows of the bill

    def check_foreign(self, row: BillRow) -> None:
        if row.mch_id != self.mch_id or row.sub_mch_id != self.sub_mch_id:
            raise BillError(
                "line {line}: the bill belongs to another merchant (商户号/特约商户号 differ)", line=row.line
            )
        day = row.trade_time.date()
        if (day != self.bill_date) if not row.is_refund else (day > self.bill_date):
            raise BillError(
                "line {line}: a row of {day} on the bill of {bill_date}",
                line=row.line, day=day.isoformat(), bill_date=self.bill_date.isoformat(),
            )  # fmt: skip

    def payment_row(self, row: BillRow) -> None:
        ours = self._find_payment(row)
        key = ours[0] * 2 + (row.trade_state == "REVOKED") if ours else (row.transaction_id, row.trade_state)
        if key in self.seen_payment_rows:
            self.difference(
                K.DUPLICATE_ROW,
                out_trade_no=row.out_trade_no,
                transaction_id=row.transaction_id,
                theirs=_row_json(row),
                ours=_payment_json(ours),
                payment=ours[0] if ours else None,
            )
            return
        self.seen_payment_rows.add(key)
        theirs = _row_json(row)
        if ours is None:
            kind = K.CHARGED_NOT_SUCCESSFUL if row.trade_state == "SUCCESS" else K.STATUS_DIFFERS
            self.difference(kind, out_trade_no=row.out_trade_no, transaction_id=row.transaction_id, theirs=theirs)
            return
        self.seen_payments.add(ours[1])
        status = ours[4]
        if status in UNSETTLED:
            self.carry(ours[0], None, f"{status} at the bill's cut-off", row)
            return
        evidence = {
            "transaction_id": row.transaction_id,
            "ours": _payment_json(ours),
            "theirs": theirs,
            "payment": ours[0],
        }
        agrees = True
        if row.trade_state == "SUCCESS" and status == S.FAILED:
            self.difference(K.CHARGED_NOT_SUCCESSFUL, out_trade_no=ours[1], **evidence)
            agrees = False
        elif (row.trade_state == "SUCCESS" and status == S.REVERSED) or (
            row.trade_state == "REVOKED" and status in PAID
        ):
            self.difference(K.STATUS_DIFFERS, out_trade_no=ours[1], **evidence)
            agrees = False
        if row.total_fee != ours[3]:
            self.difference(K.AMOUNT_DIFFERS, out_trade_no=ours[1], **evidence)
            agrees = False
        self.matched += agrees

    def refund_row(self, row: BillRow) -> None:
        ours = self._find_refund(row)
        if row.out_refund_no in self.seen_refunds:
            self.difference(
                K.DUPLICATE_ROW,
                out_trade_no=row.out_trade_no,
                refund_no=row.out_refund_no,
                transaction_id=row.transaction_id,
                theirs=_row_json(row),
                ours=_refund_json(ours),
                payment=ours[3] if ours else None,
                refund=ours[0] if ours else None,
            )
            return
        self.seen_refunds.add(row.out_refund_no)
        theirs = _row_json(row)
        common = {"out_trade_no": row.out_trade_no, "refund_no": row.out_refund_no, "theirs": theirs}
        if ours is None:
            self.difference(K.REFUND_MISSING_HERE, transaction_id=row.transaction_id, **common)
            return
        status = ours[5]
        if status in REFUND_UNSETTLED:
            self.carry(ours[3], ours[0], f"refund {status} at the bill's cut-off", row)
            return
        evidence = {**common, "ours": _refund_json(ours), "payment": ours[3], "refund": ours[0]}
        agrees = True
        accepted = row.refund_status in REFUND_ACCEPTED
        if (status == Refund.Status.FAILED and accepted) or (status == Refund.Status.SUCCESS and not accepted):
            self.difference(K.STATUS_DIFFERS, **evidence)
            agrees = False
        if row.requested_refund_fee != ours[4]:
            self.difference(K.REFUND_AMOUNT_DIFFERS, **evidence)
            agrees = False
        self.matched += agrees

    def row(self, row: BillRow, *, counted: bool = True) -> None:
        if counted:
            self.check_foreign(row)
            self.rows += 1
            if row.is_refund:
                self.refund_count += 1
            else:
                self.payment_count += 1
        if row.is_refund:
            self.refund_row(row)
        else:
            self.payment_row(row)

    # our side, after the bill

    def unseen(self) -> None:
        grace = timedelta(seconds=settings.RECONCILIATION_CUTOFF_GRACE_SECONDS)
        for p in self.payments.values():
            if p[1] in self.seen_payments:
                continue
            status, paid_at = p[4], p[5]
            if status in UNSETTLED:
                self.carry(p[0], None, f"{status} at the bill's cut-off", None)
            elif (
                status in PAID and paid_at is not None and (self.start <= paid_at < self.end or p[1] in self.carried_in)
            ):
                if paid_at >= self.end - grace and p[1] not in self.carried_in:
                    self.carry(p[0], None, "paid just before the cut-off: expected on the next day's bill", None)
                else:
                    self.difference(
                        K.MISSING_THERE, out_trade_no=p[1], transaction_id=p[2], ours=_payment_json(p), payment=p[0]
                    )
        for r in self.refunds.values():
            if r[1] in self.seen_refunds or r[6] != Refund.Kind.REFUND:
                continue
            if r[5] in (*REFUND_UNSETTLED, Refund.Status.PROCESSING):
                self.carry(r[3], r[0], f"refund {r[5]} at the bill's cut-off", None)
            elif r[5] == Refund.Status.SUCCESS:
                self.difference(
                    K.REFUND_MISSING_THERE,
                    out_trade_no=r[2],
                    refund_no=r[1],
                    ours=_refund_json(r),
                    payment=r[3],
                    refund=r[0],
                )


def _carried_in(matcher: _Matcher, merchant: Merchant, bill_date: date) -> list[CarriedOrder]:
    """Orders carried from earlier days that have settled since: matched in this run (with the bill row seen for
    them on their own day, if there was one)."""
    settled = []
    carried = CarriedOrder.objects.filter(merchant=merchant, bill_date__lt=bill_date, settled_on__isnull=True)
    for item in carried.select_related("payment", "refund"):
        payment, refund = item.payment, item.refund
        if refund is not None:
            if refund.status in REFUND_UNSETTLED or refund.status == Refund.Status.PROCESSING:
                continue
            matcher.refunds[refund.out_refund_no] = (
                refund.pk, refund.out_refund_no, payment.out_trade_no, payment.pk, refund.refund_fee, refund.status,
                refund.kind,
            )  # fmt: skip
        else:
            if payment.status in UNSETTLED:
                continue
            matcher._add_payment(
                (payment.pk, payment.out_trade_no, payment.transaction_id, payment.total_fee, payment.status,
                 payment.paid_at)
            )  # fmt: skip
        if item.theirs:
            matcher.row(_row_from_json(item.theirs, matcher.mch_id, matcher.sub_mch_id), counted=False)
        elif refund is None:
            # Not on its own day's bill: this day's bill is where it must be, whatever day our clock paid it.
            matcher.carried_in.add(payment.out_trade_no)
        settled.append(item)
    return settled


def _match(merchant: Merchant, bill_date: date, bill: Bill, *, rows, summary: WechatBill | None) -> DayReport:
    matcher = _Matcher(merchant, bill_date)
    settled = _carried_in(matcher, merchant, bill_date)
    for row in rows:
        matcher.row(row)
    matcher.unseen()
    now = timezone.now()

    # Differences: new ones recorded, known ones refreshed (a closed one seen again reopens), vanished ones closed.
    existing = {
        (d.kind, d.out_trade_no, d.refund_no): d
        for d in Difference.objects.filter(merchant=merchant, bill_date=bill_date)
    }
    created = []
    for key, evidence in matcher.found.items():
        kind, out_trade_no, refund_no = key
        values = {
            "transaction_id": evidence.get("transaction_id", ""),
            "payment_id": evidence.get("payment"),
            "refund_id": evidence.get("refund"),
            "ours": evidence.get("ours"),
            "theirs": evidence.get("theirs"),
            "last_bill": bill,
        }
        known = existing.get(key)
        if known is None:
            created.append(
                Difference(merchant=merchant, bill_date=bill_date, kind=kind, out_trade_no=out_trade_no,
                           refund_no=refund_no, first_bill=bill, **values)
            )  # fmt: skip
            continue
        for name, value in values.items():
            setattr(known, name, value)
        if known.status == Difference.Status.CLOSED:
            known.status, known.closed_at = Difference.Status.OPEN, None
        known.save()
    Difference.objects.bulk_create(created)
    for difference in created:
        event_emit(
            merchant=merchant,
            type=EventType.RECONCILIATION_DIFFERENCE,
            data=lambda difference=difference: difference_output(difference),
        )
        if difference.kind == K.CHARGED_NOT_SUCCESSFUL:
            # Money at risk: the user was charged for an order we do not hold as paid. Logged at ERROR for the
            # operators' log alerting (the console's queue and dashboard show it too).
            logger.error(
                "reconciliation: money at risk: merchant %s, %s, out_trade_no %s charged on the bill, %s here",
                merchant.pk, bill_date.isoformat(), difference.out_trade_no,
                (difference.ours or {}).get("status", "unknown"),
            )  # fmt: skip
    for key, known in existing.items():
        if key not in matcher.found and known.status != Difference.Status.CLOSED:
            known.status, known.closed_at = Difference.Status.CLOSED, now
            known.save(update_fields=["status", "closed_at", "updated_at"])

    # Carried orders: this day's set replaces what an earlier run of the same day carried.
    CarriedOrder.objects.filter(merchant=merchant, bill_date=bill_date, settled_on__isnull=True).delete()
    CarriedOrder.objects.bulk_create(
        CarriedOrder(merchant=merchant, bill_date=bill_date, payment_id=payment_pk, refund_id=refund_pk, **values)
        for (payment_pk, refund_pk), values in matcher.carried.items()
    )
    for item in settled:
        item.settled_on = bill_date
        item.save(update_fields=["settled_on"])

    stated = summary.summary if summary is not None else None
    open_count = (
        Difference.objects.filter(merchant=merchant, bill_date=bill_date)
        .exclude(status=Difference.Status.CLOSED)
        .count()
    )
    totals = {
        "bill": bill,
        "rows": matcher.rows,
        "matched": matcher.matched,
        "payment_count": matcher.payment_count,
        "refund_count": matcher.refund_count,
        "payment_total": stated.order_total if stated else 0,
        "settlement_total": stated.settlement_total if stated else 0,
        "refund_total": stated.refund_total if stated else 0,
        "fee_total": stated.fee_total if stated else 0,
        "net_settlement": (stated.settlement_total - stated.refund_total - stated.fee_total) if stated else 0,
        "open_differences": open_count,
        "carried": len(matcher.carried),
    }
    DayResult.objects.update_or_create(merchant=merchant, bill_date=bill_date, defaults=totals)
    differences = [
        {
            "kind": kind,
            "out_trade_no": out_trade_no,
            "refund_no": refund_no,
            "ours": evidence.get("ours"),
            "theirs": evidence.get("theirs"),
        }
        for (kind, out_trade_no, refund_no), evidence in sorted(matcher.found.items())
    ]
    logger.info(
        "reconciliation: merchant %s, %s, bill v%s: rows %d, matched %d, differences %d, carried %d",
        merchant.pk, bill_date.isoformat(), bill.version or "-", matcher.rows, matcher.matched, len(matcher.found),
        len(matcher.carried),
    )  # fmt: skip
    return DayReport(
        merchant=merchant.pk,
        bill_date=bill_date,
        status=bill.status,
        rows=matcher.rows,
        matched=matcher.matched,
        version=bill.version,
        differences=differences,
        carried=len(matcher.carried),
    )


# --- staff actions -------------------------------------------------------------------------------------------------


def difference_explain(*, user: AbstractBaseUser | None, difference: Difference, note: str) -> Difference:
    """A person explains a difference (what they checked, why it is fine or how it was settled)."""
    note = note.strip()
    if not note:
        raise InvalidInput(details={"note": "Say what you checked and why."})
    with transaction.atomic():
        difference = (
            Difference.objects.select_for_update(of=("self",))
            .select_related("merchant__provider")
            .get(pk=difference.pk)
        )
        if difference.status == Difference.Status.CLOSED:
            raise InvalidState("This difference is gone on a later run.", code="DIFFERENCE_CLOSED")
        difference.status = Difference.Status.EXPLAINED
        difference.note = note[:2000]
        difference.explained_by = user
        difference.explained_at = timezone.now()
        difference.save()
        audit_record(
            actor=user,
            action="reconciliation.explain",
            obj=difference,
            details={
                "bill_date": difference.bill_date.isoformat(),
                "kind": difference.kind,
                "out_trade_no": difference.out_trade_no,
                "refund_no": difference.refund_no,
                "note": note[:500],
            },
        )
    return difference


def difference_requery(*, user: AbstractBaseUser | None, difference: Difference) -> Payment:
    """Ask the channel about the difference's order again (`payments.services.payment_refresh`: an unsettled order
    is driven by the answer, a settled one gets the answer in its timeline). The next run then sees the result."""
    payment = (
        difference.payment
        or Payment.objects.filter(merchant_id=difference.merchant_id, out_trade_no=difference.out_trade_no).first()
    )
    if payment is None:
        raise InvalidState("We have no order with this number to query.", code="NO_SUCH_ORDER")
    audit_record(
        actor=user,
        action="reconciliation.requery",
        obj=difference,
        details={
            "bill_date": difference.bill_date.isoformat(),
            "kind": difference.kind,
            "out_trade_no": payment.out_trade_no,
        },
    )
    return payment_services.payment_refresh(payment=payment, user=user)
