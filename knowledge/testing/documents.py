"""Build real fixture files (PDF, DOCX, HTML, …) in memory for tests and the benchmark.

The PDF writer produces a genuine PDF with a Helvetica text layer via pypdf, so
extraction is exercised exactly as with an uploaded file; no fixture binaries live
in the repository.
"""

from __future__ import annotations

import io
import textwrap
from typing import Sequence


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: Sequence[str], *, user_password: str | None = None,
             owner_password: str | None = None, title: str | None = None) -> bytes:
    """A PDF with one page per string; paragraphs (blank-line separated) are kept."""
    from pypdf import PdfWriter
    from pypdf.generic import DictionaryObject, NameObject, StreamObject, TextStringObject

    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"),
        NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
        NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
    })
    font_ref = writer._add_object(font)
    for page_text in pages:
        page = writer.add_blank_page(612, 792)
        ops = ["BT", "/F1 11 Tf", "14 TL", "56 740 Td"]
        for paragraph in page_text.split("\n\n"):
            for line in textwrap.wrap(paragraph, 90) or [""]:
                encoded = _pdf_escape(line)
                ops.append(f"({encoded}) Tj T*")
            ops.append("T*")  # an empty line between paragraphs
        ops.append("ET")
        stream = StreamObject()
        stream.set_data("\n".join(ops).encode("cp1252"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref}),
        })
    if title:
        writer.add_metadata({"/Title": TextStringObject(title)})
    if user_password is not None or owner_password is not None:
        writer.encrypt(user_password=user_password or "", owner_password=owner_password,
                       algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: Sequence[tuple[str, str]], *, table: Sequence[Sequence[str]] | None = None) -> bytes:
    """`blocks` are (kind, text) with kind "title", "h1".."h3" or "p"."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind.startswith("h"):
            document.add_heading(text, level=int(kind[1:]))
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_html(title: str, sections: Sequence[tuple[str, str]]) -> bytes:
    body = "".join(f"<h2>{h}</h2>\n<p>{p}</p>\n" for h, p in sections)
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"<style>p {{ color: red; }}</style><script>var secret = 'do not index';</script>"
            f"</head><body><nav><a href=\"/\">Home</a></nav><h1>{title}</h1>\n{body}"
            f"</body></html>").encode()


def make_csv(header: Sequence[str], rows: Sequence[Sequence[str]], delimiter: str = ",") -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()
