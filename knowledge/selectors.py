"""Scoped reads for views, the API and other apps. Every query starts from `for_org`."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from knowledge.models import Document, DocumentVersion, KnowledgeBase
from knowledge.search import SearchHit, asearch_knowledge, format_for_agent, search_knowledge
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
    """Agents whose configuration references this base, whatever the agents app calls
    the relation (found through Django's reverse relations, so knowledge never
    imports agents)."""
    found: list[Any] = []
    for relation in KnowledgeBase._meta.related_objects:
        related = relation.related_model
        if related._meta.app_label != "agents" or not (relation.many_to_many or relation.many_to_one
                                                        or relation.one_to_many):
            continue
        manager = getattr(related, "objects", None)
        if manager is None or not hasattr(manager, "for_org"):
            continue
        field_name = relation.field.name
        found.extend(manager.for_org(org).filter(**{field_name: kb}).distinct())
    return found
