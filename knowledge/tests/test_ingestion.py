"""The ingestion pipeline end to end: real files, real local model, real Postgres."""

from __future__ import annotations

from typing import Any

import pytest

from knowledge import services
from knowledge.models import Chunk, Document, IngestState
from knowledge.search import search_knowledge
from knowledge.testing.documents import make_csv, make_docx, make_html, make_pdf
from knowledge.tests.conftest import upload
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

FILES = {
    "policy.pdf": lambda: make_pdf(["Refund policy\n\nRefunds are paid to the original card within 30 days."]),
    "handbook.docx": lambda: make_docx([("h1", "Refunds"), ("p", "Refunds are paid to the original card within 30 days.")]),
    "help.html": lambda: make_html("Help", [("Refunds", "Refunds are paid to the original card within 30 days.")]),
    "faq.csv": lambda: make_csv(["question", "answer"], [["When are refunds paid?", "Refunds are paid to the original card within 30 days."]]),
    "notes.md": lambda: b"# Refunds\n\nRefunds are paid to the original card within **30 days**.",
    "notes.txt": lambda: b"Refunds are paid to the original card within 30 days.",
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_file_type_ingests(kb_a: Any, ingest: Any, name: str) -> None:
    document = ingest(kb_a, name, FILES[name]())
    version = document.current_version
    assert version is not None and version.state == IngestState.READY and version.progress == 100
    assert "within 30 days" in version.extracted_text
    chunks = list(Chunk.objects.filter(version=version))
    assert chunks and all(c.is_active and c.embedding_dims == 384 for c in chunks)
    assert all(version.extracted_text[c.start:c.end] == c.text for c in chunks)
    assert version.embedding_model == "local:all-MiniLM-L6-v2:384"
    hits = search_knowledge(kb_a.org, [kb_a.public_id], "refund to my card", k=3)
    assert hits and hits[0].document_id == str(document.public_id) and hits[0].version == 1


def test_pasted_text(kb_a: Any, run_tasks: Any) -> None:
    with run_tasks():
        document = services.add_document(kb_a, SYSTEM, services.SourceInput(text="# Hours\nWe open at nine."),
                                         title="Opening hours")
    document.refresh_from_db()
    assert document.current_version.state == IngestState.READY
    assert Chunk.objects.get(document=document).heading == "Hours"


BAD = [
    ("secret.pdf", lambda: make_pdf(["hidden"], user_password="pw"), "encrypted", "password-protected"),
    ("broken.pdf", lambda: b"%PDF-1.4 this is not really a pdf", "corrupt", "damaged"),
    ("scan.pdf", lambda: make_pdf([""]), "no_text", "no extractable text"),
    ("slides.pptx", lambda: b"PK\x03\x04 whatever", "unsupported_type", "unsupported file type"),
    ("bad.docx", lambda: b"not a zip", "corrupt", "not a DOCX"),
]


@pytest.mark.parametrize("name,make,code,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_files_fail_with_reason_and_leave_the_base_intact(kb_a: Any, ingest: Any, name: str, make: Any,
                                                              code: str, reason: str) -> None:
    good = ingest(kb_a, "good.txt", b"Our support line is open from nine to five on weekdays.")
    bad = ingest(kb_a, name, make())
    version = bad.latest_version
    assert version.state == IngestState.FAILED
    assert version.error_code == code and reason in version.error_message and name in version.error_message
    assert bad.current_version is None
    assert not Chunk.objects.filter(document=bad).exists()
    assert Chunk.objects.filter(document=good, is_active=True).count() == 1
    hits = search_knowledge(kb_a.org, [kb_a.public_id], "when is support open", k=5)
    assert [h.document_id for h in hits] == [str(good.public_id)]


def test_too_large_upload_is_refused_and_not_stored(kb_a: Any, ingest: Any, settings: Any) -> None:
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    document = ingest(kb_a, "big.txt", b"x " * 100)
    version = document.latest_version
    assert version.state == IngestState.FAILED and version.error_code == "too_large"
    assert "file too large: 200 bytes, limit 100 bytes" in version.error_message
    assert not version.file


def test_reupload_makes_a_new_version_and_search_uses_it(kb_a: Any, ingest: Any, run_tasks: Any) -> None:
    document = ingest(kb_a, "prices.txt", b"The Pro plan costs 20 dollars per month.")
    with run_tasks():
        version, created = services.add_version(document, SYSTEM, services.SourceInput(
            upload=upload("prices.txt", b"The Pro plan costs 35 dollars per month.")))
    assert created
    document.refresh_from_db()
    assert document.current_version.number == 2 and document.latest_version.number == 2
    assert list(document.versions.values_list("number", flat=True)) == [2, 1]
    assert "20 dollars" in document.versions.get(number=1).extracted_text  # old version kept
    hits = search_knowledge(kb_a.org, [kb_a.public_id], "how much is the pro plan", k=5)
    assert len(hits) == 1 and "35 dollars" in hits[0].text and hits[0].version == 2
    assert not Chunk.objects.filter(version__number=1).exists()


def test_identical_reupload_is_not_a_new_version(kb_a: Any, ingest: Any, run_tasks: Any) -> None:
    document = ingest(kb_a, "a.txt", b"Same content.")
    with run_tasks():
        version, created = services.add_version(document, SYSTEM, services.SourceInput(
            upload=upload("a.txt", b"Same content.")))
    assert not created and version.number == 1


def test_failed_new_version_keeps_the_current_one_searchable(kb_a: Any, ingest: Any, run_tasks: Any) -> None:
    document = ingest(kb_a, "guide.pdf", make_pdf(["Parking is free for customers behind the store."]))
    with run_tasks():
        services.add_version(document, SYSTEM, services.SourceInput(upload=upload("guide.pdf", b"%PDF-1.4 junk")))
    document.refresh_from_db()
    assert document.latest_version.state == IngestState.FAILED and document.current_version.number == 1
    assert search_knowledge(kb_a.org, [kb_a.public_id], "where can I park", k=1)[0].version == 1


def test_delete_document_removes_chunks_and_files(kb_a: Any, ingest: Any, settings: Any, run_tasks: Any) -> None:
    import os

    document = ingest(kb_a, "a.txt", b"Delete me please.")
    path = document.current_version.file.path
    assert os.path.exists(path)
    with run_tasks():
        services.delete_document(document, SYSTEM)
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Chunk.objects.filter(knowledge_base=kb_a).exists()
    assert not os.path.exists(path)


def test_redelivered_task_for_finished_version_is_a_no_op(kb_a: Any, ingest: Any) -> None:
    document = ingest(kb_a, "a.txt", b"Just one chunk of text.")
    before = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    services.ingest_version(str(document.current_version.public_id), kb_a.org)
    assert list(Chunk.objects.filter(document=document).values_list("pk", flat=True)) == before
