"""Extraction of every supported type from fixtures built in the test, and typed failures."""

from __future__ import annotations

import io
import zipfile

import pytest

from knowledge.extraction import (
    CorruptFileError,
    EncryptedFileError,
    FileTooLargeError,
    NoTextError,
    UnsupportedTypeError,
    detect_type,
    extract,
    extract_text,
)
from knowledge.testing.documents import make_csv, make_docx, make_html, make_pdf


def headings(doc) -> list[tuple[int, str]]:
    return [(b.level, doc.block_text(b)) for b in doc.blocks if b.kind == "heading"]


def test_txt_paragraphs_and_offsets() -> None:
    doc = extract("First para.\r\nstill first.\n\n\nSecond   para.".encode(), filename="a.txt")
    assert [doc.block_text(b) for b in doc.blocks] == ["First para.\nstill first.", "Second para."]
    assert doc.text[doc.blocks[1].start:doc.blocks[1].end] == "Second para."


def test_txt_legacy_encoding_is_detected() -> None:
    doc = extract("Café crème, déjà vu. Numéro un. Réservé aux élèves.".encode("cp1252"), filename="a.txt")
    assert "Café crème" in doc.text


def test_markdown_headings_and_code_fences() -> None:
    source = "# Guide\n\nIntro with [a link](http://x) and **bold**.\n\n## Setup\n\n```\n# not a heading\n```\n\nSub\n---\nBody."
    doc = extract(source.encode(), filename="guide.md")
    assert headings(doc) == [(1, "Guide"), (2, "Setup"), (2, "Sub")]
    assert "Intro with a link and bold." in doc.text
    assert "# not a heading" in doc.text
    assert doc.title == "Guide"


def test_html_skips_scripts_and_keeps_headings() -> None:
    doc = extract(make_html("Help centre", [("Shipping", "We ship <b>worldwide</b> &amp; fast.")]),
                  filename="help.html")
    assert doc.title == "Help centre"
    assert (2, "Shipping") in headings(doc)
    assert "We ship worldwide & fast." in doc.text
    assert "do not index" not in doc.text and "color" not in doc.text


def test_pdf_text_pages_and_title() -> None:
    data = make_pdf(["Refund policy (v2)\n\nRefunds are paid within 30 days.", "Second page."],
                    title="Policies")
    doc = extract(data, filename="policy.pdf")
    assert "Refunds are paid within 30 days." in doc.text
    assert doc.page_count == 2 and doc.title == "Policies"
    assert {b.page for b in doc.blocks} == {1, 2}


def test_pdf_with_owner_password_only_opens() -> None:
    doc = extract(make_pdf(["Readable without a password."], owner_password="owner"), filename="o.pdf")
    assert "Readable without a password." in doc.text


def test_encrypted_pdf_fails_with_reason() -> None:
    with pytest.raises(EncryptedFileError, match="secret.pdf: the PDF is password-protected") as info:
        extract(make_pdf(["hidden"], user_password="pw"), filename="secret.pdf")
    assert info.value.code == "encrypted"


@pytest.mark.parametrize("data", [b"%PDF-1.7\n garbage that is not a pdf", b"not even a header"])
def test_corrupt_pdf_fails_with_reason(data: bytes) -> None:
    with pytest.raises(CorruptFileError, match="broken.pdf") as info:
        extract(data, filename="broken.pdf")
    assert info.value.code == "corrupt"


def test_truncated_pdf_fails_as_corrupt() -> None:
    data = make_pdf(["Some text here."])
    with pytest.raises(CorruptFileError):
        extract(data[: len(data) // 3], filename="cut.pdf")


def test_pdf_without_text_layer_is_no_text() -> None:
    with pytest.raises(NoTextError, match="OCR") as info:
        extract(make_pdf([""]), filename="scan.pdf")
    assert info.value.code == "no_text"


def test_docx_headings_paragraphs_and_tables_in_order() -> None:
    data = make_docx([("title", "Handbook"), ("h1", "Leave"), ("p", "Staff get 25 days."),
                      ("h2", "Sick leave"), ("p", "Report by 9am.")],
                     table=[["Plan", "Price"], ["Pro", "$20"]])
    doc = extract(data, filename="handbook.docx")
    assert headings(doc) == [(1, "Handbook"), (1, "Leave"), (2, "Sick leave")]
    assert doc.title == "Handbook"
    assert doc.text.endswith("Plan | Price\nPro | $20")


def test_corrupt_docx() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(CorruptFileError, match="bad.docx"):
        extract(buffer.getvalue(), filename="bad.docx")
    with pytest.raises(CorruptFileError, match="not a ZIP"):
        extract(b"plain text pretending", filename="bad.docx")


def test_csv_rows_become_labelled_paragraphs() -> None:
    doc = extract(make_csv(["question", "answer"], [["Opening hours?", "9 to 5"], ["", ""],
                                                    ["Parking?", "Free"]], delimiter=";"),
                  filename="faq.csv")
    assert [doc.block_text(b) for b in doc.blocks] == [
        "question: Opening hours?; answer: 9 to 5", "question: Parking?; answer: Free"]


def test_csv_row_with_extra_fields_names_the_line() -> None:
    with pytest.raises(CorruptFileError, match="row 3 has 3 fields but the header has 2"):
        extract(b"a,b\n1,2\n1,2,3\n", filename="x.csv")


def test_csv_header_only_is_no_text() -> None:
    with pytest.raises(NoTextError, match="no data rows"):
        extract(b"a,b\n", filename="x.csv")


def test_too_large() -> None:
    with pytest.raises(FileTooLargeError, match="big.txt: file too large: 2,000 bytes, limit 1,000 bytes") as info:
        extract(b"x" * 2000, filename="big.txt", max_bytes=1000)
    assert info.value.code == "too_large"


def test_unsupported_type() -> None:
    with pytest.raises(UnsupportedTypeError, match="slides.pptx: unsupported file type") as info:
        extract(b"PK..", filename="slides.pptx")
    assert info.value.code == "unsupported_type"


def test_type_from_mime_when_no_extension() -> None:
    assert detect_type("upload", "text/markdown; charset=utf-8") == "md"
    assert detect_type("README.MD") == "md"


@pytest.mark.parametrize("data", [b"", b"   \n\n\t  "])
def test_empty_text_is_no_text(data: bytes) -> None:
    with pytest.raises(NoTextError):
        extract(data, filename="empty.txt")


def test_binary_masquerading_as_text() -> None:
    with pytest.raises(CorruptFileError, match="binary"):
        extract(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", filename="image.txt")


def test_pasted_text_keeps_markdown_headings() -> None:
    doc = extract_text("# FAQ\nWe open at nine.")
    assert doc.source_type == "text" and headings(doc) == [(1, "FAQ")]
