"""Cursor pages of the merchant API's lists: newest first, each cursor naming the last row it showed (its ordering
key and id), so rows that arrive meanwhile never shift or repeat a page and no page costs an OFFSET. Cursors are
opaque to clients (base64 of JSON) and only position a list; they grant nothing."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet

from portal.errors import InvalidInput

BAD_CURSOR = "Not a cursor of this list: pass next_cursor from the previous page unchanged, or start without one."


@dataclass(frozen=True)
class Page:
    rows: list[Model]
    next_cursor: str | None


def _encode(value, pk: int) -> str:
    raw = json.dumps([value.isoformat(), pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, field) -> tuple[object, int]:
    try:
        value, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(value, str) or isinstance(pk, bool) or not isinstance(pk, int):
            raise ValueError(cursor)
        return field.to_python(value), pk
    except (ValueError, TypeError, binascii.Error, ValidationError):
        raise InvalidInput(details={"cursor": BAD_CURSOR}) from None


def keyset_page(queryset: QuerySet, *, key: str, cursor: str, limit: int) -> Page:
    """Up to `limit` rows of `queryset` by `key` descending, then id descending, after the row `cursor` names."""
    if cursor:
        value, pk = _decode(cursor, queryset.model._meta.get_field(key))
        queryset = queryset.filter(Q(**{f"{key}__lt": value}) | Q(**{key: value, "id__lt": pk}))
    rows = list(queryset.order_by(f"-{key}", "-id")[: limit + 1])
    if len(rows) <= limit:
        return Page(rows, None)
    last = rows[limit - 1]
    return Page(rows[:limit], _encode(getattr(last, key), last.pk))
