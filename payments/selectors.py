"""Reads for payments: a terminal's order, and the console's lists (payments, refunds, the attention queue) with
their filters and totals. Every console query starts from a `*_visible_to` queryset, scoped by role."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from payments.models import Payment, PaymentEvent, PaymentStatus, Refund
from portal.errors import NotFound
from portal.models import Device, Merchant, Store
from portal.money import yuan_to_fen
from portal.selectors import devices_visible_to, membership_of, merchants_visible_to, scope_queryset, stores_visible_to


def payment_for_device(*, device: Device, out_trade_no: str) -> Payment:
    """A terminal sees its merchant's orders (another terminal of the same store may ask about an order)."""
    try:
        return Payment.objects.select_related("merchant", "store", "device").get(
            merchant_id=device.store.merchant_id, out_trade_no=out_trade_no
        )
    except Payment.DoesNotExist:
        raise NotFound("No payment with this out_trade_no.", code="PAYMENT_NOT_FOUND") from None


def payments_visible_to(user) -> QuerySet[Payment]:
    return scope_queryset(Payment.objects.select_related("merchant", "store", "device"), user)


def refunds_visible_to(user) -> QuerySet[Refund]:
    return scope_queryset(
        Refund.objects.select_related("payment__merchant", "payment__store", "created_by"),
        user,
        merchant_path="payment__merchant",
    )


# --- console ---------------------------------------------------------------------------------------------------


# A filter's select lists at most this many merchants, stores or devices; beyond it a search field narrows them.
CHOICE_LIMIT = 100

# The parameters a list checks against a set of values, by the name its page gives them.
CHOICE_LABELS = {
    "status": gettext_lazy("Status"),
    "channel": gettext_lazy("Channel"),
    "method": gettext_lazy("Method"),
    "kind": gettext_lazy("Kind"),
    "state": gettext_lazy("State"),
}

# What a list's start and end fields accept, read as China time (settings.TIME_ZONE); seconds are optional.
DATETIME_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")


def sees_many_merchants(user) -> bool:
    """Provider staff and superusers work across merchants: their lists show and filter by merchant. A merchant's
    own staff see one merchant and get neither."""
    if user is not None and user.is_authenticated and user.is_superuser:
        return True
    membership = membership_of(user)
    return membership is not None and membership.is_provider_role


@dataclass
class ListFilters:
    """A console list's filters as parsed from its GET parameters. Each value is checked: `errors` says what was
    wrong, and a list with errors shows nothing rather than a set filtered otherwise than asked."""

    merchant: Merchant | None = None
    store: Store | None = None
    device: Device | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    min_fee: int | None = None  # fen, inclusive
    max_fee: int | None = None  # fen, inclusive
    prefix: str = ""
    choices: dict[str, str] = field(default_factory=dict)  # status, channel, method, kind → a valid value
    errors: list[str] = field(default_factory=list)


def _china_datetime(text: str) -> datetime | None:
    """'2025-03-01 09:30' as an aware moment in China time; None when it is not one of DATETIME_FORMATS or lies
    outside 2000-2100."""
    for pattern in DATETIME_FORMATS:
        try:
            moment = datetime.strptime(text, pattern)
        except ValueError:
            continue
        if 2000 <= moment.year <= 2100:
            return timezone.make_aware(moment, timezone.get_default_timezone())
        return None
    return None


def _visible(queryset: QuerySet, text: str):
    """The row of `queryset` whose pk is `text`, or None when the text is not a number or the row is not there."""
    return queryset.filter(pk=int(text)).first() if text.isascii() and text.isdigit() else None  # not "²"


