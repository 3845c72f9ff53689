"""Hybrid search: pgvector HNSW similarity + Postgres full text, fused by reciprocal rank.

`search_knowledge(org, kb_ids, query, k)` is the one entry point (API, dashboard
playground, and the agent's tool during calls). It is scoped twice: the
knowledge bases are looked up with `for_org(org)`, and every SQL leg filters on
`org_id` too, so a foreign or guessed id can never surface another org's chunk.

Knowledge bases that use different embedding models are searched with one vector
query per model (vectors are only comparable within one model) and all lists are
fused together. Chunks whose vectors are from an older model (re-embedding in
progress) still match through full text.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection, transaction

from knowledge.embeddings import EmbeddingBackend, ModelSpec
from knowledge.models import TEXT_SEARCH_CONFIG, Chunk, KnowledgeBase
from orgs.models import Organization

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant from Cormack et al.; damps the weight of top ranks
HNSW_EF_SEARCH = 100
MAX_K = 50


@dataclass(frozen=True)
class SearchHit:
    knowledge_base_id: str
    knowledge_base: str
    document_id: str
    document_title: str
    version_id: str
    version: int
    chunk_index: int
    heading: str
    text: str
    start: int
    end: int
    page: int | None
    score: float  # fused reciprocal-rank score
    vector_similarity: float | None  # cosine similarity, None if only full text matched
    vector_rank: int | None
    text_rank: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_bases(org: Organization, kb_ids: Iterable[Any]) -> list[KnowledgeBase]:
    ids: list[UUID] = []
    pks: list[int] = []
    for item in kb_ids:
        if isinstance(item, KnowledgeBase):
            pks.append(item.pk)
            continue
        try:
            ids.append(item if isinstance(item, UUID) else UUID(str(item)))
        except ValueError:
            continue  # a malformed id matches nothing, like another org's id
    from django.db.models import Q

    return list(KnowledgeBase.objects.for_org(org).filter(Q(public_id__in=ids) | Q(pk__in=pks))
                .select_related("org"))


def _vector_leg(org: Organization, spec: ModelSpec, kb_pks: list[int], query_vector: Sequence[float],
                limit: int) -> list[tuple[int, float]]:
    dims = int(spec.dimensions)  # from a closed set; safe to inline (the index needs a literal)
    sql = (
        f"SELECT id, (embedding::vector({dims})) <=> %s::vector({dims}) AS distance "
        "FROM knowledge_chunk "
        f"WHERE embedding_dims = {dims} AND org_id = %s AND knowledge_base_id = ANY(%s) "
        "AND is_active AND embedding_model = %s "
        "ORDER BY distance LIMIT %s"
    )
    vector_literal = "[" + ",".join(f"{float(v):.7g}" for v in query_vector) + "]"
    with transaction.atomic(), connection.cursor() as cursor:
        # Filters are applied after the graph walk; iterative scans keep walking until
        # enough rows pass them, so a small base inside a big table still gets k hits.
        cursor.execute(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}")
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(sql, [vector_literal, org.pk, kb_pks, spec.key, limit])
        rows = cursor.fetchall()
    # relaxed_order may return neighbours slightly out of order.
    return sorted(((row[0], float(row[1])) for row in rows), key=lambda r: r[1])


TEXT_CANDIDATES = 200
MIN_TERM_COVERAGE = 0.5


def _text_leg(org: Organization, kb_pks: list[int], query: str, limit: int) -> list[int]:
    """Chunks matching at least half of the query's terms, best ts_rank_cd first.

    A spoken question has many words a relevant passage lacks, so all-terms (AND)
    matching finds little; any-term (OR) matching lets one incidental shared word
    ("arrive") put an unrelated passage at text rank 1, where rank fusion would
    lift it over the semantic best match. Half the terms is the middle ground.
    """
    sql = (
        "WITH q AS (SELECT NULLIF(replace(plainto_tsquery(%(cfg)s::regconfig, %(query)s)::text, ' & ', ' | '), '')"
        "::tsquery AS any_term, tsvector_to_array(to_tsvector(%(cfg)s::regconfig, %(query)s)) AS terms), "
        "candidates AS ("
        " SELECT c.id, c.search_vector, ts_rank_cd(c.search_vector, q.any_term, 32) AS rank"
        " FROM knowledge_chunk c, q"
        " WHERE q.any_term IS NOT NULL AND c.org_id = %(org)s AND c.knowledge_base_id = ANY(%(kbs)s)"
        " AND c.is_active AND c.search_vector @@ q.any_term"
        " ORDER BY rank DESC, c.id LIMIT %(candidates)s) "
        "SELECT candidates.id FROM candidates, q "
        "WHERE (SELECT count(*) FROM unnest(q.terms) AS term"
        "       WHERE candidates.search_vector @@ plainto_tsquery('simple', term))"
        "      >= %(coverage)s * cardinality(q.terms) "
        "ORDER BY candidates.rank DESC, candidates.id LIMIT %(limit)s"
    )
    params = {"cfg": TEXT_SEARCH_CONFIG, "query": query, "org": org.pk, "kbs": kb_pks,
              "candidates": TEXT_CANDIDATES, "coverage": MIN_TERM_COVERAGE, "limit": limit}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def search_knowledge(org: Organization, kb_ids: Iterable[Any], query: str, k: int = 5,
                     *, backends: dict[str, EmbeddingBackend] | None = None) -> list[SearchHit]:
    """Top `k` chunks for `query` across the org's knowledge bases `kb_ids`.

    `kb_ids` are public ids (str/UUID) or KnowledgeBase instances; ids of other orgs
    or unknown ids are ignored. `backends` (spec key → backend) lets a caller reuse
    already-built backends; otherwise they are built from the bases' settings.
    """
    from knowledge.services import backend_for

    query = (query or "").strip()
    if not query:
        return []
    k = max(1, min(int(k), MAX_K))
    bases = _resolve_bases(org, kb_ids)
    if not bases:
        return []
    candidates = max(4 * k, 40)
    by_spec: dict[ModelSpec, list[KnowledgeBase]] = defaultdict(list)
    for kb in bases:
        by_spec[kb.spec].append(kb)

    vector_ranks: dict[int, int] = {}
    similarities: dict[int, float] = {}
    fused: dict[int, float] = defaultdict(float)
    for spec, group in by_spec.items():
        backend = (backends or {}).get(spec.key) or backend_for(group[0])
        query_vector = backend.embed_query(query)
        for rank, (chunk_id, distance) in enumerate(
                _vector_leg(org, spec, [kb.pk for kb in group], query_vector, candidates), start=1):
            # Ranks from different models are comparable as ranks, which is why RRF is used.
            vector_ranks[chunk_id] = rank
            similarities[chunk_id] = 1.0 - distance
            fused[chunk_id] += 1.0 / (RRF_K + rank)
    text_ranks: dict[int, int] = {}
    for rank, chunk_id in enumerate(_text_leg(org, [kb.pk for kb in bases], query, candidates), start=1):
        text_ranks[chunk_id] = rank
        fused[chunk_id] += 1.0 / (RRF_K + rank)

    top = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
    rows = {c.pk: c for c in Chunk.objects.for_org(org).filter(pk__in=[pk for pk, _ in top])
            .select_related("document", "version", "knowledge_base")
            .defer("embedding", "search_vector")}
    hits = []
    for chunk_id, score in top:
        chunk = rows.get(chunk_id)
        if chunk is None:
            continue  # deleted between the legs and this read
        hits.append(SearchHit(
            knowledge_base_id=str(chunk.knowledge_base.public_id), knowledge_base=chunk.knowledge_base.name,
            document_id=str(chunk.document.public_id), document_title=chunk.document.title,
            version_id=str(chunk.version.public_id), version=chunk.version.number,
            chunk_index=chunk.index, heading=chunk.heading, text=chunk.text, start=chunk.start,
            end=chunk.end, page=chunk.page, score=round(score, 6),
            vector_similarity=round(similarities[chunk_id], 4) if chunk_id in similarities else None,
            vector_rank=vector_ranks.get(chunk_id), text_rank=text_ranks.get(chunk_id),
        ))
    logger.info("knowledge search", extra={"org": str(org.public_id), "bases": len(bases), "hits": len(hits)})
    return hits


async def asearch_knowledge(org: Organization, kb_ids: Iterable[Any], query: str, k: int = 5) -> list[SearchHit]:
    """For the call session: runs in a worker thread so audio keeps flowing."""
    return await sync_to_async(_search_in_thread, thread_sensitive=False)(org, list(kb_ids), query, k)


def _search_in_thread(org: Organization, kb_ids: list[Any], query: str, k: int) -> list[SearchHit]:
    try:
        return search_knowledge(org, kb_ids, query, k)
    finally:
        # Executor threads never see request_finished; honour CONN_MAX_AGE here instead.
        close_old_connections()


def format_for_agent(hits: Sequence[SearchHit], max_chars: int = 4000) -> dict[str, Any]:
    """The tool result an agent gets: passages with their source, trimmed to fit a turn."""
    results: list[dict[str, Any]] = []
    used = 0
    for hit in hits:
        text = hit.text if used + len(hit.text) <= max_chars else hit.text[: max(0, max_chars - used)]
        if not text:
            break
        used += len(text)
        results.append({"source": hit.document_title, "section": hit.heading, "text": text,
                        "score": hit.score})
    return {"results": results} if results else {"results": [], "note": "No matching passages found."}
