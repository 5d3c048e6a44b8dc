"""Console lists exported as CSV (written row by row into a streamed response) or Excel (a write-only workbook),
every text cell formula-guarded."""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO


class Echo:
    """A file for `csv.writer` that hands each written row back (to be yielded into a StreamingHttpResponse)."""

    def write(self, value):
        return value


def spreadsheet_cell(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is written with a leading
    apostrophe: store ids and names are typed by merchant admins and read by provider staff."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


def write_xlsx(out: BinaryIO, *, title: str, header: list[str], rows: Iterable[list]) -> None:
    """An .xlsx workbook of one sheet into `out`: openpyxl's write-only mode (rows go to a temporary file, not
    memory); string cells are stored as text with the text format "@", so long ids are never turned into numbers."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title)

    def cells(values):
        for value in values:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.number_format = "@"
            yield cell

    sheet.append(list(cells(header)))
    for row in rows:
        sheet.append(list(cells(row)))
    workbook.save(out)