def parse_filters(user, params, *, choices: dict[str, list[str]]) -> ListFilters:
    """Read a list's filters: merchant (for those who see many), store, device, start and end (China time), min and
    max (yuan), q (the beginning of an order or refund number), and each of `choices` (parameter → its valid
    values). Empty parameters are no filter; anything else that cannot be used is an error."""
    filters = ListFilters()
    errors = filters.errors
    if (text := params.get("merchant", "").strip()) and sees_many_merchants(user):
        filters.merchant = _visible(merchants_visible_to(user), text)
        if filters.merchant is None:
            errors.append(_("Choose the merchant from the list."))
    if text := params.get("store", "").strip():
        stores = stores_visible_to(user)
        if filters.merchant is not None:
            stores = stores.filter(merchant=filters.merchant)
        filters.store = _visible(stores, text)
        if filters.store is None:
            errors.append(_("Choose the store from the list (the chosen merchant's stores)."))
    if text := params.get("device", "").strip():
        devices = devices_visible_to(user)
        if filters.store is not None:
            devices = devices.filter(store=filters.store)
        elif filters.merchant is not None:
            devices = devices.filter(store__merchant=filters.merchant)
        filters.device = _visible(devices, text)
        if filters.device is None:
            errors.append(_("Choose the device from the list (the chosen store's devices)."))
    for name, label in (("start", _("Start time")), ("end", _("End time"))):
        if text := params.get(name, "").strip():
            moment = _china_datetime(text)
            if moment is None:
                errors.append(_("%(field)s: write it as YYYY-MM-DD HH:MM (China time).") % {"field": label})
            setattr(filters, name, moment)
    if filters.start is not None and filters.end is not None and filters.end <= filters.start:
        errors.append(_("The end time must be later than the start time."))
    for name, label in (("min", _("Minimum amount")), ("max", _("Maximum amount"))):
        if text := params.get(name, "").strip():
            fen = yuan_to_fen(text)
            if fen is None:
                errors.append(
                    _("%(field)s: an amount in yuan above zero, with at most two decimals, e.g. 12.30.")
                    % {"field": label}
                )
            setattr(filters, f"{name}_fee", fen)
    if filters.min_fee is not None and filters.max_fee is not None and filters.min_fee > filters.max_fee:
        errors.append(_("The minimum amount is more than the maximum amount."))
    for name, valid in choices.items():
        if value := params.get(name, "").strip():
            if value in valid:
                filters.choices[name] = value
            else:
                errors.append(_("%(field)s: choose a value from the list.") % {"field": CHOICE_LABELS[name]})
    filters.prefix = params.get("q", "").strip()
    return filters


def filter_common(queryset: QuerySet, filters: ListFilters, *, merchant: str, fee: str) -> QuerySet:
    """The filters every list shares. `merchant` is the path to the row's merchant ("merchant" for a payment,
    "payment__merchant" for a refund; the store sits next to it); `fee` is the amount's field."""
    owner = merchant.removesuffix("merchant")
    if filters.merchant is not None:
        queryset = queryset.filter(**{f"{merchant}_id": filters.merchant.pk})
    if filters.store is not None:
        queryset = queryset.filter(**{f"{owner}store_id": filters.store.pk})
    if filters.start is not None:
        queryset = queryset.filter(created_at__gte=filters.start)
    if filters.end is not None:
        queryset = queryset.filter(created_at__lt=filters.end)
    if filters.min_fee is not None:
        queryset = queryset.filter(**{f"{fee}__gte": filters.min_fee})
    if filters.max_fee is not None:
        queryset = queryset.filter(**{f"{fee}__lte": filters.max_fee})
    return queryset.filter(**filters.choices)


PAYMENT_CHOICES = {
    "status": PaymentStatus.values,
    "channel": Merchant.Channel.values,
    "method": Payment.Method.values,
}


def filter_payments(queryset: QuerySet[Payment], filters: ListFilters) -> QuerySet[Payment]:
    """The payments list's filters. `q` is the beginning of the order number or of the channel's transaction id
    (`startswith`, which a B-tree index on the column can serve; `icontains` never could), or a whole wallet
    transaction id or openid."""
    queryset = filter_common(queryset, filters, merchant="merchant", fee="total_fee")
    if filters.device is not None:
        queryset = queryset.filter(device_id=filters.device.pk)
    if q := filters.prefix:
        queryset = queryset.filter(
            Q(out_trade_no__startswith=q) | Q(transaction_id__startswith=q) | Q(wallet_transaction_id=q) | Q(openid=q)
        )
    return queryset


REFUND_CHOICES = {"status": Refund.Status.values, "kind": Refund.Kind.values}


def filter_refunds(queryset: QuerySet[Refund], filters: ListFilters) -> QuerySet[Refund]:
    """The refunds list's filters. `q` is the beginning of the refund number or of its payment's order number."""
    queryset = filter_common(queryset, filters, merchant="payment__merchant", fee="refund_fee")
    if q := filters.prefix:
        queryset = queryset.filter(Q(out_refund_no__startswith=q) | Q(payment__out_trade_no__startswith=q))
    return queryset


def payment_totals(queryset: QuerySet[Payment]) -> dict[str, int]:
    """Count, amount (sum of total_fee) and refunded (sum of refunded_fee) of a filtered set, in fen."""
    return queryset.aggregate(
        count=Count("id"), amount=Coalesce(Sum("total_fee"), 0), refunded=Coalesce(Sum("refunded_fee"), 0)
    )


def refund_totals(queryset: QuerySet[Refund]) -> dict[str, int]:
    """Count and amount (sum of refund_fee) of a filtered set, in fen."""
    return queryset.aggregate(count=Count("id"), amount=Coalesce(Sum("refund_fee"), 0))


