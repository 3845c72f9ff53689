"""Django admin for knowledge bases and documents, scoped like the rest (OrgScopedAdmin).

Saves and deletes go through knowledge.services, so an embedding-model change made
here re-embeds exactly as one made in the dashboard or API, and deletes remove
stored files. Versions are read-only; new documents are added in the dashboard or
API (uploads need the ingestion pipeline, not a bare form).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from knowledge import services
from knowledge.models import Document, DocumentVersion, KnowledgeBase
from orgs.services import Actor
from voiceplatform.admin import OrgScopedAdmin, OrgScopedInline, _org


class VersionInline(OrgScopedInline):
    model = DocumentVersion
    fk_name = "document"
    fields = ["number", "state", "progress", "error_code", "error_message", "filename", "file_type",
              "chunk_count", "embedding_model", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(OrgScopedAdmin):
    list_display = ["name", "embedding_backend", "embedding_model", "embedding_dimensions", "updated_at"]
    list_filter = ["embedding_backend"]
    search_fields = ["name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    delete_service = services.delete_knowledge_base
    fields = ["org", "name", "description", "embedding_backend", "embedding_model", "embedding_dimensions",
              "language", "public_id", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: KnowledgeBase, form: Any, change: bool) -> None:
        actor = Actor.from_request(request)
        values = {f: form.cleaned_data[f] for f in ("name", "description", "embedding_backend",
                                                    "embedding_model", "embedding_dimensions", "language")}
        if change:
            fresh = KnowledgeBase.objects.get(pk=obj.pk)
            saved = services.update_knowledge_base(fresh, actor, **values)
        else:
            org = obj.org if request.user.is_superuser else _org(request)
            saved = services.create_knowledge_base(org, actor, **values)
        obj.pk, obj.public_id = saved.pk, saved.public_id


@admin.register(Document)
class DocumentAdmin(OrgScopedAdmin):
    list_display = ["title", "knowledge_base", "source_type", "state", "current_number", "updated_at"]
    list_filter = ["source_type", "latest_version__state"]
    search_fields = ["title"]
    list_select_related = ["knowledge_base", "latest_version", "current_version"]
    fields = ["title", "knowledge_base", "source_type", "source_url", "public_id", "created_at", "updated_at"]
    readonly_fields = ["knowledge_base", "source_type", "source_url", "public_id", "created_at", "updated_at"]
    inlines = [VersionInline]
    delete_service = services.delete_document

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.display(description="State")
    def state(self, obj: Document) -> str:
        version = obj.latest_version
        if version is None:
            return "—"
        label = version.get_state_display()
        return f"{label} ({version.progress}%)" if version.is_in_progress else label

    @admin.display(description="Current version")
    def current_number(self, obj: Document) -> str:
        return f"v{obj.current_version.number}" if obj.current_version else "—"

    def save_model(self, request: HttpRequest, obj: Document, form: Any, change: bool) -> None:
        fresh = Document.objects.get(pk=obj.pk)
        services.rename_document(fresh, Actor.from_request(request), form.cleaned_data["title"])
