"""REST API: CRUD, uploads, versions, search, and the 401/403/404 matrix across orgs."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import services
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.testing.documents import make_pdf
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

BASES = "/api/v1/knowledge-bases/"


def docs_url(kb: Any) -> str:
    return f"{BASES}{kb.public_id}/documents/"


def test_create_list_update_knowledge_base(api: Any, editor_a: Any, viewer_a: Any) -> None:
    editor = api(editor_a)
    response = editor.post(BASES, {"name": "Support", "description": "FAQ"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["embedding_backend"] == "local" and body["embedding_dimensions"] == 384
    assert body["document_count"] == 0 and body["agents"] == []
    assert api(viewer_a).post(BASES, {"name": "Nope"}, format="json").status_code == 403
    duplicate = editor.post(BASES, {"name": "Support"}, format="json")
    assert duplicate.status_code == 400 and "already exists" in duplicate.json()["error"]["message"]
    bad = editor.patch(f"{BASES}{body['id']}/", {"embedding_model": "nope"}, format="json")
    assert bad.status_code == 400 and "not available" in bad.json()["error"]["message"]
    listed = api(viewer_a).get(BASES).json()
    assert [kb["name"] for kb in listed["results"]] == ["Support"]


def test_upload_ingest_version_and_search(api: Any, editor_a: Any, viewer_a: Any, org_a: Any,
                                          run_tasks: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    editor = api(editor_a)
    pdf = SimpleUploadedFile("policy.pdf", make_pdf(["Refunds are paid within 30 days of the return."]),
                             content_type="application/pdf")
    with run_tasks():
        response = editor.post(docs_url(kb), {"file": pdf, "title": "Refund policy"}, format="multipart")
    assert response.status_code == 201, response.json()
    doc_id = response.json()["id"]
    detail = editor.get(f"{docs_url(kb)}{doc_id}/").json()
    assert detail["state"] == "ready" and detail["progress"] == 100 and detail["current_version"] == 1

    with run_tasks():
        response = editor.post(f"{docs_url(kb)}{doc_id}/versions/", {"text": "ignored"}, format="json")
    assert response.status_code == 400 and "same kind" in response.json()["error"]["message"]
    pdf2 = SimpleUploadedFile("policy.pdf", make_pdf(["Refunds are paid within 14 days of the return."]))
    with run_tasks():
        response = editor.post(f"{docs_url(kb)}{doc_id}/versions/", {"file": pdf2}, format="multipart")
    assert response.status_code == 201 and response.json()["number"] == 2
    versions = api(viewer_a).get(f"{docs_url(kb)}{doc_id}/versions/").json()
    assert [(v["number"], v["is_current"], v["state"]) for v in versions] == [(2, True, "ready"), (1, False, "ready")]

    # Searching is reading: a viewer may POST a search.
    response = api(viewer_a).post(f"{BASES}{kb.public_id}/search/", {"query": "how fast is my refund", "k": 3},
                                  format="json")
    assert response.status_code == 200
    hits = response.json()["results"]
    assert hits[0]["document_id"] == doc_id and hits[0]["version"] == 2 and "14 days" in hits[0]["text"]
    assert {"score", "vector_similarity", "start", "end", "heading"} <= set(hits[0])

    many = api(viewer_a).post(f"{BASES}search/", {"query": "refund", "knowledge_bases": [str(kb.public_id)]},
                              format="json")
    assert many.status_code == 200 and many.json()["results"]


def test_text_and_url_sources_validation(api: Any, editor_a: Any, org_a: Any, run_tasks: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    editor = api(editor_a)
    with run_tasks():
        response = editor.post(docs_url(kb), {"text": "# Hours\nOpen nine to five.", "title": "Hours"}, format="json")
    assert response.status_code == 201 and response.json()["source_type"] == "text"
    both = editor.post(docs_url(kb), {"text": "a", "url": "https://example.com/"}, format="json")
    assert both.status_code == 400 and "exactly one" in both.json()["error"]["message"]
    neither = editor.post(docs_url(kb), {"title": "x"}, format="json")
    assert neither.status_code == 400


def test_failed_upload_reports_reason(api: Any, editor_a: Any, org_a: Any, run_tasks: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    with run_tasks():
        response = api(editor_a).post(docs_url(kb), {"file": SimpleUploadedFile("x.pdf", b"%PDF-1.4 nope")},
                                      format="multipart")
    doc = api(editor_a).get(f"{docs_url(kb)}{response.json()['id']}/").json()
    assert doc["state"] == "failed" and doc["error_code"] == "corrupt" and "x.pdf" in doc["error_message"]


def test_delete_document_and_base(api: Any, editor_a: Any, viewer_a: Any, org_a: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    document = ingest(kb, "a.txt", b"Delete me.")
    url = f"{docs_url(kb)}{document.public_id}/"
    assert api(viewer_a).delete(url).status_code == 403
    assert api(editor_a).delete(url).status_code == 204
    assert not Chunk.objects.filter(knowledge_base=kb).exists()
    assert api(editor_a).delete(f"{BASES}{kb.public_id}/").status_code == 204
    assert not KnowledgeBase.objects.filter(pk=kb.pk).exists()


def test_isolation_matrix_for_documents_versions_and_search(api: Any, api_key_client: Any, org_a: Any,
                                                            org_b: Any, owner_a: Any, viewer_a: Any,
                                                            outsider: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Private")
    document = ingest(kb, "secret.txt", b"The vault code is 4321.")
    doc_url = f"{docs_url(kb)}{document.public_id}/"
    urls = {
        "documents": (docs_url(kb), "get"),
        "document": (doc_url, "get"),
        "versions": (f"{doc_url}versions/", "get"),
        "search": (f"{BASES}{kb.public_id}/search/", "post"),
    }
    body = {"query": "vault code"}
    for name, (url, method) in urls.items():
        assert getattr(api(), method)(url, body, format="json").status_code == 401, name
        assert getattr(api(outsider), method)(url, body, format="json").status_code == 404, name
        assert getattr(api_key_client(org_b, "admin"), method)(url, body, format="json").status_code == 404, name
        assert getattr(api(owner_a), method)(url, body, format="json").status_code == 200, name
        assert getattr(api_key_client(org_a, "viewer"), method)(url, body, format="json").status_code == 200, name
    # Writes from another org are 404, from a viewer 403; nothing changes.
    assert api(outsider).delete(doc_url).status_code == 404
    assert api(outsider).post(docs_url(kb), {"text": "x"}, format="json").status_code == 404
    assert api(outsider).post(f"{doc_url}versions/", {"text": "x"}, format="json").status_code == 404
    assert api(viewer_a).patch(doc_url, {"title": "x"}, format="json").status_code == 403
    assert api(viewer_a).post(docs_url(kb), {"text": "x"}, format="json").status_code == 403
    assert Document.objects.get(pk=document.pk).title == "secret.txt"
    # Cross-org search by id in the multi-base endpoint: refused as unknown, nothing leaks.
    response = api(outsider).post(f"{BASES}search/", {"query": "vault", "knowledge_bases": [str(kb.public_id)]},
                                  format="json")
    assert response.status_code == 400 and "No such knowledge base" in response.json()["error"]["message"]
    assert "4321" not in response.content.decode()
    # A document id of org A under a base of org B is a 404 as well.
    kb_b = services.create_knowledge_base(org_b, SYSTEM, name="Other")
    assert api(outsider).get(f"{docs_url(kb_b)}{document.public_id}/").status_code == 404
