"""Dashboard pages: bases, documents with state/progress, versions, delete, playground, scoping."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import services
from knowledge.models import Chunk, Document, DocumentVersion, IngestState, KnowledgeBase
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db


def test_create_base_and_list_with_agents_using_it(login: Any, editor_a: Any, org_a: Any) -> None:
    client = login(editor_a)
    response = client.post("/knowledge/", {"name": "Support", "description": "FAQ",
                                           "model": "local/all-MiniLM-L6-v2/384"})
    assert response.status_code == 302
    kb = KnowledgeBase.objects.for_org(org_a).get(name="Support")
    from agents.tests.factories import make_agent

    make_agent(org_a, name="Front desk", knowledge_base_ids=[str(kb.public_id)])
    page = client.get("/knowledge/").content.decode()
    assert "Support" in page and "Front desk" in page
    assert "Front desk" in client.get(f"/knowledge/{kb.public_id}/").content.decode()


def test_progress_bar_while_ingesting_and_polling_stops_when_done(login: Any, viewer_a: Any, org_a: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    document = Document.objects.create(org=org_a, knowledge_base=kb, title="Manual", source_type="upload")
    version = DocumentVersion.objects.create(org=org_a, document=document, number=1, state=IngestState.EMBEDDING,
                                             progress=42, file_type="pdf")
    Document.objects.filter(pk=document.pk).update(latest_version=version)
    client = login(viewer_a)
    rows = client.get(f"/knowledge/{kb.public_id}/documents/").content.decode()
    assert 'aria-valuenow="42"' in rows and "width: 42%" in rows and 'hx-trigger="every 2s"' in rows
    DocumentVersion.objects.filter(pk=version.pk).update(state=IngestState.FAILED, error_code="corrupt",
                                                         error_message="Manual.pdf: the PDF is damaged")
    rows = client.get(f"/knowledge/{kb.public_id}/documents/").content.decode()
    assert "the PDF is damaged" in rows and "hx-trigger" not in rows


def test_upload_reupload_versions_and_delete(login: Any, editor_a: Any, org_a: Any, run_tasks: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    client = login(editor_a)
    with run_tasks():
        response = client.post(f"/knowledge/{kb.public_id}/add/", {
            "file": SimpleUploadedFile("hours.txt", b"We open at nine."), "title": ""})
    assert response.status_code == 302
    document = Document.objects.get(knowledge_base=kb)
    assert document.title == "hours.txt"
    url = f"/knowledge/{kb.public_id}/documents/{document.public_id}/"
    with run_tasks():
        assert client.post(url, {"file": SimpleUploadedFile("hours.txt", b"We open at ten.")}).status_code == 302
    page = client.get(url).content.decode()
    assert "v2" in page and "v1" in page and "live" in page
    detail = client.get(f"/knowledge/{kb.public_id}/").content.decode()
    assert '<span class="badge ok">Ready</span>' in detail
    bad = client.post(f"/knowledge/{kb.public_id}/add/", {"text": "a", "url": "https://example.com/"})
    assert bad.status_code == 400 and "exactly one" in bad.content.decode()
    assert client.post(f"{url}delete/").status_code == 302
    assert not Document.objects.filter(pk=document.pk).exists() and not Chunk.objects.exists()


def test_search_playground_shows_scores(login: Any, viewer_a: Any, org_a: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    ingest(kb, "faq.md", b"# Parking\n\nCustomers park for free behind the store.")
    page = login(viewer_a).get(f"/knowledge/{kb.public_id}/search/",
                               {"query": "where can I leave my car", "k": 3, "bases": [str(kb.public_id)]})
    html = page.content.decode()
    assert page.status_code == 200
    assert "Customers park for free behind the store." in html and "sim 0." in html and "faq.md" in html


def test_roles_and_other_orgs(login: Any, viewer_a: Any, outsider: Any, org_a: Any, client: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Support")
    document = Document.objects.create(org=org_a, knowledge_base=kb, title="Doc", source_type="text")
    pages = [f"/knowledge/{kb.public_id}/", f"/knowledge/{kb.public_id}/search/",
             f"/knowledge/{kb.public_id}/documents/", f"/knowledge/{kb.public_id}/documents/{document.public_id}/"]
    for page in pages:
        assert client.get(page).status_code == 302  # anonymous → login
        assert login(outsider).get(page).status_code == 404
        assert login(viewer_a).get(page).status_code == 200
    assert "Support" not in login(outsider).get("/knowledge/").content.decode()
    viewer = login(viewer_a)
    assert viewer.post(f"/knowledge/{kb.public_id}/delete/").status_code == 403
    assert viewer.post(f"/knowledge/{kb.public_id}/add/", {"text": "x"}).status_code == 403
    assert login(outsider).post(f"/knowledge/{kb.public_id}/delete/").status_code == 404
    assert KnowledgeBase.objects.filter(pk=kb.pk).exists()
