from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from knowledge.embeddings import SUPPORTED_DIMENSIONS
from knowledge.models import Document, DocumentVersion, EmbeddingBackendChoice, KnowledgeBase
from knowledge.search import MAX_K
from voiceplatform.api import PublicIdField


class AgentRefSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField()


class KnowledgeBaseSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    embedding_backend = serializers.ChoiceField(choices=EmbeddingBackendChoice.choices, required=False)
    embedding_dimensions = serializers.ChoiceField(choices=SUPPORTED_DIMENSIONS, required=False)
    document_count = serializers.SerializerMethodField()
    agents = serializers.SerializerMethodField()

    class Meta:
        model = KnowledgeBase
        fields = ["id", "name", "description", "embedding_backend", "embedding_model", "embedding_dimensions",
                  "language", "document_count", "agents", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_document_count(self, obj: KnowledgeBase) -> int:
        count = getattr(obj, "document_count", None)
        return count if count is not None else obj.documents.count()

    @extend_schema_field(AgentRefSerializer(many=True))
    def get_agents(self, obj: KnowledgeBase) -> list[dict[str, Any]]:
        from knowledge.selectors import agents_using

        return AgentRefSerializer(agents_using(obj.org, obj), many=True).data


class VersionSerializer(serializers.ModelSerializer):
    id = PublicIdField()
    is_current = serializers.SerializerMethodField()

    class Meta:
        model = DocumentVersion
        fields = ["id", "number", "is_current", "state", "progress", "error_code", "error_message", "filename",
                  "content_type", "file_type", "size_bytes", "checksum", "page_count", "chunk_count",
                  "embedding_model", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def get_is_current(self, obj: DocumentVersion) -> bool:
        return obj.document.current_version_id == obj.pk


class DocumentSerializer(serializers.ModelSerializer):
    """Read shape of a document; the latest version's ingestion state is inlined."""

    id = PublicIdField()
    knowledge_base = serializers.UUIDField(source="knowledge_base.public_id", read_only=True)
    state = serializers.CharField(source="latest_version.state", read_only=True, allow_null=True)
    progress = serializers.IntegerField(source="latest_version.progress", read_only=True, allow_null=True)
    error_code = serializers.CharField(source="latest_version.error_code", read_only=True, allow_null=True)
    error_message = serializers.CharField(source="latest_version.error_message", read_only=True, allow_null=True)
    current_version = serializers.IntegerField(source="current_version.number", read_only=True, allow_null=True)
    latest_version = serializers.IntegerField(source="latest_version.number", read_only=True, allow_null=True)

    class Meta:
        model = Document
        fields = ["id", "knowledge_base", "title", "source_type", "source_url", "state", "progress", "error_code",
                  "error_message", "current_version", "latest_version", "created_at", "updated_at"]
        read_only_fields = ["source_type", "source_url", "created_at", "updated_at"]


class SourceSerializer(serializers.Serializer):
    """A new document or version: exactly one of `file` (multipart), `text` or `url`."""

    title = serializers.CharField(max_length=255, required=False, allow_blank=True)
    file = serializers.FileField(required=False, allow_empty_file=True)
    text = serializers.CharField(required=False, trim_whitespace=False)
    url = serializers.URLField(required=False, max_length=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        given = [k for k in ("file", "text", "url") if attrs.get(k)]
        if len(given) != 1:
            raise serializers.ValidationError({"source": ["Give exactly one of: file, text or url."]})
        return attrs


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=5)


class MultiSearchRequestSerializer(SearchRequestSerializer):
    knowledge_bases = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=50)


class SearchHitSerializer(serializers.Serializer):
    knowledge_base_id = serializers.UUIDField()
    knowledge_base = serializers.CharField()
    document_id = serializers.UUIDField()
    document_title = serializers.CharField()
    version_id = serializers.UUIDField()
    version = serializers.IntegerField()
    chunk_index = serializers.IntegerField()
    heading = serializers.CharField()
    text = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()
    page = serializers.IntegerField(allow_null=True)
    score = serializers.FloatField()
    vector_similarity = serializers.FloatField(allow_null=True)
    vector_rank = serializers.IntegerField(allow_null=True)
    text_rank = serializers.IntegerField(allow_null=True)


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
