"""CSV reports that are safe to open in a spreadsheet.

A cell that begins with ``=``, ``+``, ``-``, ``@``, tab or carriage return is
run as a formula by Excel, LibreOffice and Google Sheets ("CSV injection"); a
contact list is attacker-controlled input, so such cells are prefixed with a
single quote, which spreadsheets show as text. Plain numbers (``-5``,
``+14155550123``) cannot be formulas and are left alone so phone numbers stay
readable.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def escape_cell(value: object) -> str:
    """Text for one CSV cell, neutralised if a spreadsheet would evaluate it."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if not text:
        return text
    if text.startswith(_TRIGGERS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    # Leading spaces do not stop some spreadsheets from evaluating " =1+1".
    stripped = text.lstrip(" ")
    if stripped is not text and stripped.startswith(_TRIGGERS) and not _PLAIN_NUMBER.match(stripped):
        return "'" + text
    return text


class _Line:
    """csv.writer target that hands back what was just written."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def take(self) -> str:
        value = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return value


def iter_csv(header: Sequence[str], rows: Iterable[Sequence[object]], *, excel_bom: bool = True) -> Iterator[str]:
    """Yield the CSV text line by line (for a streaming HTTP response).

    The UTF-8 BOM makes Excel pick UTF-8 instead of the locale's code page."""
    line = _Line()
    writer = csv.writer(line.buffer, lineterminator="\r\n")
    if excel_bom:
        yield "\ufeff"
    writer.writerow([escape_cell(h) for h in header])
    yield line.take()
    for row in rows:
        writer.writerow([escape_cell(cell) for cell in row])
        yield line.take()


def write_csv(out: io.TextIOBase, header: Sequence[str], rows: Iterable[Sequence[object]], *, excel_bom: bool = True) -> int:
    """Write a whole report to ``out``; returns the number of data rows."""
    pieces = iter_csv(header, rows, excel_bom=excel_bom)
    # BOM (if any) and header are not data rows.
    for _ in range(2 if excel_bom else 1):
        out.write(next(pieces))
    written = 0
    for text in pieces:
        out.write(text)
        written += 1
    return written
