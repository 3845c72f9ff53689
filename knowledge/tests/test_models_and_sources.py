"""Embedding model changes, API-backed bases, URL sources and retry behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from knowledge import services
from knowledge.models import Chunk, IngestState
from knowledge.search import search_knowledge
from knowledge.testing.fake_embeddings import FakeGeminiEmbeddings, FakeOpenAIEmbeddings
from knowledge.testing.fake_server import FakeHTTPServer, RecordedRequest, Response
from orgs.services import SYSTEM, set_provider_credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_openai(org_a: Any) -> Any:
    with FakeOpenAIEmbeddings(api_key="sk-org-a") as fake:
        set_provider_credential(org_a, SYSTEM, "openai", {"api_key": "sk-org-a"},
                                config={"base_url": f"{fake.base_url}/v1"})
        yield fake


def test_openai_base_ingests_and_searches_with_the_orgs_key(org_a: Any, fake_openai: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="API", embedding_backend="openai",
                                        embedding_model="text-embedding-3-small", embedding_dimensions=1536)
    document = ingest(kb, "faq.txt", b"Parcels are shipped with DHL. Invoices are emailed monthly.")
    assert document.current_version.state == IngestState.READY
    assert Chunk.objects.get(document=document).embedding_dims == 1536
    hits = search_knowledge(org_a, [kb.public_id], "which courier ships parcels", k=1)
    assert hits and hits[0].vector_rank == 1
    assert {r.headers["authorization"] for r in fake_openai.requests} == {"Bearer sk-org-a"}


def test_model_change_reembeds_every_document(org_a: Any, fake_openai: Any, kb_a: Any, ingest: Any,
                                              run_tasks: Any) -> None:
    first = ingest(kb_a, "a.txt", b"Our warehouse is in Leeds.")
    second = ingest(kb_a, "b.txt", b"Returns go to the Bristol depot.")
    assert set(Chunk.objects.filter(knowledge_base=kb_a).values_list("embedding_dims", flat=True)) == {384}
    with run_tasks():
        services.update_knowledge_base(kb_a, SYSTEM, embedding_backend="openai",
                                       embedding_model="text-embedding-3-small", embedding_dimensions=768)
    chunks = Chunk.objects.filter(knowledge_base=kb_a)
    assert set(chunks.values_list("embedding_model", flat=True)) == {"openai:text-embedding-3-small:768"}
    assert set(chunks.values_list("embedding_dims", flat=True)) == {768}
    for document in (first, second):
        document.current_version.refresh_from_db()
        assert document.current_version.state == IngestState.READY
        assert document.current_version.embedding_model == "openai:text-embedding-3-small:768"
    kb_a.refresh_from_db()
    hits = search_knowledge(org_a, [kb_a.public_id], "where are returns sent", k=2)
    assert hits[0].document_id == str(second.public_id) and hits[0].vector_similarity is not None


def test_invalid_model_choice_is_refused(kb_a: Any) -> None:
    with pytest.raises(ValidationError, match="local/text-embedding-3-small/384 is not available"):
        services.update_knowledge_base(kb_a, SYSTEM, embedding_model="text-embedding-3-small")


def test_missing_credential_fails_the_document_with_reason(org_a: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Gemini", embedding_backend="gemini",
                                        embedding_model="gemini-embedding-001", embedding_dimensions=768)
    document = ingest(kb, "a.txt", b"Some text.")
    version = document.latest_version
    assert version.state == IngestState.FAILED and version.error_code == "embedding_failed"
    assert "no gemini credential" in version.error_message


def test_provider_outage_retries_then_fails_with_reason(org_a: Any, django_capture_on_commit_callbacks: Any,
                                                        request: Any) -> None:
    from knowledge.tasks import MAX_RETRIES, ingest_document_version
    from voiceplatform.celery import app

    # Celery's apply() replays retries eagerly (sig.apply with retries+1), which is
    # what a worker does on each redelivery; errors must not propagate between them.
    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    request.addfinalizer(lambda: setattr(app.conf, "task_eager_propagates", previous))

    def run_task(document: Any) -> str:
        args = [str(org_a.public_id), str(document.latest_version.public_id)]
        state = ingest_document_version.apply(args=args, throw=False).state
        document.refresh_from_db()
        return state

    with FakeGeminiEmbeddings(api_key="g") as fake:
        set_provider_credential(org_a, SYSTEM, "gemini", {"api_key": "g"}, config={"base_url": fake.base_url})
        kb = services.create_knowledge_base(org_a, SYSTEM, name="Gemini", embedding_backend="gemini",
                                            embedding_model="gemini-embedding-001", embedding_dimensions=768)
        fake.fail_next = [(503, "overloaded"), (429, "quota")]
        with django_capture_on_commit_callbacks(execute=False):
            document = services.add_document(kb, SYSTEM, services.SourceInput(text="Retry me."))
        assert run_task(document) == "SUCCESS"
        assert len(fake.requests) == 3  # two failures, then the successful retry
        assert document.current_version.state == IngestState.READY

        fake.fail_next = [(503, "overloaded")] * (MAX_RETRIES + 1)
        with django_capture_on_commit_callbacks(execute=False):
            failing = services.add_document(kb, SYSTEM, services.SourceInput(text="Never gets through."))
        before = len(fake.requests)
        assert run_task(failing) == "SUCCESS"  # the task gave up cleanly, not crashed
        assert len(fake.requests) - before == MAX_RETRIES + 1
        version = failing.latest_version
        assert version.state == IngestState.FAILED and version.error_code == "embedding_unavailable"
        assert "overloaded" in version.error_message
        assert not Chunk.objects.filter(document=failing).exists()
        assert Chunk.objects.filter(document=document, is_active=True).exists()


class FakeSite(FakeHTTPServer):
    """A small website: pages, a redirect, a big file and a 404."""

    def handle(self, request: RecordedRequest) -> Response:
        path = request.path
        if path == "/help":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, (
                b"<html><head><title>Help</title></head><body><h1>Help</h1>"
                b"<h2>Delivery</h2><p>We deliver on Tuesdays and Fridays.</p></body></html>")
        if path == "/old-help":
            return 301, {"Location": "/help"}, b""
        if path == "/big":
            return 200, {"Content-Type": "text/plain"}, b"a " * 5000
        if path == "/guide.md":
            return 200, {"Content-Type": "application/octet-stream"}, b"# Guide\n\nPress the red button."
        return 404, {"Content-Type": "text/plain"}, b"missing"


@pytest.fixture
def site(settings: Any) -> Any:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    with FakeSite() as fake:
        yield fake


def add_url(kb: Any, url: str, run_tasks: Any) -> Any:
    with run_tasks():
        document = services.add_document(kb, SYSTEM, services.SourceInput(url=url))
    document.refresh_from_db()
    return document


def test_url_source_is_fetched_by_the_worker(kb_a: Any, site: Any, run_tasks: Any) -> None:
    document = add_url(kb_a, f"{site.base_url}/old-help", run_tasks)
    version = document.current_version
    assert version.state == IngestState.READY and version.file_type == "html"
    assert "We deliver on Tuesdays and Fridays." in version.extracted_text and version.checksum
    assert search_knowledge(kb_a.org, [kb_a.public_id], "which days do you deliver", k=1)[0].heading.endswith("Delivery")


def test_url_type_from_name_when_server_says_octet_stream(kb_a: Any, site: Any, run_tasks: Any) -> None:
    document = add_url(kb_a, f"{site.base_url}/guide.md", run_tasks)
    assert document.current_version.file_type == "md"


@pytest.mark.parametrize("path,code,reason", [
    ("/missing", "fetch_failed", "HTTP 404"),
    ("/big", "too_large", "file too large: the page is larger than 1,000 bytes as received, limit 1,000 bytes"),
])
def test_url_failures_have_reasons(kb_a: Any, site: Any, run_tasks: Any, settings: Any, path: str, code: str,
                                   reason: str) -> None:
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1000
    version = add_url(kb_a, f"{site.base_url}{path}", run_tasks).latest_version
    assert version.state == IngestState.FAILED and version.error_code == code and reason in version.error_message


def test_private_addresses_are_refused_by_default(kb_a: Any, run_tasks: Any, settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False
    with FakeSite() as fake:
        with pytest.raises(ValidationError, match="loopback address") as refused:
            add_url(kb_a, f"{fake.base_url}/help", run_tasks)
        assert not fake.requests
    assert "url" in refused.value.message_dict


def test_source_must_be_exactly_one(kb_a: Any) -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        services.add_document(kb_a, SYSTEM, services.SourceInput(text="a", url="http://x.test/"))
