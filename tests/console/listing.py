"""What the list tests share: China time from text, a page as a signed-in user in a language, the rows of a table,
and the rows of a CSV or Excel export."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from django.http import FileResponse
from django.utils import timezone
from openpyxl import load_workbook

from tests.factories import login_verified

CHINA = timezone.get_default_timezone()


def china(text: str) -> datetime:
    return timezone.make_aware(datetime.strptime(text, "%Y-%m-%d %H:%M:%S"), CHINA)


def page(client, user, url: str, params=None, *, language: str = "zh-hans"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client.get(url, params or {})


def rows_of(html: str, table: str) -> str:
    """The <tbody> of the table with this id ("" when the page has none)."""
    match = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    return match.group(1) if match else ""


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode()), "no BOM: Excel would read the UTF-8 text as GBK"
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def xlsx_sheet(response):
    assert isinstance(response, FileResponse), "the workbook is streamed from its temporary file"
    return load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
