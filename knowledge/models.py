"""Knowledge bases, documents (with versions) and their searchable chunks.

- `KnowledgeBase`: per org, with the embedding backend/model/dimensions its
  vectors come from. Changing them re-embeds every document (services).
- `Document`: one logical document (an upload, pasted text or a URL). Re-uploading
  makes a new `DocumentVersion`; `current_version` is the one search uses and
  `latest_version` is the newest (whose ingestion state the dashboard shows).
  Older versions stay listable with their extracted text.
- `Chunk`: a slice of a version's extracted text with its vector and a generated
  tsvector. Only chunks of current versions are `is_active` (search filters on it);
  chunks of superseded versions are deleted when the new version goes live.

Vectors of different dimensions share one column: pgvector indexes need a fixed
dimension, so each supported dimension has a partial HNSW index over
`embedding::vector(N)` (see the migration), and search casts the same way.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import Case, Value, When
from pgvector.django import VectorField

from knowledge.embeddings import SUPPORTED_DIMENSIONS
from knowledge.embeddings.base import ModelSpec
from orgs.scoping import OrgScopedManager
from voiceplatform.models import OrgScopedModel

# Full-text configuration of knowledge bases created without a language.
TEXT_SEARCH_CONFIG = "english"


class Language(models.TextChoices):
    """A knowledge base's language: the Postgres text search configuration its chunks are stemmed with (and its
    queries). "simple" only lower-cases, for languages Postgres has no stemmer for or mixed content."""

    ENGLISH = "english", "English"
    SPANISH = "spanish", "Spanish"
    GERMAN = "german", "German"
    FRENCH = "french", "French"
    ITALIAN = "italian", "Italian"
    PORTUGUESE = "portuguese", "Portuguese"
    DUTCH = "dutch", "Dutch"
    SIMPLE = "simple", "Other / mixed (no stemming)"


def _weighted(config: str) -> Any:
    return (SearchVector("title", weight="A", config=config) + SearchVector("heading", weight="A", config=config)
            + SearchVector("text", weight="B", config=config))


def chunk_search_vector() -> Case:
    """The chunk's tsvector, stemmed with its own language. A CASE over constant configurations, because a generated
    column must be immutable and casting a column's text to regconfig is not."""
    return Case(*[When(language=Value(lang.value), then=_weighted(lang.value)) for lang in Language
                  if lang != Language.ENGLISH], default=_weighted(TEXT_SEARCH_CONFIG),
                output_field=SearchVectorField())


class EmbeddingBackendChoice(models.TextChoices):
    """Which embedding backend a knowledge base uses: the local model (offline, the default) or an API provider."""

    LOCAL = "local", "Local (offline)"
    OPENAI = "openai", "OpenAI"
    GEMINI = "gemini", "Google Gemini"


class KnowledgeBase(OrgScopedModel):
    """An org's knowledge base: documents, chunked and embedded with one model (fixed at creation), searched by its
    agents."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    embedding_backend = models.CharField(max_length=20, choices=EmbeddingBackendChoice.choices,
                                         default=EmbeddingBackendChoice.LOCAL)
    embedding_model = models.CharField(max_length=80, default="all-MiniLM-L6-v2")
    embedding_dimensions = models.PositiveSmallIntegerField(
        default=384, choices=[(d, str(d)) for d in SUPPORTED_DIMENSIONS])
    # Stemming of the full-text leg (chunks and queries). Changing it re-indexes the chunks (services).
    language = models.CharField(max_length=20, choices=Language.choices, default=Language.ENGLISH)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="knowledge_kb_unique_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def spec(self) -> ModelSpec:
        """The embedding model spec (backend, model, dimensions) the base's vectors were made with."""
        return ModelSpec(self.embedding_backend, self.embedding_model, self.embedding_dimensions)


class SourceType(models.TextChoices):
    """Where a document's content came from: an uploaded file, pasted text or a URL."""

    UPLOAD = "upload", "Uploaded file"
    TEXT = "text", "Pasted text"
    URL = "url", "Web page (URL)"


class Document(OrgScopedModel):
    """One document of a knowledge base; its versions hold the content, ``current_version`` the one search uses."""

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=255)
    source_type = models.CharField(max_length=10, choices=SourceType.choices)
    source_url = models.URLField(max_length=2000, blank=True)
    current_version = models.ForeignKey("DocumentVersion", null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    latest_version = models.ForeignKey("DocumentVersion", null=True, blank=True,
                                       on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title


class IngestState(models.TextChoices):
    """The stages of ingesting a document version, ending in ready or failed."""

    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting text"
    CHUNKING = "chunking", "Chunking"
    EMBEDDING = "embedding", "Embedding"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


IN_PROGRESS_STATES = (IngestState.QUEUED, IngestState.EXTRACTING, IngestState.CHUNKING,
                      IngestState.EMBEDDING)


def _upload_path(instance: "DocumentVersion", filename: str) -> str:
    # Unguessable path: the storage may be a public bucket.
    return f"knowledge/{instance.org.public_id}/{uuid.uuid4().hex}/{filename[-120:]}"


class DocumentVersion(OrgScopedModel):
    """One version of a document's content (file, pasted text or fetched URL), with its ingestion state and progress."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    file = models.FileField(upload_to=_upload_path, max_length=300, blank=True)
    filename = models.CharField(max_length=255, blank=True)
    content_type = models.CharField(max_length=120, blank=True)
    pasted_text = models.TextField(blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # sha256 of the source bytes; empty for URLs until fetched.
    checksum = models.CharField(max_length=64, blank=True, db_index=True)
    file_type = models.CharField(max_length=10, blank=True)  # txt/md/pdf/html/docx/csv/text
    extracted_text = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)

    state = models.CharField(max_length=12, choices=IngestState.choices, default=IngestState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # 0..100
    error_code = models.CharField(max_length=40, blank=True)
    error_message = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=140, blank=True)  # ModelSpec.key
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["document", "number"], name="knowledge_version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.document.title} v{self.number}"

    @property
    def is_in_progress(self) -> bool:
        """True while the version is still being ingested (queued, extracting, chunking or embedding)."""
        return self.state in IN_PROGRESS_STATES


class Chunk(models.Model):
    """Not an OrgScopedModel: chunks are internal rows (no public id, no timestamps —
    at 100k+ rows per base every index costs ingestion time), but they carry `org`
    and `knowledge_base` themselves so search filters without joins."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    # FK indexes of knowledge_base and version are covered by the composite index and the
    # unique constraint below; duplicates would only slow ingestion.
    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="+",
                                       db_index=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    version = models.ForeignKey(DocumentVersion, on_delete=models.CASCADE, related_name="chunks",
                                db_index=False)
    index = models.PositiveIntegerField()
    # The document title and section heading path travel with the text into the embedding and the index:
    # a bare paragraph ("within 30 days") is found by its topic ("Refunds").
    title = models.TextField(blank=True)
    heading = models.TextField(blank=True)
    language = models.CharField(max_length=20, default=TEXT_SEARCH_CONFIG)
    text = models.TextField()
    start = models.PositiveIntegerField()
    end = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    embedding = VectorField(null=True)
    embedding_dims = models.PositiveSmallIntegerField(null=True)
    embedding_model = models.CharField(max_length=140, blank=True)
    search_vector = models.GeneratedField(
        expression=chunk_search_vector(),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    objects = OrgScopedManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "index"], name="knowledge_chunk_unique_index"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="knowledge_chunk_fts"),
            models.Index(fields=["knowledge_base", "is_active"], name="knowledge_chunk_kb_active"),
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.version_id}"
