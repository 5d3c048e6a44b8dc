"""Channel bills, the day's result per merchant, the differences people work, and orders carried to the next day.

Money is integer fen. A bill's raw text is kept (gzip-compressed) with its SHA-256, so what was matched can always be
shown again; the same bill imported twice is one row, a changed bill is a new version (docs/reconciliation.md).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from payments.models import Payment, Refund
from portal.models import Merchant


class Bill(models.Model):
    class Status(models.TextChoices):
        IMPORTED = "IMPORTED", _("Imported")
        NO_BILL = "NO_BILL", _("No bill for that day (nothing traded)")
        REFUSED = "REFUSED", _("Refused (not imported)")

    class Source(models.TextChoices):
        DOWNLOAD = "DOWNLOAD", _("Downloaded from the channel")
        FILE = "FILE", _("File given by an operator")

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="bills")
    bill_date = models.DateField(_("bill date"), help_text="bill_date: the China calendar day the bill covers.")
    bill_type = models.CharField(
        _("bill type"), max_length=16, default="ALL", help_text="bill_type (WeChat Pay v2 downloadbill)."
    )
    channel = models.CharField(_("channel"), max_length=16, choices=Merchant.Channel.choices)
    source = models.CharField(_("source"), max_length=8, choices=Source.choices)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices)
    version = models.PositiveIntegerField(
        _("version"), null=True, blank=True, help_text="1, 2, … per day for imported bills."
    )
    sha256 = models.CharField(
        _("SHA-256"), max_length=64, blank=True, help_text="SHA-256 of the bill's text (decompressed)."
    )
    content_gzip = models.BinaryField(
        _("content (gzip)"), blank=True, default=b"", help_text="The bill's text, gzip-compressed."
    )
    size = models.BigIntegerField(_("size (bytes)"), default=0, help_text="Bytes of the bill's text.")
    reason = models.CharField(
        _("reason"), max_length=500, blank=True, help_text="Why it was refused, or the channel's answer."
    )
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("bill")
        verbose_name_plural = _("bills")
        ordering = ["-bill_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "bill_date", "bill_type", "version"],
                condition=Q(version__isnull=False),
                name="bill_version_once",
            ),
            models.UniqueConstraint(
                fields=["merchant", "bill_date", "bill_type", "sha256"],
                condition=Q(status="IMPORTED"),
                name="bill_imported_once",
            ),
        ]
        indexes = [models.Index(fields=["merchant", "bill_date"])]

    def __str__(self) -> str:
        return f"{self.merchant_id} {self.bill_date} {self.bill_type} v{self.version or '-'} {self.status}"


class DayResult(models.Model):
    """The last reconciliation of one merchant's day: counts and totals from the bill, and what matched."""

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="reconciliation_days"
    )
    bill_date = models.DateField(_("bill date"))
    bill = models.ForeignKey(
        Bill, verbose_name=_("bill"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rows = models.PositiveIntegerField(_("rows"), default=0, help_text="Detail rows on the bill (总交易单数).")
    matched = models.PositiveIntegerField(_("matched"), default=0, help_text="Bill rows that agree with our records.")
    payment_count = models.PositiveIntegerField(_("payments"), default=0)
    payment_total = models.BigIntegerField(
        _("payment total (fen)"), default=0, help_text="订单金额 of the payment rows, fen."
    )
    settlement_total = models.BigIntegerField(_("settlement total (fen)"), default=0, help_text="应结订单总金额, fen.")
    refund_count = models.PositiveIntegerField(_("refunds"), default=0)
    refund_total = models.BigIntegerField(_("refund total (fen)"), default=0, help_text="退款总金额, fen.")
    fee_total = models.BigIntegerField(
        _("fees (fen)"), default=0, help_text="手续费总金额 (refunds return fees: negative), fen."
    )
    net_settlement = models.BigIntegerField(
        _("net settlement (fen)"), default=0, help_text="应结订单总金额 − 退款总金额 − 手续费总金额, fen."
    )
    open_differences = models.PositiveIntegerField(_("open differences"), default=0)
    carried = models.PositiveIntegerField(
        _("carried to the next day"), default=0, help_text="Our orders unsettled at the cut-off, carried on."
    )
    reconciled_at = models.DateTimeField(_("reconciled at"), auto_now=True)

    class Meta:
        verbose_name = _("reconciled day")
        verbose_name_plural = _("reconciled days")
        ordering = ["-bill_date", "merchant_id"]
        constraints = [models.UniqueConstraint(fields=["merchant", "bill_date"], name="day_result_once")]

    def __str__(self) -> str:
        return f"{self.merchant_id} {self.bill_date}: {self.matched}/{self.rows}"


class DifferenceKind(models.TextChoices):
    CHARGED_NOT_SUCCESSFUL = "CHARGED_NOT_SUCCESSFUL", _("Charged there, not successful here (money at risk)")
    MISSING_THERE = "MISSING_THERE", _("Successful here, missing on the bill")
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS", _("Amount differs")
    STATUS_DIFFERS = "STATUS_DIFFERS", _("Status differs")
    REFUND_MISSING_HERE = "REFUND_MISSING_HERE", _("Refund on the bill, not here")
    REFUND_MISSING_THERE = "REFUND_MISSING_THERE", _("Refund here, missing on the bill")
    REFUND_AMOUNT_DIFFERS = "REFUND_AMOUNT_DIFFERS", _("Refund amount differs")
    DUPLICATE_ROW = "DUPLICATE_ROW", _("The same row twice on the bill")


class Difference(models.Model):
    class Status(models.TextChoices):
        OPEN = "OPEN", _("Open")
        EXPLAINED = "EXPLAINED", _("Explained by staff")
        CLOSED = "CLOSED", _("Gone on a later run")

    merchant = models.ForeignKey(
        Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="reconciliation_differences"
    )
    bill_date = models.DateField(_("bill date"))
    kind = models.CharField(_("kind"), max_length=24, choices=DifferenceKind.choices)
    out_trade_no = models.CharField(_("order no."), max_length=32, help_text="out_trade_no (商户订单号).")
    refund_no = models.CharField(
        _("refund no."), max_length=64, blank=True, help_text="out_refund_no (商户退款单号), refunds only."
    )
    transaction_id = models.CharField(
        _("transaction id"), max_length=64, blank=True, help_text="transaction_id (微信订单号)."
    )
    payment = models.ForeignKey(
        Payment, verbose_name=_("payment"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund = models.ForeignKey(
        Refund, verbose_name=_("refund"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ours = models.JSONField(
        _("our record"), null=True, blank=True, help_text="Our record when found (status, amounts in fen)."
    )
    theirs = models.JSONField(
        _("the bill's rows"), null=True, blank=True, help_text="The bill row(s) when found (amounts in fen)."
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    note = models.TextField(_("note"), blank=True)
    explained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("explained by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    explained_at = models.DateTimeField(_("explained at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    first_bill = models.ForeignKey(
        Bill, verbose_name=_("first bill"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    last_bill = models.ForeignKey(
        Bill, verbose_name=_("latest bill"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("difference")
        verbose_name_plural = _("differences")
        ordering = ["-bill_date", "kind", "out_trade_no"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "bill_date", "kind", "out_trade_no", "refund_no"], name="difference_once"
            )
        ]
        indexes = [models.Index(fields=["status", "bill_date"])]

    def __str__(self) -> str:
        return f"{self.bill_date} {self.kind} {self.out_trade_no} {self.refund_no}".strip()


class CarriedOrder(models.Model):
    """An order of ours still unsettled at a bill's cut-off (or paid in the last moments of the day): not a
    difference yet; reconciled with the next day's bill once settled."""

    merchant = models.ForeignKey(Merchant, verbose_name=_("merchant"), on_delete=models.PROTECT, related_name="+")
    bill_date = models.DateField(_("bill date"), help_text="The day it was carried from.")
    payment = models.ForeignKey(Payment, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="+")
    refund = models.ForeignKey(
        Refund, verbose_name=_("refund"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    theirs = models.JSONField(
        _("the bill's rows"), null=True, blank=True, help_text="The bill row seen for it that day, if any."
    )
    reason = models.CharField(_("reason"), max_length=200)
    settled_on = models.DateField(
        _("reconciled on"), null=True, blank=True, help_text="The day whose run reconciled it."
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("carried order")
        verbose_name_plural = _("carried orders")
        ordering = ["bill_date", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant", "bill_date", "payment"],
                condition=Q(refund__isnull=True),
                name="carried_payment_once",
            ),
            models.UniqueConstraint(
                fields=["merchant", "bill_date", "refund"],
                condition=Q(refund__isnull=False),
                name="carried_refund_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bill_date} {self.payment_id} {self.reason}"
