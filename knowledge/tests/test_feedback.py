"""The fifth pass's second-stage variants (knowledge.feedback, BENCH.md "Fifth pass"), both measured and left off:
pseudo-relevance feedback on the vector leg and a section's centroid similarity. Checked against the vectors the
database stores, so the SQL that reads them and the arithmetic are both under test."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pytest

from knowledge import feedback, services
from knowledge.models import Chunk
from knowledge.search import (
    DEFAULT_TUNING,
    SearchHit,
    SearchTuning,
    feedback_rerank,
    rerank_hits,
    search_by_vectors,
)
from knowledge.tests.test_ranking import UPGRADE_MANUAL


def _hit(section: str, score: float, similarity: float, index: int) -> SearchHit:
    return SearchHit(knowledge_base_id="kb", knowledge_base="KB", document_id="d1", document_title="Manual",
                     version_id="v", version=1, chunk_index=index, heading=section, text=section, start=0, end=1,
                     page=None, score=score, vector_similarity=similarity, vector_rank=1, text_rank=None)


def test_feedback_lifts_the_candidate_that_resembles_the_best_one() -> None:
    query = [1.0, 0.0, 0.0]
    # "Install" wins the first pass; "Details" is a little nearer the query than "Holding" but unlike "Install".
    vectors = {"Install": [0.8, 0.6, 0.0], "Details": [0.79, 0.0, 0.613], "Holding": [0.78, 0.626, 0.0]}
    hits = [_hit("Install", 0.032, 0.80, 0), _hit("Details", 0.016, 0.79, 1), _hit("Holding", 0.016, 0.78, 2)]
    stored = [("m", np.array(vectors[h.heading], dtype=np.float32)) for h in hits]
    assert [h.heading for h in rerank_hits(hits)] == ["Install", "Details", "Holding"]
    tuning = SearchTuning(feedback_beta=0.5, feedback_top=1)
    assert [h.heading for h in feedback_rerank(hits, stored, {"m": query}, tuning)] == ["Install", "Holding", "Details"]
    # Rocchio's rule: q + 0.5 * top, normalised; a vector of another model is left alone.
    moved = feedback.expanded_query(query, [stored[0][1]], [], 0.5)
    assert np.allclose(moved, np.array([1.4, 0.3, 0.0]) / np.linalg.norm([1.4, 0.3, 0.0]), atol=1e-6)
    other = feedback_rerank(hits, [("other", v) for _, v in stored], {"m": query}, tuning)
    assert [h.vector_similarity for h in other] == [0.80, 0.79, 0.78]
    assert DEFAULT_TUNING.feedback_beta == 0 and DEFAULT_TUNING.section_centroid == 0  # measured, left off


def _stored(hit: SearchHit) -> np.ndarray:
    chunk = Chunk.objects.get(version__public_id=hit.version_id, index=hit.chunk_index)
    return np.asarray(chunk.embedding, dtype=np.float64)


def _cos(a: Any, b: Any) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.django_db
def test_second_stage_variants_use_the_stored_vectors(kb_a: Any, ingest: Any) -> None:
    ingest(kb_a, "manual.md", UPGRADE_MANUAL.encode())
    question = "how do I stop one package from being upgraded"
    query = services.backend_for(kb_a).embed_query(question)
    vectors: dict[str, Sequence[float]] = {kb_a.spec.key: query}

    def search(tuning: SearchTuning) -> list[SearchHit]:
        return search_by_vectors(kb_a.org, [kb_a], question, vectors, 20, tuning=tuning)

    plain = search(SearchTuning(section_dedup=False))
    sections: dict[str, list[np.ndarray]] = {}
    for chunk in Chunk.objects.filter(knowledge_base=kb_a, is_active=True):
        sections.setdefault(chunk.heading, []).append(np.asarray(chunk.embedding, dtype=np.float64))
    assert max(len(group) for group in sections.values()) > 1  # the big section has several chunks
    # Centroid: half the chunk's own cosine, half that of the mean of its section's chunk vectors.
    blended = {(h.heading, h.chunk_index): h.vector_similarity
               for h in search(SearchTuning(section_dedup=False, section_centroid=0.5))}
    for hit in plain:
        centroid = np.mean(sections[hit.heading], axis=0)
        expected = 0.5 * _cos(_stored(hit), query) + 0.5 * _cos(centroid, query)
        assert blended[(hit.heading, hit.chunk_index)] == pytest.approx(expected, abs=2e-4)
    # Feedback: every similarity is the cosine to the query moved towards the first pass's three best chunks.
    first = search(DEFAULT_TUNING)
    moved = feedback.expanded_query(query, [_stored(h) for h in first[:3]], [], 0.3)
    for hit in search(SearchTuning(feedback_beta=0.3, feedback_top=3)):
        assert hit.vector_similarity == pytest.approx(_cos(_stored(hit), moved), abs=2e-4)


@pytest.mark.django_db
def test_parsed_text_vectors_are_the_stored_ones(kb_a: Any, ingest: Any) -> None:
    """The second stage reads vectors as pgvector text (knowledge.vectors): feedback's float32 is the stored vector
    exactly, the anisotropy statistics' float64 the same values, and a NULL vector stays None."""
    from django.db import connection

    from knowledge.vectors import parse_vector

    ingest(kb_a, "manual.md", UPGRADE_MANUAL.encode())
    chunks = list(Chunk.objects.filter(knowledge_base=kb_a, is_active=True).order_by("id"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT embedding::text FROM knowledge_chunk WHERE id = ANY(%s) ORDER BY id",
                       [[c.pk for c in chunks]])
        texts = [row[0] for row in cursor.fetchall()]
    for chunk, text in zip(chunks, texts, strict=True):
        stored = np.asarray(chunk.embedding, dtype=np.float32)
        as_float32 = feedback.parse_vector(text)
        assert as_float32 is not None and as_float32.dtype == np.float32
        assert np.array_equal(as_float32, stored)
        as_float64 = parse_vector(text)
        assert as_float64.dtype == np.float64 and np.array_equal(as_float64.astype(np.float32), stored)
        assert np.array_equal(parse_vector(chunk.embedding).astype(np.float32), stored)  # a list parses too
    assert feedback.parse_vector(None) is None and feedback.parse_vector("") is None


@pytest.mark.django_db
def test_the_default_search_reads_only_what_it_ranks_with(kb_a: Any, ingest: Any) -> None:
    """The second-stage variants' columns (corrected cosine, the candidate's vector, its section centroid) are in the
    search statement only when their knob is on: the default statement ends its columns at the version number."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ingest(kb_a, "manual.md", UPGRADE_MANUAL.encode())
    question = "how do I stop one package from being upgraded"
    vectors: dict[str, Sequence[float]] = {kb_a.spec.key: services.backend_for(kb_a).embed_query(question)}

    def columns(tuning: SearchTuning, rerank: bool = True) -> str:
        with CaptureQueriesContext(connection) as captured:
            assert search_by_vectors(kb_a.org, [kb_a], question, vectors, 5, tuning=tuning, rerank=rerank)
        [statement] = [q["sql"] for q in captured.captured_queries if "FROM fused f" in q["sql"]]
        return statement[statement.rindex("SELECT f.score"):statement.index(" FROM fused f")]

    for plain in (columns(DEFAULT_TUNING), columns(DEFAULT_TUNING, rerank=False),
                  columns(SearchTuning(feedback_beta=0.3), rerank=False)):
        assert plain.endswith("v.number") and "NULL" not in plain and "::text" not in plain
    assert "c.embedding::text" in columns(SearchTuning(feedback_beta=0.3))
    assert "avg(s.embedding" in columns(SearchTuning(section_centroid=0.5))
    assert columns(SearchTuning(center=True)).endswith("::text END")
