"""Search a run's logs for every configured secret (tested in tests/bench/test_secrets_scan.py).

Needles: each key or secret as a whole, and for PEM private keys each base64 line of the body (a log that quotes
part of a key leaks it too). Short values (< 12 characters) are skipped: they would match by chance. A secret is also
looked for as a JSON string writes it (the processes log JSON lines in production: LOG_FORMAT), so one with a quote,
a backslash or a non-ASCII character is found there too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

_PEM_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$")
MIN_LENGTH = 12


def needles(values: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        text = value.strip()
        if "-----BEGIN" in text:
            found.update(line.strip() for line in text.splitlines() if _PEM_LINE.match(line.strip()))
        elif len(text) >= MIN_LENGTH:
            found.add(text)
            found.update(json.dumps(text, ensure_ascii=ascii_only)[1:-1] for ascii_only in (False, True))
    return found


def scan(paths: Iterable[Path], values: Iterable[str]) -> list[tuple[str, int]]:
    """[(file name, how many distinct secrets it contains)] for files that contain any. Never returns the values."""
    wanted = needles(values)
    hits: list[tuple[str, int]] = []
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text("utf-8", errors="replace")
        count = sum(1 for needle in wanted if needle in text)
        if count:
            hits.append((path.name, count))
    return hits
