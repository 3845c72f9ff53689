"""Scoped reads for views, the API and other apps. Every query starts from `for_org`."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from knowledge.models import Document, DocumentVersion, KnowledgeBase
from knowledge.passages import format_for_agent
from knowledge.search import SearchHit, asearch_knowledge, search_knowledge
from orgs.models import Organization

__all__ = [
    "knowledge_bases", "documents", "versions", "agents_using", "SearchHit", "search_knowledge",
    "asearch_knowledge", "format_for_agent",
]


def knowledge_bases(org: Organization) -> QuerySet[KnowledgeBase]:
    return KnowledgeBase.objects.for_org(org).annotate(document_count=Count("documents"))


def documents(org: Organization, kb: KnowledgeBase) -> QuerySet[Document]:
    return (Document.objects.for_org(org).filter(knowledge_base=kb)
            .select_related("latest_version", "current_version", "knowledge_base"))


def versions(org: Organization, document: Document) -> QuerySet[DocumentVersion]:
    return DocumentVersion.objects.for_org(org).filter(document=document).defer("extracted_text", "pasted_text")


def agents_using(org: Organization, kb: KnowledgeBase) -> list[Any]:
    """Agents whose configuration lists this base (`Agent.knowledge_base_ids` holds
    public ids). Looked up through the app registry so knowledge never imports agents."""
    from django.apps import apps

    try:
        agent_model = apps.get_model("agents", "Agent")
    except LookupError:
        return []
    return list(agent_model.objects.for_org(org).filter(knowledge_base_ids__contains=[str(kb.public_id)])
                .order_by("name"))
