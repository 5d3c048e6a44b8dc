"""Console lists exported as CSV (written row by row into a streamed response) or Excel (a write-only workbook in a
temporary file, then streamed from it), every text cell formula-guarded.

Rows are lists of typed values: `str` (text, ids included), `int`, `Decimal` (yuan, from `yuan`), naive `datetime`
(China time, from `china_time`) or None (an empty cell). Each format writes them its own way: CSV as text (12.30,
2025-03-01 09:30:05), Excel as typed cells (text cells for ids, so no digit is lost; numbers with two decimals;
dates). Long ids survive only in Excel: a CSV opened by double-click lets Excel read them as numbers.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from decimal import Decimal
from itertools import chain, islice
from typing import BinaryIO

from asgiref.sync import sync_to_async
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ASGI_BATCH = 500  # parts (CSV rows, blocks of a file) read per hop into the request's thread under ASGI

# What makes a spreadsheet run a cell as a formula when it comes first.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Echo:
    """A file for `csv.writer` that hands each written row back (to be yielded into a StreamingHttpResponse)."""

    def write(self, value):
        return value


def spreadsheet_cell(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is written with a leading
    apostrophe: store ids and names are typed by merchant admins and read by provider staff."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _ReadInBatches:
    """Under ASGI, Django reads a synchronous streaming response to its end before sending a byte (its fallback for
    them): a 100,000-row export would sit in memory first. These responses are read a batch at a time instead, each
    batch in the request's thread, where the database cursor the rows come from lives. Under WSGI nothing changes."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self.streaming_content
        read = sync_to_async(lambda: list(islice(content, ASGI_BATCH)), thread_sensitive=True)
        while batch := await read():
            for part in batch:
                yield part


class StreamedResponse(_ReadInBatches, StreamingHttpResponse):
    pass


class StreamedFileResponse(_ReadInBatches, FileResponse):
    pass


def yuan(fen: int) -> Decimal:
    """1230 → Decimal("12.30"): an amount in fen as exact yuan with two decimals."""
    return Decimal(fen).scaleb(-2)


def china_time(moment: datetime | None) -> datetime | None:
    """An aware moment as naive China time (settings.TIME_ZONE): spreadsheets have no time zones."""
    return None if moment is None else timezone.localtime(moment, timezone.get_default_timezone()).replace(tzinfo=None)


def csv_text(value) -> str:
    """A typed export value as CSV text: 12.30, 2025-03-01 09:30:05, text formula-guarded, None as empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return spreadsheet_cell(value) if isinstance(value, str) else str(value)


def csv_response(*, filename: str, header: list[str], rows: Iterable[list]) -> StreamedResponse:
    """A CSV download written while it is sent: UTF-8 with a BOM (so Excel reads the Chinese text), one row at a
    time from `rows` (an iterator over the database: nothing is held)."""
    writer = csv.writer(Echo())

    def lines():
        yield "\ufeff" + writer.writerow([csv_text(value) for value in header])
        for row in rows:
            yield writer.writerow([csv_text(value) for value in row])

    response = StreamedResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def write_xlsx(out: BinaryIO, *, title: str, header: list[str], rows: Iterable[list]) -> None:
    """An .xlsx workbook of one sheet into `out`: openpyxl's write-only mode (rows go to a temporary file, not
    memory). Text is always a text cell with the text format "@" — never a formula, and long ids are never turned
    into numbers; text that starts like a formula is also marked quote-prefixed, so it stays text when edited, and
    characters a workbook cannot hold (control characters) are left out. Decimals are numbers shown with two
    decimals, datetimes are dates shown as 2025-03-01 09:30:05; None and "" are empty cells."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)
    formats = {str: "@", Decimal: "0.00", datetime: "yyyy-mm-dd hh:mm:ss"}
    styled: dict[tuple, WriteOnlyCell] = {}

    def cell(column: int, value):
        """The styled cell of this column for this kind of value, made once and filled again row after row (a
        write-only sheet writes each row out as it is appended)."""
        if value is None or value == "":
            return None
        kind = next((kind for kind in formats if isinstance(value, kind)), None)
        if kind is None:
            return value
        formula_like = kind is str and value.startswith(FORMULA_STARTS)
        target = styled.get((column, kind, formula_like))
        if target is None:
            target = styled[column, kind, formula_like] = WriteOnlyCell(sheet)
            target.number_format = formats[kind]
            if formula_like:
                target.quotePrefix = True
        if kind is str:
            target.value = ILLEGAL_CHARACTERS_RE.sub("", value)
            target.data_type = "s"
        else:
            target.value = value
        return target

    for row in chain([header], rows):
        sheet.append([cell(column, value) for column, value in enumerate(row)])
    workbook.save(out)


def xlsx_response(*, filename: str, title: str, header: list[str], rows: Iterable[list]) -> StreamedFileResponse:
    """An Excel download: the workbook is written to a temporary file (memory stays flat however many rows), then
    streamed from it; the file is gone once the response is closed."""
    out = tempfile.TemporaryFile()
    try:
        write_xlsx(out, title=title, header=header, rows=rows)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return StreamedFileResponse(out, as_attachment=True, filename=filename, content_type=XLSX_CONTENT_TYPE)
