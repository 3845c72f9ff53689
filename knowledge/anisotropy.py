"""Anisotropy correction for the search's second stage: the cosine measured from the searched corpus's own centre.

Contract: `corpus_statistics(org_id, bases, spec, versions, whiten, shrink)` returns the `CorpusStatistics` of the active
chunks of `bases` embedded with `spec`: their mean vector and, with `whiten` > 0, a whitening matrix of their top
`whiten` principal components (BERT-whitening: W = U_k diag(λ_k)^-1/2, so W^T (x - mean) has unit variance along each
kept direction; with `shrink` > 0, W = U_k diag(λ_k + shrink * mean λ)^-1/2, a regularised whitening between
that (0) and centring alone (large)). None when the bases hold no such chunk. `similarity(stats, query, vector)` is the cosine of the
corrected query and chunk vectors; with centring alone the search computes the same thing in SQL (pgvector's
vector subtraction and `<=>` on the candidates, `centred_query`), so no vector leaves the database.

Why: multilingual-e5-small's vectors are anisotropic: every chunk of a corpus sits in a narrow cone around a common
direction, so the cosines of one query to a whole base fall within ~0.8-0.9 and the sections that answer a
question differ from their neighbours by 0.01-0.03 (knowledge/BENCH.md, "Fourth pass", 4.). Removing the common
direction (centring) and, further, equalising the variance of the main directions (whitening) spreads the cosines
out, the standard correction for sentence embeddings (Su et al. 2021, "Whitening sentence representations";
Huang et al. 2021, "WhiteningBERT"). Measured in BENCH.md "Fifth pass: anisotropy correction", which says which of
these the default uses.

Cost: read once per set of searched bases and their content versions (the same md5 of current versions the
decompounding vocabulary is keyed on, computed in the lexeme round trip): an avg() over at most SAMPLE_CHUNKS chunk
vectors (and for whitening, those vectors fetched and decomposed: a 384x384 eigendecomposition), kept in a bounded
in-process LRU (knowledge.decompound.BaseCache, STATISTICS_ENTRIES entries: a 384-dim mean is 3 KB, a 128-component
matrix 200 KB). Per query: one vector subtraction and cosine per second-stage candidate inside the search statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from django.db import connection

from knowledge.decompound import BaseCache
from knowledge.embeddings import ModelSpec
from knowledge.models import KnowledgeBase
from knowledge.vectors import parse_vector

SAMPLE_CHUNKS = 20_000  # the mean of a 20k-chunk sample is within ~0.01 cosine of the whole base's
WHITEN_SAMPLE = 5_000  # vectors fetched to estimate the covariance when whitening
STATISTICS_ENTRIES = 32


@dataclass(frozen=True)
class CorpusStatistics:
    mean: np.ndarray  # (dims,)
    chunks: int  # how many chunk vectors the mean was taken over
    whitening: np.ndarray | None = None  # (dims, k), or None for centring only


STATISTICS: BaseCache[CorpusStatistics] = BaseCache(bases=STATISTICS_ENTRIES)


def corpus_statistics(org_id: int, bases: Sequence[KnowledgeBase], spec: ModelSpec, versions: dict[int, str],
                      whiten: int = 0, shrink: float = 0.0) -> CorpusStatistics | None:
    """The cached statistics of `bases` (one embedding model); read from the database when their content changed."""
    pks = sorted(kb.pk for kb in bases)
    key = (pks[0], f"{spec.key}:{whiten}:{shrink}:" + ",".join(f"{pk}={versions.get(pk, '')}" for pk in pks))
    cached = STATISTICS.get(key)
    if cached is not None:
        return cached
    dims = int(spec.dimensions)
    where = (f"org_id = %s AND knowledge_base_id = ANY(%s) AND is_active AND embedding_dims = {dims}"
             " AND embedding_model = %s")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT avg(e), count(*) FROM (SELECT embedding::vector({dims}) AS e FROM knowledge_chunk"
                       f" WHERE {where} LIMIT %s) sample", [org_id, pks, spec.key, SAMPLE_CHUNKS])
        mean, chunks = cursor.fetchone()
        stats: CorpusStatistics | None = None
        if chunks:
            stats = CorpusStatistics(mean=parse_vector(mean), chunks=int(chunks))
            if whiten > 0:
                cursor.execute(f"SELECT embedding::vector({dims})::text FROM knowledge_chunk WHERE {where}"
                               " ORDER BY id LIMIT %s", [org_id, pks, spec.key, WHITEN_SAMPLE])
                sample = np.stack([parse_vector(row[0]) for row in cursor.fetchall()])
                stats = CorpusStatistics(mean=stats.mean, chunks=stats.chunks,
                                         whitening=whitening_matrix(sample - stats.mean, whiten, shrink))
    if stats is not None:  # a base with no chunks of this model is not worth remembering
        STATISTICS.put(key, stats)
    return stats


def whitening_matrix(centred: np.ndarray, components: int, shrink: float = 0.0) -> np.ndarray:
    """W (dims x k) from centred sample rows: the top-k eigenvectors of their covariance over sqrt(eigenvalue), the
    eigenvalues raised by `shrink` times their mean first. A base of a few hundred chunks has fewer rows than a
    384-dim vector has dimensions, so its small eigenvalues are mostly noise that plain whitening blows up."""
    covariance = centred.T @ centred / max(1, len(centred) - 1)
    values, vectors = np.linalg.eigh(covariance)  # ascending
    keep = np.argsort(values)[::-1][:max(1, min(components, len(values)))]
    floor = shrink * float(np.mean(np.maximum(values, 0.0)))
    return vectors[:, keep] / np.sqrt(np.maximum(values[keep] + floor, 1e-12))


def centred_query(stats: CorpusStatistics, query: Sequence[float]) -> np.ndarray:
    return np.asarray(query, dtype=np.float64) - stats.mean


def similarity(stats: CorpusStatistics, query: Sequence[float], vector: Any) -> float:
    """Cosine of the corrected vectors: centred, then (if the statistics whiten) projected by W. `vector` as
    `knowledge.vectors.parse_vector` takes it."""
    q = centred_query(stats, query)
    d = parse_vector(vector) - stats.mean
    if stats.whitening is not None:
        q, d = q @ stats.whitening, d @ stats.whitening
    norm = float(np.linalg.norm(q) * np.linalg.norm(d))
    return float(q @ d) / norm if norm > 0 else 0.0
