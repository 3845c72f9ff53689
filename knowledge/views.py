"""Dashboard pages: knowledge bases, documents (state, progress, versions), search playground."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from knowledge import selectors, services
from knowledge.embeddings import EmbeddingError
from knowledge.embeddings.local import is_model_loaded
from knowledge.forms import KnowledgeBaseForm, SearchForm, SourceForm, split_model
from knowledge.models import IN_PROGRESS_STATES, Document, EmbeddingBackendChoice, KnowledgeBase, Language
from orgs.models import role_at_least
from voiceplatform.views import OrgViewMixin


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{' '.join(v)}" for v in exc.message_dict.values())
    return " ".join(exc.messages)


class KnowledgeMixin(OrgViewMixin):
    def get_kb(self, public_id: Any) -> KnowledgeBase:
        return get_object_or_404(selectors.knowledge_bases(self.org), public_id=public_id)

    def get_document(self, kb: KnowledgeBase, public_id: Any) -> Document:
        return get_object_or_404(selectors.documents(self.org, kb), public_id=public_id)

    def can_edit(self) -> bool:
        return role_at_least(self.role, self.write_role)


class BaseListView(KnowledgeMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render(request, KnowledgeBaseForm(initial={"model": "local/all-MiniLM-L6-v2/384"}))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = KnowledgeBaseForm(request.POST)
        if form.is_valid():
            try:
                kb = services.create_knowledge_base(
                    self.org, self.actor, name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    language=form.cleaned_data["language"] or Language.ENGLISH,
                    **split_model(form.cleaned_data["model"]))
            except ValidationError as exc:
                form.add_error(None, _errors(exc))
            else:
                messages.success(request, f"Created {kb.name}. Add documents to it.")
                return redirect("knowledge:detail", public_id=kb.public_id)
        return self.render(request, form, status=400)

    def render(self, request: HttpRequest, form: KnowledgeBaseForm, status: int = 200) -> HttpResponse:
        rows = [{"kb": kb, "agents": selectors.agents_using(self.org, kb)}
                for kb in selectors.knowledge_bases(self.org)]
        return render(request, "knowledge/list.html", {"rows": rows, "form": form, "can_edit": self.can_edit()},
                      status=status)


class BaseDetailView(KnowledgeMixin, View):
    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        return self.render(request, kb, SourceForm(), KnowledgeBaseForm(initial={
            "name": kb.name, "description": kb.description,
            "model": f"{kb.embedding_backend}/{kb.embedding_model}/{kb.embedding_dimensions}",
            "language": kb.language}))

    def render(self, request: HttpRequest, kb: KnowledgeBase, source_form: SourceForm,
               settings_form: KnowledgeBaseForm, status: int = 200) -> HttpResponse:
        return render(request, "knowledge/detail.html", {
            "kb": kb, "source_form": source_form, "settings_form": settings_form, "can_edit": self.can_edit(),
            "agents": selectors.agents_using(self.org, kb), **_documents_context(self.org, kb),
        }, status=status)


def _documents_context(org: Any, kb: KnowledgeBase) -> dict[str, Any]:
    documents = list(selectors.documents(org, kb))
    busy = any(d.latest_version and d.latest_version.state in IN_PROGRESS_STATES for d in documents)
    return {"kb": kb, "documents": documents, "busy": busy}


class DocumentRowsView(KnowledgeMixin, View):
    """The documents table alone: htmx polls it while anything is ingesting."""

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        return render(request, "knowledge/_documents.html", {**_documents_context(self.org, kb),
                                                             "can_edit": self.can_edit()})


class AddDocumentView(KnowledgeMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        form = SourceForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                document = services.add_document(kb, self.actor, services.SourceInput(
                    upload=data.get("file"), text=data.get("text") or None, url=data.get("url") or None),
                    title=data.get("title", ""))
            except ValidationError as exc:
                form.add_error(None, _errors(exc))
            else:
                messages.success(request, f"Added {document.title}; it is being ingested.")
                return redirect("knowledge:detail", public_id=kb.public_id)
        return BaseDetailView.render(self, request, kb, form, KnowledgeBaseForm(initial={
            "name": kb.name, "description": kb.description,
            "model": f"{kb.embedding_backend}/{kb.embedding_model}/{kb.embedding_dimensions}",
            "language": kb.language}), status=400)


class BaseSettingsView(KnowledgeMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        form = KnowledgeBaseForm(request.POST)
        if form.is_valid():
            old_key = kb.spec.key
            try:
                kb = services.update_knowledge_base(kb, self.actor, name=form.cleaned_data["name"],
                                                    description=form.cleaned_data["description"],
                                                    language=form.cleaned_data["language"] or kb.language,
                                                    **split_model(form.cleaned_data["model"]))
            except ValidationError as exc:
                form.add_error(None, _errors(exc))
            else:
                note = " Documents are being re-embedded." if kb.spec.key != old_key else ""
                messages.success(request, f"Saved.{note}")
                return redirect("knowledge:detail", public_id=kb.public_id)
        return BaseDetailView.render(self, request, kb, SourceForm(), form, status=400)


class BaseDeleteView(KnowledgeMixin, View):
    def post(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        services.delete_knowledge_base(kb, self.actor)
        messages.success(request, f"Deleted {kb.name} and all its documents.")
        return redirect("knowledge:list")


class DocumentDetailView(KnowledgeMixin, View):
    def get(self, request: HttpRequest, public_id: Any, document_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        return self.render(request, kb, self.get_document(kb, document_id), SourceForm())

    def post(self, request: HttpRequest, public_id: Any, document_id: Any) -> HttpResponse:
        """A new version (re-upload)."""
        kb = self.get_kb(public_id)
        document = self.get_document(kb, document_id)
        form = SourceForm(request.POST, request.FILES)
        if form.is_valid():
            data = form.cleaned_data
            try:
                version, created = services.add_version(document, self.actor, services.SourceInput(
                    upload=data.get("file"), text=data.get("text") or None, url=data.get("url") or None))
            except ValidationError as exc:
                form.add_error(None, _errors(exc))
            else:
                messages.success(request, f"Version {version.number} is being ingested." if created
                                 else f"Identical to version {version.number}; no new version made.")
                return redirect("knowledge:document", public_id=kb.public_id, document_id=document.public_id)
        return self.render(request, kb, document, form, status=400)

    def render(self, request: HttpRequest, kb: KnowledgeBase, document: Document, form: SourceForm,
               status: int = 200) -> HttpResponse:
        versions = list(selectors.versions(self.org, document))
        return render(request, "knowledge/document.html", {
            "kb": kb, "document": document, "versions": versions, "form": form, "can_edit": self.can_edit(),
            "busy": any(v.state in IN_PROGRESS_STATES for v in versions)}, status=status)


class DocumentDeleteView(KnowledgeMixin, View):
    def post(self, request: HttpRequest, public_id: Any, document_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        document = self.get_document(kb, document_id)
        services.delete_document(document, self.actor)
        messages.success(request, f"Deleted {document.title} and its chunks.")
        return redirect("knowledge:detail", public_id=kb.public_id)


class SearchPlaygroundView(KnowledgeMixin, View):
    """Try a query the way an agent's search_knowledge tool runs it, with every score shown."""

    def get(self, request: HttpRequest, public_id: Any) -> HttpResponse:
        kb = self.get_kb(public_id)
        choices = [(str(b.public_id), b.name) for b in selectors.knowledge_bases(self.org)]
        data = request.GET if "query" in request.GET else None
        form = SearchForm(data, base_choices=choices, initial={"bases": [str(kb.public_id)], "k": 5})
        hits = None
        error = None
        if form.is_bound and form.is_valid():
            try:
                hits = selectors.search_knowledge(self.org, form.cleaned_data["bases"], form.cleaned_data["query"],
                                                  form.cleaned_data["k"])
            except EmbeddingError as exc:
                error = f"Search is unavailable: {exc.message}"
        # Said before the first search of a process that has not loaded the local model yet: it then
        # takes seconds, and the page says so instead of looking stuck.
        model_cold = (kb.embedding_backend == EmbeddingBackendChoice.LOCAL
                      and not is_model_loaded(kb.embedding_model))
        return render(request, "knowledge/search.html", {"kb": kb, "form": form, "hits": hits, "error": error,
                                                         "model_cold": model_cold})
