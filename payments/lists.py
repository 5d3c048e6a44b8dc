"""What the console's filtered lists share — payments, refunds, PayScore orders, members: a page of the filtered set,
the filter form's context, and the CSV / Excel export of the filtered rows (portal.exports writes them).

The filters themselves are `payments.selectors.parse_filters`; each list applies them to its own queryset."""

from __future__ import annotations

from django.core.paginator import Page, Paginator
from django.http import HttpResponseBadRequest
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from payments import selectors
from portal.exports import csv_response, xlsx_response

PAGE_SIZE = 50
EXPORT_CHUNK = 2000  # rows fetched from the database at a time while an export is written

# Exports' headers and names are in the console's language (Chinese unless English is chosen), amounts in yuan, times
# in China time, ids as text. XLSX is the export to open in Excel: its id cells are text; a CSV opened by double-click
# may show a long order number as 4.2E+27.
MERCHANT_COLUMN = pgettext_lazy("export column", "Merchant")  # left out for a merchant's own staff


def page(request, queryset, count: int) -> Page:
    """A page of the list; the number of rows is the totals' count (no second COUNT over the filtered set)."""
    paginator = Paginator(queryset, PAGE_SIZE)
    paginator.count = count
    return paginator.get_page(request.GET.get("page"))


def filter_context(request, filters: selectors.ListFilters, *, devices: bool, places: bool = True) -> dict:
    """What a list's filter form needs: the merchant select (provider staff), the store and device selects (none for
    a list without `places`), the values as typed, and what was wrong with them."""
    stores, device_choices = selectors.place_choices(request.user, filters, request.GET) if places else (None, None)
    return {
        "filters": request.GET,
        "errors": filters.errors,
        "show_merchant": selectors.sees_many_merchants(request.user),
        "merchants": selectors.merchant_choices(request.user, filters, request.GET),
        "stores": stores,
        "devices": device_choices if devices else None,
        "with_devices": devices,
    }


def choice_names(**choices) -> dict[str, dict[str, str]]:
    """Each field's values by their names, translated now (the rows are written after the view has returned)."""
    return {name: {value: str(label) for value, label in pairs} for name, pairs in choices.items()}


def export(request, *, name: str, title: str, queryset, columns, names, extension: str):
    """The export of a list's filtered rows: `columns` are (header, value(row, names)); rows are read in chunks and
    written while the response is sent. The merchant column is for those who see many merchants."""
    if not selectors.sees_many_merchants(request.user):
        columns = [(title, value) for title, value in columns if title is not MERCHANT_COLUMN]
    header = [str(title) for title, _value in columns]
    rows = ([value(row, names) for _title, value in columns] for row in queryset.iterator(chunk_size=EXPORT_CHUNK))
    filename = f"{name}-{timezone.localdate():%Y%m%d}.{extension}"
    if extension == "xlsx":
        return xlsx_response(filename=filename, title=title, header=header, rows=rows)
    return csv_response(filename=filename, header=header, rows=rows)


def refused(filters: selectors.ListFilters) -> HttpResponseBadRequest:
    """An export asked with filters that cannot be used: what was wrong, and no file."""
    return HttpResponseBadRequest("\n".join(filters.errors), content_type="text/plain; charset=utf-8")
