"""State changes of knowledge bases and documents. Views, the API, admin actions and
tasks all call these (DESIGN.md convention 1).

Ingestion of one version runs `queued → extracting → chunking → embedding → ready`
or ends in `failed` with a stable `error_code` and a message naming the reason.
A failure never touches other documents, nor the current version of the same
document: new chunks are only written, together with the switch of the current
version, in one transaction once every chunk is embedded.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone

from knowledge.chunking import ChunkingConfig, chunk_document, context_text
from knowledge.embeddings import EmbeddingBackend, EmbeddingError, create_backend, model_choices
from knowledge.embeddings.local import LOCAL_MODEL_NAME, MULTILINGUAL_MODEL_NAME
from knowledge.extraction import (
    ExtractedDocument,
    ExtractionError,
    ExtractionLimits,
    detect_type,
    extract,
    extract_text,
    too_large,
)
from knowledge.fetching import fetch_url
from knowledge.models import (
    IN_PROGRESS_STATES,
    Chunk,
    Document,
    DocumentVersion,
    IngestState,
    KnowledgeBase,
    Language,
    SourceType,
)
from orgs.credentials import MissingCredential, get_credential
from orgs.models import Organization
from orgs.services import Actor, record_audit
from voiceplatform import outbound

logger = logging.getLogger(__name__)

def max_upload_bytes() -> int:
    """The largest upload a document may be, in bytes (``KNOWLEDGE_MAX_UPLOAD_BYTES``)."""
    return int(settings.KNOWLEDGE_MAX_UPLOAD_BYTES)


def extraction_limits() -> ExtractionLimits:
    """The caps on what one document may expand into (settings override the defaults)."""
    defaults = ExtractionLimits()
    return ExtractionLimits(
        max_bytes=max_upload_bytes(),
        max_archive_parts=int(getattr(settings, "KNOWLEDGE_DOCX_MAX_PARTS", defaults.max_archive_parts)),
        max_part_bytes=int(getattr(settings, "KNOWLEDGE_DOCX_MAX_PART_BYTES", defaults.max_part_bytes)),
        max_inflated_bytes=int(getattr(settings, "KNOWLEDGE_DOCX_MAX_INFLATED_BYTES", defaults.max_inflated_bytes)),
        max_pages=int(getattr(settings, "KNOWLEDGE_PDF_MAX_PAGES", defaults.max_pages)),
        max_text_chars=int(getattr(settings, "KNOWLEDGE_MAX_TEXT_CHARS", defaults.max_text_chars)),
    )


# --- embedding backends ---------------------------------------------------------------

def validate_embedding_choice(backend: str, model: str, dimensions: int) -> None:
    """Raise a ValidationError naming ``embedding_model`` and the available choices unless the backend/model/dimensions
    combination is offered."""
    if (backend, model, dimensions) not in model_choices():
        options = ", ".join(f"{b}/{m}/{d}" for b, m, d in model_choices())
        raise ValidationError({"embedding_model": f"{backend}/{model}/{dimensions} is not available; "
                                                  f"choose one of: {options}"})


def backend_for(kb: KnowledgeBase) -> EmbeddingBackend:
    """The knowledge base's embedding backend, with the org's credentials for API models."""
    options: dict[str, Any] = {}
    if kb.embedding_backend != "local":
        try:
            credential = get_credential(kb.org, kb.embedding_backend)
        except MissingCredential as exc:
            raise EmbeddingError(str(exc), retryable=False, provider=kb.embedding_backend) from exc
        options = {"api_key": credential.get("api_key"), "base_url": credential.get("base_url") or None}
    return create_backend(kb.embedding_backend, kb.embedding_model, kb.embedding_dimensions, **options)


# --- knowledge bases -----------------------------------------------------------------------

def default_local_model(language: str) -> str:
    """The local model a base gets when none is chosen, by the measured numbers (knowledge/BENCH.md, "Retrieval
    quality"): all-MiniLM-L6-v2 for English (better there, and many times faster to ingest), multilingual-e5-small
    for every other language (MiniLM is English-only)."""
    return LOCAL_MODEL_NAME if language == Language.ENGLISH else MULTILINGUAL_MODEL_NAME


def create_knowledge_base(org: Organization, actor: Actor, *, name: str, description: str = "",
                          embedding_backend: str = "local", embedding_model: str | None = None,
                          embedding_dimensions: int = 384, language: str = "english") -> KnowledgeBase:
    """Create a knowledge base with an available embedding model and a name unique in the org; audited. Without an
    explicit model a local base gets the language's default (`default_local_model`)."""
    if embedding_model is None:
        if embedding_backend != "local":
            raise ValidationError({"embedding_model": f"Choose a {embedding_backend} embedding model."})
        embedding_model = default_local_model(language)
    validate_embedding_choice(embedding_backend, embedding_model, embedding_dimensions)
    validate_language(language)
    if KnowledgeBase.objects.for_org(org).filter(name=name).exists():
        raise ValidationError({"name": f"A knowledge base named {name!r} already exists."})
    kb = KnowledgeBase.objects.create(org=org, name=name, description=description,
                                      embedding_backend=embedding_backend, embedding_model=embedding_model,
                                      embedding_dimensions=embedding_dimensions, language=language)
    record_audit(org, actor, "knowledge_base.created", kb, target_label=kb.name)
    return kb


def validate_language(language: str) -> None:
    """Raise a ValidationError naming ``language`` and the choices unless Postgres can stem it."""
    if language not in Language.values:
        raise ValidationError({"language": f"{language!r} is not a supported language; choose one of: "
                                           f"{', '.join(Language.values)}"})


def update_knowledge_base(kb: KnowledgeBase, actor: Actor, **fields: Any) -> KnowledgeBase:
    """Rename/describe, change the language (re-stems the full-text index in place) or change the embedding model,
    which re-embeds every document."""
    old_spec = kb.spec
    changes: dict[str, list[Any]] = {}
    for name in ("name", "description", "embedding_backend", "embedding_model", "embedding_dimensions",
                 "language"):
        if name in fields and fields[name] != getattr(kb, name):
            changes[name] = [getattr(kb, name), fields[name]]
            setattr(kb, name, fields[name])
    if not changes:
        return kb
    validate_embedding_choice(kb.embedding_backend, kb.embedding_model, kb.embedding_dimensions)
    validate_language(kb.language)
    if "name" in changes and KnowledgeBase.objects.for_org(kb.org).filter(name=kb.name).exclude(pk=kb.pk).exists():
        raise ValidationError({"name": f"A knowledge base named {kb.name!r} already exists."})
    with transaction.atomic():
        kb.save()
        record_audit(kb.org, actor, "knowledge_base.updated", kb, changes=changes, target_label=kb.name)
        if "language" in changes:
            # The generated tsvector column recomputes with the new stemmer; no re-embedding needed.
            Chunk.objects.filter(knowledge_base=kb).update(language=kb.language)
        if kb.spec != old_spec:
            schedule_reembedding(kb)
    return kb


def schedule_reembedding(kb: KnowledgeBase) -> int:
    """Queue re-embedding of every current version whose vectors are from another model."""
    from knowledge.tasks import reembed_document_version
    from voiceplatform.tasks import enqueue_on_commit

    versions = DocumentVersion.objects.for_org(kb.org).filter(
        document__knowledge_base=kb, document__current_version_id=F("pk"),
    ).exclude(embedding_model=kb.spec.key)
    count = 0
    for version in versions:
        DocumentVersion.objects.filter(pk=version.pk).update(state=IngestState.QUEUED, progress=0)
        enqueue_on_commit(reembed_document_version, str(kb.org.public_id), str(version.public_id))
        count += 1
    return count


def delete_knowledge_base(kb: KnowledgeBase, actor: Actor) -> None:
    """Delete a knowledge base with its documents and chunks, then their stored files once the deletion is committed;
    audited."""
    files = list(DocumentVersion.objects.filter(document__knowledge_base=kb).exclude(file="")
                 .values_list("file", flat=True))
    with transaction.atomic():
        record_audit(kb.org, actor, "knowledge_base.deleted", kb, target_label=kb.name)
        kb.delete()
    _delete_files(files)


# --- documents and versions --------------------------------------------------------------------

@dataclass(frozen=True)
class SourceInput:
    """Exactly one of upload / text / url."""

    upload: UploadedFile | None = None
    text: str | None = None
    url: str | None = None

    def kind(self) -> str:
        """Which source this input is, requiring exactly one of file, text, URL (a URL must pass the outbound guard);
        ValidationError otherwise."""
        given = [k for k, v in (("upload", self.upload), ("text", self.text), ("url", self.url)) if v]
        if len(given) != 1:
            raise ValidationError({"source": "Give exactly one of: a file, pasted text, or a URL."})
        if given[0] == "url":
            # Checked again, pinned, at fetch time (DNS may change); this is the clear early error.
            outbound.validate_url(self.url or "", field="url", what="The URL")
        return {"upload": SourceType.UPLOAD, "text": SourceType.TEXT, "url": SourceType.URL}[given[0]]


def add_document(kb: KnowledgeBase, actor: Actor, source: SourceInput, *, title: str = "") -> Document:
    """Add a document from one source and queue its ingestion; the title defaults to the file name, URL or first line.
    Audited."""
    kind = source.kind()
    if not title:
        title = (source.upload.name if source.upload else source.url if source.url
                 else (source.text or "").strip().split("\n", 1)[0][:80]) or "Untitled"
    with transaction.atomic():
        document = Document.objects.create(org=kb.org, knowledge_base=kb, title=title[:255],
                                           source_type=kind, source_url=source.url or "")
        version = _new_version(document, source, number=1)
        record_audit(kb.org, actor, "document.added", document, target_label=document.title,
                     changes={"source_type": kind})
    return version.document


def add_version(document: Document, actor: Actor, source: SourceInput) -> tuple[DocumentVersion, bool]:
    """Re-upload: a new version, unless the content is byte-identical to the latest
    one (then that version is returned and `created` is False)."""
    kind = source.kind()
    if kind != document.source_type:
        raise ValidationError({"source": f"This document's source is {document.get_source_type_display()}; "
                                         f"a new version must be the same kind."})
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        latest = locked.latest_version
        checksum = _checksum_of(source)
        if (latest is not None and checksum and latest.checksum == checksum
                and latest.state != IngestState.FAILED):
            return latest, False
        number = (latest.number if latest else 0) + 1
        version = _new_version(locked, source, number=number)
        record_audit(document.org, actor, "document.version_added", locked, target_label=locked.title,
                     changes={"version": number})
    return version, True


def _checksum_of(source: SourceInput) -> str:
    if source.upload is not None:
        digest = hashlib.sha256()
        for piece in source.upload.chunks():
            digest.update(piece)
        source.upload.seek(0)
        return digest.hexdigest()
    if source.text is not None:
        return hashlib.sha256(source.text.encode()).hexdigest()
    return ""  # a URL's content is only known once fetched


def _new_version(document: Document, source: SourceInput, *, number: int) -> DocumentVersion:
    from knowledge.tasks import ingest_document_version
    from voiceplatform.tasks import enqueue_on_commit

    version = DocumentVersion(org=document.org, document=document, number=number,
                              checksum=_checksum_of(source))
    refused: ExtractionError | None = None
    if source.upload is not None:
        version.filename = (source.upload.name or "")[-255:]
        version.content_type = (source.upload.content_type or "")[:120]
        version.size_bytes = source.upload.size or 0
        try:
            version.file_type = detect_type(version.filename, version.content_type)
            if version.size_bytes > max_upload_bytes():
                raise too_large(version.filename, f"{version.size_bytes:,} bytes", max_upload_bytes())
        except ExtractionError as exc:
            refused = exc  # recorded on the version; the file itself is not stored
        else:
            version.file.save(version.filename, source.upload, save=False)
    elif source.text is not None:
        version.pasted_text = source.text
        version.file_type = "text"
        version.size_bytes = len(source.text.encode())
    if refused is not None:
        version.state = IngestState.FAILED
        version.error_code = refused.code
        version.error_message = refused.message
        version.finished_at = timezone.now()
    version.save()
    Document.objects.filter(pk=document.pk).update(latest_version=version)
    document.latest_version = version
    if refused is None:
        enqueue_on_commit(ingest_document_version, str(document.org.public_id), str(version.public_id))
    return version


def rename_document(document: Document, actor: Actor, title: str) -> Document:
    """Rename a document (an empty title is a ValidationError naming ``title``); audited when it changes."""
    title = title.strip()[:255]
    if not title:
        raise ValidationError({"title": "A title cannot be empty."})
    if title != document.title:
        changes = {"title": [document.title, title]}
        document.title = title
        document.save(update_fields=["title", "updated_at"])
        record_audit(document.org, actor, "document.renamed", document, changes=changes, target_label=title)
    return document


def delete_document(document: Document, actor: Actor) -> None:
    """Delete a document with its versions and chunks, then its stored files (after the commit); audited."""
    files = list(document.versions.exclude(file="").values_list("file", flat=True))
    with transaction.atomic():
        record_audit(document.org, actor, "document.deleted", document, target_label=document.title)
        document.delete()  # cascades to versions and chunks
    _delete_files(files)


def _delete_files(names: list[str]) -> None:
    from django.core.files.storage import default_storage

    def remove() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(remove)


# --- ingestion (runs in the worker) ------------------------------------------------------------

class _Busy(Exception):
    """Another worker holds this version."""


def _advisory_key(version: DocumentVersion) -> int:
    return (0x6B6E << 40) + version.pk  # 'kn' namespace keeps clear of other apps' locks


class _VersionLock:
    """A session-level advisory lock so a redelivered task never ingests a version
    twice at the same time; released even if the worker's task fails."""

    def __init__(self, version: DocumentVersion) -> None:
        self.key = _advisory_key(version)

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            if not cursor.fetchone()[0]:
                raise _Busy()

    def __exit__(self, *exc: object) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        except DatabaseError:
            # The work was interrupted mid-query (a time limit): the connection may be
            # unusable. Closing it ends the session, which releases the lock too, and
            # lets the interruption itself propagate.
            connection.close()


def _set(version: DocumentVersion, **fields: Any) -> None:
    # Straight UPDATEs, outside any transaction, so the dashboard sees progress live.
    for name, value in fields.items():
        setattr(version, name, value)
    DocumentVersion.objects.filter(pk=version.pk).update(**fields)


def _fail(version: DocumentVersion, code: str, message: str) -> None:
    Chunk.objects.filter(version=version, is_active=False).delete()
    _set(version, state=IngestState.FAILED, error_code=code, error_message=message,
         finished_at=timezone.now())
    logger.info("document version failed", extra={"version": str(version.public_id), "code": code})


def _load_source(version: DocumentVersion) -> ExtractedDocument:
    document = version.document
    limits = extraction_limits()
    if document.source_type == SourceType.TEXT:
        return extract_text(version.pasted_text, name=document.title, limits=limits)
    if document.source_type == SourceType.URL:
        fetched = fetch_url(document.source_url, max_bytes=max_upload_bytes(),
                            timeout=float(getattr(settings, "KNOWLEDGE_URL_TIMEOUT", 20)))
        try:
            file_type = detect_type(None, fetched.content_type)
        except ExtractionError:
            file_type = detect_type(fetched.filename or fetched.url, None)
        checksum = hashlib.sha256(fetched.data).hexdigest()
        _set(version, file_type=file_type, checksum=checksum, size_bytes=len(fetched.data),
             content_type=fetched.content_type[:120], filename=(fetched.filename or "")[:255])
        version.file.save(fetched.filename or f"page.{file_type}", ContentFile(fetched.data), save=False)
        DocumentVersion.objects.filter(pk=version.pk).update(file=version.file.name)
        return extract(fetched.data, filename=fetched.filename or fetched.url, source_type=file_type,
                       limits=limits)
    stored = version.file.size
    if stored > limits.max_bytes:
        raise too_large(version.filename, f"{stored:,} bytes", limits.max_bytes)
    with version.file.open("rb") as handle:
        data = handle.read(limits.max_bytes + 1)  # never more than the cap into memory
    return extract(data, filename=version.filename, source_type=version.file_type, limits=limits)


def ingest_version(version_public_id: str, org: Organization) -> None:
    """The whole pipeline for one version. Retryable embedding errors propagate (the
    task retries after resetting the version to queued); everything else ends here."""
    version = (DocumentVersion.objects.for_org(org).select_related("document__knowledge_base__org")
               .filter(public_id=version_public_id).first())
    if version is None or version.state in (IngestState.READY, IngestState.FAILED):
        return  # deleted meanwhile, or a redelivered task for finished work
    if version.document.current_version_id == version.pk:
        return  # already live (its state may read queued while a re-embedding waits)
    try:
        with _VersionLock(version):
            _run_ingestion(version)
    except _Busy:
        logger.info("version already being ingested", extra={"version": str(version.public_id)})


def _run_ingestion(version: DocumentVersion) -> None:
    kb = version.document.knowledge_base
    # Leftovers of a worker that died mid-way: start clean.
    Chunk.objects.filter(version=version, is_active=False).delete()
    _set(version, state=IngestState.EXTRACTING, progress=5, started_at=timezone.now(),
         error_code="", error_message="")
    try:
        extracted = _load_source(version)
    except ExtractionError as exc:
        _fail(version, exc.code, exc.message)
        return
    _set(version, state=IngestState.CHUNKING, progress=15, extracted_text=extracted.text,
         page_count=extracted.page_count)
    try:
        backend = backend_for(kb)
    except EmbeddingError as exc:
        _fail(version, "embedding_failed", exc.message)
        return
    config = ChunkingConfig(max_tokens=min(backend.preferred_chunk_tokens, backend.max_input_tokens),
                            overlap_tokens=min(backend.preferred_chunk_tokens, backend.max_input_tokens) // 5)
    chunks = chunk_document(extracted, backend, config)
    spec = backend.spec
    title = version.document.title
    _set(version, state=IngestState.EMBEDDING, progress=20, chunk_count=len(chunks), embedding_model=spec.key)
    step = max(backend.batch_size, 64)
    rows: list[Chunk] = []
    try:
        for offset in range(0, len(chunks), step):
            batch = chunks[offset : offset + step]
            vectors = backend.embed_documents([c.embedding_text(title) for c in batch])
            # Kept in memory and inserted once, already active, when the version goes
            # live: inserting inactive rows and flipping them later wrote every chunk
            # into the HNSW index twice (a non-HOT update).
            rows.extend(
                Chunk(org_id=version.org_id, knowledge_base_id=kb.pk, document_id=version.document_id,
                      version=version, index=c.index, title=title, heading=c.heading, language=kb.language,
                      text=c.text, start=c.start,
                      end=c.end, page=c.page, token_count=c.token_count, embedding=vector, is_active=True,
                      embedding_dims=spec.dimensions, embedding_model=spec.key)
                for c, vector in zip(batch, vectors, strict=True)
            )
            done = offset + len(batch)
            _set(version, progress=20 + int(75 * done / len(chunks)))
    except EmbeddingError as exc:
        if exc.retryable:
            Chunk.objects.filter(version=version, is_active=False).delete()
            _set(version, state=IngestState.QUEUED, progress=0,
                 error_message=f"retrying: {exc.message}")
            raise
        _fail(version, "embedding_failed", exc.message)
        return
    _activate(version, spec.key, rows)


def _activate(version: DocumentVersion, model_key: str, rows: list[Chunk]) -> None:
    from knowledge.tasks import reembed_document_version
    from voiceplatform.tasks import enqueue_on_commit

    with transaction.atomic():
        document = Document.objects.select_for_update(of=("self",)).select_related("current_version", "knowledge_base").get(
            pk=version.document_id)
        current = document.current_version
        if current is None or current.number < version.number:
            # Superseded versions keep their text and file, not their chunks.
            Chunk.objects.filter(document=document).delete()
            Chunk.objects.bulk_create(rows, batch_size=500)
            document.current_version = version
            document.save(update_fields=["current_version", "updated_at"])
            live = True
        else:
            # A newer version went live while this one ingested: keep the record only.
            live = False
        DocumentVersion.objects.filter(pk=version.pk).update(
            state=IngestState.READY, progress=100, finished_at=timezone.now(), error_message="")
        if live and document.knowledge_base.spec.key != model_key:
            # The base's model changed during ingestion: bring these vectors up to date.
            enqueue_on_commit(reembed_document_version, str(document.org.public_id), str(version.public_id))
    logger.info("document version ready", extra={"version": str(version.public_id), "live": live})


def reembed_version(version_public_id: str, org: Organization) -> None:
    """Recompute the vectors of a current version with its base's (new) model."""
    version = (DocumentVersion.objects.for_org(org).select_related("document__knowledge_base__org")
               .filter(public_id=version_public_id).first())
    if version is None:
        return
    try:
        with _VersionLock(version):
            _run_reembedding(version)
    except _Busy:
        logger.info("version already being processed", extra={"version": str(version.public_id)})


def _iter_chunk_batches(version: DocumentVersion, size: int) -> Iterator[list[Chunk]]:
    last = -1
    while True:
        batch = list(Chunk.objects.filter(version=version, index__gt=last).order_by("index")
                     .only("pk", "index", "title", "heading", "text")[:size])
        if not batch:
            return
        yield batch
        last = batch[-1].index


def _run_reembedding(version: DocumentVersion) -> None:
    kb = version.document.knowledge_base
    try:
        backend = backend_for(kb)
    except EmbeddingError as exc:
        _fail(version, "embedding_failed", f"re-embedding with {kb.spec.key} failed: {exc.message}")
        return
    spec = backend.spec
    total = Chunk.objects.filter(version=version).count()
    _set(version, state=IngestState.EMBEDDING, progress=20, error_message="")
    done = 0
    try:
        for batch in _iter_chunk_batches(version, max(backend.batch_size, 64)):
            texts = [context_text(c.title, c.heading, c.text) for c in batch]
            vectors = backend.embed_documents(texts)
            for chunk, vector in zip(batch, vectors, strict=True):
                chunk.embedding = vector
                chunk.embedding_dims = spec.dimensions
                chunk.embedding_model = spec.key
            Chunk.objects.bulk_update(batch, ["embedding", "embedding_dims", "embedding_model"])
            done += len(batch)
            _set(version, progress=20 + int(75 * done / max(total, 1)))
    except EmbeddingError as exc:
        if exc.retryable:
            _set(version, state=IngestState.QUEUED, error_message=f"retrying: {exc.message}")
            raise
        _fail(version, "embedding_failed", f"re-embedding with {spec.key} failed: {exc.message}")
        return
    _set(version, state=IngestState.READY, progress=100, embedding_model=spec.key, finished_at=timezone.now())
    kb.refresh_from_db()
    if kb.spec.key != spec.key:
        # The model changed again while this ran: one more pass with the newest one.
        from knowledge.tasks import reembed_document_version

        reembed_document_version.delay(str(kb.org.public_id), str(version.public_id))


def fail_after_retries(version_public_id: str, org: Organization, message: str) -> None:
    """The task gave up on a retryable provider error."""
    version = DocumentVersion.objects.for_org(org).filter(public_id=version_public_id).first()
    if version is not None:
        _fail(version, "embedding_unavailable", f"the embedding provider kept failing: {message}")


def _unfinished_version(version_public_id: str, org: Organization) -> DocumentVersion | None:
    if not connection.in_atomic_block:
        # The task was interrupted, possibly in the middle of a query: start from a
        # fresh connection rather than one whose protocol state is unknown.
        connection.close()
    return (DocumentVersion.objects.for_org(org).select_related("document")
            .filter(public_id=version_public_id, state__in=IN_PROGRESS_STATES).first())


def fail_timed_out(version_public_id: str, org: Organization, limit_s: float | None) -> None:
    """The task hit its time limit: the version fails with `timed_out`, the document's
    current version (if any) stays live."""
    version = _unfinished_version(version_public_id, org)
    if version is not None:
        name = version.filename or version.document.title
        _fail(version, "timed_out", f"{name}: processing took longer than the limit of {limit_s or 0:,.0f} s; "
                                    "split the document into smaller files")


def fail_unexpectedly(version_public_id: str, org: Organization, exc: BaseException) -> None:
    """An error nobody anticipated: the version fails rather than reading 'processing'
    forever. The message names the error's type only (its text may quote content)."""
    version = _unfinished_version(version_public_id, org)
    if version is not None:
        _fail(version, "internal_error", f"processing failed unexpectedly ({type(exc).__name__})")
