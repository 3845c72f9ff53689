"""REST API: /api/v1/knowledge-bases/…, their documents, versions and search."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from knowledge import selectors, services
from knowledge.api.serializers import (
    DocumentSerializer,
    KnowledgeBaseSerializer,
    MultiSearchRequestSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
    SourceSerializer,
    VersionSerializer,
)
from knowledge.embeddings import EmbeddingError
from knowledge.models import Document, KnowledgeBase
from orgs.models import Role
from voiceplatform.api import OrgScopedViewSet


def _search(org: Any, kb_ids: list[Any], query: str, k: int) -> Response:
    try:
        hits = selectors.search_knowledge(org, kb_ids, query, k)
    except EmbeddingError as exc:
        # The query could not be embedded (provider down, key missing): say so plainly.
        raise exceptions.APIException(f"Search is unavailable: {exc.message}") from exc
    return Response({"results": [hit.as_dict() for hit in hits]})


class KnowledgeBaseViewSet(OrgScopedViewSet):
    """Knowledge bases. Changing the embedding backend/model/dimensions re-embeds every document."""

    model = KnowledgeBase
    serializer_class = KnowledgeBaseSerializer
    queryset = KnowledgeBase.objects.none()
    # Searching is reading, whatever the HTTP method.
    action_roles = {"search": Role.VIEWER, "search_many": Role.VIEWER}

    def get_queryset(self) -> Any:
        return selectors.knowledge_bases(self.org)

    def perform_create(self, serializer: KnowledgeBaseSerializer) -> None:
        serializer.instance = services.create_knowledge_base(self.org, self.actor, **serializer.validated_data)

    def perform_update(self, serializer: KnowledgeBaseSerializer) -> None:
        serializer.instance = services.update_knowledge_base(serializer.instance, self.actor,
                                                             **serializer.validated_data)

    def perform_destroy(self, instance: KnowledgeBase) -> None:
        services.delete_knowledge_base(instance, self.actor)

    @extend_schema(request=SearchRequestSerializer, responses=SearchResponseSerializer,
                   operation_id="knowledge_bases_search")
    @action(detail=True, methods=["post"])
    def search(self, request: Request, public_id: str | None = None) -> Response:
        kb = self.get_object()
        body = SearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return _search(self.org, [kb.public_id], body.validated_data["query"], body.validated_data["k"])

    @extend_schema(request=MultiSearchRequestSerializer, responses=SearchResponseSerializer,
                   operation_id="knowledge_bases_search_many")
    @action(detail=False, methods=["post"], url_path="search")
    def search_many(self, request: Request) -> Response:
        body = MultiSearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data["knowledge_bases"]
        found = set(selectors.knowledge_bases(self.org).filter(public_id__in=ids).values_list("public_id", flat=True))
        missing = [str(i) for i in ids if i not in found]
        if missing:
            # Another org's base reads exactly like one that does not exist.
            raise exceptions.ValidationError({"knowledge_bases": [f"No such knowledge base in this organisation: "
                                                                  f"{', '.join(missing)}."]})
        return _search(self.org, ids, body.validated_data["query"], body.validated_data["k"])


class DocumentViewSet(OrgScopedViewSet):
    """Documents of one knowledge base. Create with multipart `file`, or JSON `text` / `url`.
    `POST …/versions/` re-uploads: a new version (an identical upload returns the latest, 200)."""

    model = Document
    serializer_class = DocumentSerializer
    queryset = Document.objects.none()
    lookup_field = "public_id"
    lookup_value_regex = "[0-9a-f-]{36}"
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def knowledge_base(self) -> KnowledgeBase:
        try:
            return KnowledgeBase.objects.for_org(self.org).get(public_id=self.kwargs["kb_public_id"])
        except (KnowledgeBase.DoesNotExist, DjangoValidationError, ValueError):
            raise Http404 from None  # another org's base is as absent as a made-up id

    def get_queryset(self) -> Any:
        if self.org is None:
            return Document.objects.none()
        return selectors.documents(self.org, self.knowledge_base())

    @extend_schema(request=SourceSerializer, responses={201: DocumentSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        kb = self.knowledge_base()
        body = SourceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        document = services.add_document(kb, self.actor, _source(data), title=data.get("title", ""))
        document = selectors.documents(self.org, kb).get(pk=document.pk)
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: DocumentSerializer) -> None:
        title = serializer.validated_data.get("title")
        if title is not None:
            serializer.instance = services.rename_document(serializer.instance, self.actor, title)

    def perform_destroy(self, instance: Document) -> None:
        services.delete_document(instance, self.actor)

    @extend_schema(request=SourceSerializer, responses={200: VersionSerializer(many=True), 201: VersionSerializer})
    @action(detail=True, methods=["get", "post"])
    def versions(self, request: Request, kb_public_id: str | None = None, public_id: str | None = None) -> Response:
        document = self.get_object()
        if request.method == "GET":
            versions = selectors.versions(self.org, document).select_related("document")
            return Response(VersionSerializer(versions, many=True).data)
        body = SourceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version, created = services.add_version(document, self.actor, _source(body.validated_data))
        version.document.refresh_from_db()
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _source(data: dict[str, Any]) -> services.SourceInput:
    return services.SourceInput(upload=data.get("file"), text=data.get("text"), url=data.get("url"))
