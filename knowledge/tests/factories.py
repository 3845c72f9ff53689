"""Factories for the org-isolation matrix (voiceplatform/tests/test_isolation_matrix.py)."""

from __future__ import annotations

from typing import Any

from knowledge.models import Document, DocumentVersion, IngestState, KnowledgeBase, SourceType
from voiceplatform.testing import register_factory


@register_factory(KnowledgeBase)
def make_knowledge_base(org: Any) -> KnowledgeBase:
    return KnowledgeBase.objects.create(org=org, name=f"Support {KnowledgeBase.objects.count() + 1}")


@register_factory(Document)
def make_document(org: Any) -> Document:
    kb = make_knowledge_base(org)
    document = Document.objects.create(org=org, knowledge_base=kb, title="Pricing", source_type=SourceType.TEXT)
    version = DocumentVersion.objects.create(org=org, document=document, number=1, pasted_text="Pro costs $20.",
                                             file_type="text", state=IngestState.READY, progress=100)
    Document.objects.filter(pk=document.pk).update(current_version=version, latest_version=version)
    document.refresh_from_db()
    return document


@register_factory(DocumentVersion)
def make_document_version(org: Any) -> DocumentVersion:
    version = make_document(org).current_version
    assert version is not None
    return version
