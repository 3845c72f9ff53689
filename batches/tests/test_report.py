"""Spreadsheet-safe CSV reports (pure Python)."""

from __future__ import annotations

import csv
import io

import pytest

from batches.report import escape_cell, iter_csv, write_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1+1", "'  =1+1"),
        ("\uff1d1+1", "'\uff1d1+1"),
        ('=HYPERLINK("http://evil","click")', "'=HYPERLINK(\"http://evil\",\"click\")"),
        ("+14155550123", "+14155550123"),
        ("-5", "-5"),
        ("-1.25", "-1.25"),
        ("hello = world", "hello = world"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_escape_cell(value: object, expected: str) -> None:
    assert escape_cell(value) == expected


def test_report_roundtrips_and_neutralises_formulas() -> None:
    out = io.StringIO()
    rows = [["+14155550123", "=2*3", "a,b\nc"], ["+14155550124", "@x", 7]]
    assert write_csv(out, ["phone", "=name", "note"], rows) == 2
    text = out.getvalue()
    assert text.startswith("\ufeff")
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert parsed == [["phone", "'=name", "note"], ["+14155550123", "'=2*3", "a,b\nc"], ["+14155550124", "'@x", "7"]]


def test_iter_csv_streams_one_line_per_row() -> None:
    pieces = list(iter_csv(["a"], ([str(i)] for i in range(3)), excel_bom=False))
    assert pieces == ["a\r\n", "0\r\n", "1\r\n", "2\r\n"]
