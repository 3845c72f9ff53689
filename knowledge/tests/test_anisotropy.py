"""The second stage's anisotropy correction (knowledge.anisotropy), on a small base ingested here with the local
model: the base's mean vector as Postgres averages it, its cache per content version, the centred cosine pgvector
computes for the candidates, and the whitening matrix's defining property."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from knowledge import anisotropy, services
from knowledge.models import Chunk
from knowledge.search import DEFAULT_TUNING, SearchTuning, _query_terms, search_knowledge
from orgs.services import SYSTEM

MANUAL = """# Router manual

## Restarting
Hold the reset button for ten seconds to restart the router; the lights blink while it starts again.

## Wireless password
The wireless password is printed on the label under the router. Change it in the admin page under Wireless.

## Firmware updates
The router checks for new firmware every night and installs it at three in the morning.

## Parental controls
Parental controls limit the hours a device may use the internet; set them per device in the admin page.
"""

CENTRED = SearchTuning(center=True)


def _vectors(kb: Any) -> np.ndarray:
    return np.stack([np.asarray(v, dtype=np.float64) for v in
                     Chunk.objects.filter(knowledge_base=kb, is_active=True).values_list("embedding", flat=True)])


def _versions(kb: Any) -> dict[int, str]:
    return _query_terms("router", {kb.language: [kb]}, CENTRED)[2]


@pytest.fixture
def router_kb(org_a: Any, ingest: Any) -> Any:
    anisotropy.STATISTICS.clear()
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Routers")
    ingest(kb, "router.md", MANUAL.encode())
    return kb


@pytest.mark.django_db
def test_the_mean_is_the_bases_own_and_is_read_once_per_content_version(router_kb: Any, org_b: Any,
                                                                         ingest: Any) -> None:
    other = services.create_knowledge_base(org_b, SYSTEM, name="Other org")
    ingest(other, "other.md", b"# Kettles\n\nDescale the kettle every month with vinegar.")
    stats = anisotropy.corpus_statistics(router_kb.org_id, [router_kb], router_kb.spec, _versions(router_kb))
    assert stats is not None
    vectors = _vectors(router_kb)
    assert stats.chunks == len(vectors) and stats.whitening is None
    assert np.allclose(stats.mean, vectors.mean(axis=0), atol=1e-5)  # another org's chunks are not in it

    versions = _versions(router_kb)  # what the search's lexeme round trip reads anyway
    with CaptureQueriesContext(connection) as queries:
        again = anisotropy.corpus_statistics(router_kb.org_id, [router_kb], router_kb.spec, versions)
    assert again is stats and len(queries) == 0

    ingest(router_kb, "more.md", b"# Cables\n\nUse the yellow cable for the internet port.")
    changed = anisotropy.corpus_statistics(router_kb.org_id, [router_kb], router_kb.spec, _versions(router_kb))
    assert changed is not None and changed.chunks == len(vectors) + 1
    assert np.allclose(changed.mean, _vectors(router_kb).mean(axis=0), atol=1e-5)


@pytest.mark.django_db
def test_the_second_stage_ranks_by_the_centred_cosine(router_kb: Any) -> None:
    question = "how do I change the wifi password"
    # A huge cosine weight makes the second stage order by the cosine alone, so the scores show it.
    weight = 1000.0
    tuning = SearchTuning(center=True, similarity_weight=weight, section_dedup=False)
    hits = search_knowledge(router_kb.org, [router_kb.public_id], question, k=5, tuning=tuning)
    assert hits
    from knowledge.services import backend_for

    query = np.asarray(backend_for(router_kb).embed_query(question), dtype=np.float64)
    vectors = _vectors(router_kb)
    mean = vectors.mean(axis=0)
    by_index = {c.index: np.asarray(c.embedding, dtype=np.float64)
                for c in Chunk.objects.filter(knowledge_base=router_kb, is_active=True)}
    for hit in hits:
        vector = by_index[hit.chunk_index]
        q, d = query - mean, vector - mean
        centred = float(q @ d / (np.linalg.norm(q) * np.linalg.norm(d)))
        raw = float(query @ vector / (np.linalg.norm(query) * np.linalg.norm(vector)))
        assert abs(hit.score / weight - centred) < 2e-3, (hit.heading, hit.score, centred)
        assert hit.vector_similarity == pytest.approx(raw, abs=1e-3)  # the API still shows the raw cosine
    assert hits[0].heading.endswith("Wireless password")
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert not DEFAULT_TUNING.center and not DEFAULT_TUNING.whiten  # measured, left off (BENCH.md "Fifth pass")


@pytest.mark.django_db
def test_whitening_gives_the_kept_directions_unit_variance(router_kb: Any, ingest: Any) -> None:
    for n, topic in enumerate(["guest network", "port forwarding", "parental timer", "LED colours", "USB storage"]):
        ingest(router_kb, f"extra{n}.md", f"# {topic}\n\nHow the router handles {topic}, step by step.".encode())
    stats = anisotropy.corpus_statistics(router_kb.org_id, [router_kb], router_kb.spec, _versions(router_kb),
                                         whiten=3)
    assert stats is not None and stats.whitening is not None and stats.whitening.shape == (384, 3)
    projected = (_vectors(router_kb) - stats.mean) @ stats.whitening
    assert np.allclose(np.cov(projected, rowvar=False), np.eye(3), atol=1e-6)
    # The search projects each candidate's vector (fetched in the same statement) the same way.
    question, weight = "router guest network", 1000.0
    hits = search_knowledge(router_kb.org, [router_kb.public_id], question, k=3,
                            tuning=SearchTuning(whiten=3, similarity_weight=weight, section_dedup=False))
    from knowledge.services import backend_for

    q = (np.asarray(backend_for(router_kb).embed_query(question)) - stats.mean) @ stats.whitening
    chunks = {(c.document.title, c.index): np.asarray(c.embedding, dtype=np.float64)
              for c in Chunk.objects.filter(knowledge_base=router_kb, is_active=True).select_related("document")}
    assert len(hits) == 3
    for hit in hits:
        d = (chunks[(hit.document_title, hit.chunk_index)] - stats.mean) @ stats.whitening
        assert abs(hit.score / weight - float(q @ d / (np.linalg.norm(q) * np.linalg.norm(d)))) < 2e-3


def test_regularised_whitening_shrinks_the_weak_directions_more() -> None:
    rng = np.random.default_rng(3)
    scales = np.array([5.0, 2.0, 1.0, 0.1])
    sample = rng.normal(size=(2000, 4)) * scales
    sample -= sample.mean(axis=0)
    values = np.sort(np.linalg.eigvalsh(np.cov(sample, rowvar=False)))[::-1]
    plain = anisotropy.whitening_matrix(sample, 4)
    assert np.allclose(np.cov(sample @ plain, rowvar=False), np.eye(4), atol=1e-8)
    shrunk = anisotropy.whitening_matrix(sample, 4, shrink=1.0)
    variances = np.diag(np.cov(sample @ shrunk, rowvar=False))
    # Each kept direction's variance becomes λ / (λ + mean λ): near 1 for strong ones, near 0 for noise.
    assert np.allclose(variances, values / (values + values.mean()), atol=1e-8)
    assert variances[0] > 0.7 and variances[-1] < 0.01