@dataclass(frozen=True)
class Choices:
    """The options of a filter's select: at most CHOICE_LIMIT of them, narrowed by `search`, the chosen one always
    among them. `more` says some were left out (the page then offers the search field)."""

    options: list
    chosen: int | None
    more: bool
    search: str


def _choices(queryset: QuerySet, *, chosen, search: str, fields: tuple[str, ...]) -> Choices:
    if search:
        matches = Q()
        for name in fields:
            matches |= Q(**{f"{name}__icontains": search})
        queryset = queryset.filter(matches)
    options = list(queryset[: CHOICE_LIMIT + 1])
    more = len(options) > CHOICE_LIMIT
    options = options[:CHOICE_LIMIT]
    if chosen is not None and chosen not in options:
        options.insert(0, chosen)
    return Choices(options=options, chosen=chosen.pk if chosen else None, more=more, search=search)


def merchant_choices(user, filters: ListFilters, params) -> Choices | None:
    """The merchant select for those who see many merchants; None for a merchant's own staff."""
    if not sees_many_merchants(user):
        return None
    return _choices(
        merchants_visible_to(user).select_related(None).only("pk", "name").order_by("name", "pk"),
        chosen=filters.merchant,
        search=params.get("merchant_q", "").strip(),
        fields=("name",),
    )


def place_choices(user, filters: ListFilters, params) -> tuple[Choices | None, Choices | None]:
    """(stores, devices) to choose from: of the chosen merchant, and the devices of the chosen store. Provider staff
    choose a merchant first (no list of every store of every merchant); a merchant's staff see their own."""
    if filters.merchant is None and sees_many_merchants(user):
        return None, None
    stores = stores_visible_to(user).select_related(None).only("pk", "name", "store_id", "merchant")
    devices = devices_visible_to(user).select_related(None).only("pk", "device_id", "name", "store")
    if filters.merchant is not None:
        stores = stores.filter(merchant=filters.merchant)
        devices = devices.filter(store__merchant=filters.merchant)
    if filters.store is not None:
        devices = devices.filter(store=filters.store)
    return (
        _choices(
            stores.order_by("name", "pk"),
            chosen=filters.store,
            search=params.get("store_q", "").strip(),
            fields=("name", "store_id"),
        ),
        _choices(
            devices.order_by("device_id"),
            chosen=filters.device,
            search=params.get("device_q", "").strip(),
            fields=("device_id", "name"),
        ),
    )


def payments_for_export(queryset: QuerySet[Payment]) -> QuerySet[Payment]:
    """Only the columns an export writes (a row of 100,000 carries nothing else)."""
    return queryset.only(
        "out_trade_no", "created_at", "paid_at", "status", "total_fee", "refunded_fee", "channel", "method", "wallet",
        "transaction_id", "wallet_transaction_id", "openid", "err_code",
        "merchant__name", "store__store_id", "store__name", "device__device_id",
    )  # fmt: skip


def refunds_for_export(queryset: QuerySet[Refund]) -> QuerySet[Refund]:
    """Only the columns an export writes."""
    return queryset.only(
        "out_refund_no", "refund_id", "refund_fee", "kind", "status", "reason", "err_code", "created_at", "updated_at",
        "payment__out_trade_no", "payment__transaction_id", "payment__merchant__name", "payment__store__store_id",
        "payment__store__name", "created_by__username",
    )  # fmt: skip


# The queue shows the oldest this many of each kind; the counts above it are of all.
ATTENTION_LIMIT = 200


def attention_queue(user) -> dict:
    """Payments and refunds in ATTENTION, oldest first, each with why: the payment's last state change message
    (`last_message`), or the refund's last event's code and message."""
    last_state = PaymentEvent.objects.filter(payment=OuterRef("pk"), refund=None, action="state").order_by(
        "-created_at", "-id"
    )
    last_refund_event = PaymentEvent.objects.filter(refund=OuterRef("pk")).order_by("-created_at", "-id")
    payments = payments_visible_to(user).filter(status=PaymentStatus.ATTENTION)
    refunds = refunds_visible_to(user).filter(status=Refund.Status.ATTENTION)
    return {
        "payment_count": payments.count(),
        "refund_count": refunds.count(),
        "payments": list(
            payments.annotate(last_message=Subquery(last_state.values("message")[:1])).order_by("created_at", "id")[
                :ATTENTION_LIMIT
            ]
        ),
        "refunds": list(
            refunds.annotate(
                last_code=Subquery(last_refund_event.values("code")[:1]),
                last_message=Subquery(last_refund_event.values("message")[:1]),
            ).order_by("created_at", "id")[:ATTENTION_LIMIT]
        ),
        "limit": ATTENTION_LIMIT,
    }
