"""Pseudo-relevance feedback for the second stage of knowledge.search (measured, off by default).

Rocchio's rule on the vector leg: the query vector is moved towards the mean of the vectors of the candidates the
first pass of the second stage ranked highest (they are probably about what the caller asks) and, optionally, away
from the mean of the lower-ranked ones; every candidate's cosine is then taken again against the moved query and
the second stage runs once more. Nothing new is retrieved: the candidates are the same fused top
`SearchTuning.candidates`, so the cost is a few hundred multiply-adds per candidate in numpy, plus reading the
candidates' vectors with the row they already come in. The idea is that a short, vaguely worded question sits
between several sections at nearly the same cosine (BENCH.md "Fourth pass": the package chapter's sections within
0.86-0.89), while the best candidates' own text is specific and separates them better. Measured in BENCH.md
("Fifth pass"), with the other second-stage variant of that pass, a section's centroid similarity
(`SearchTuning.section_centroid`, computed in SQL).

Vectors are compared per embedding model only (a base mid re-embedding has chunks of two models); a candidate
without a vector of the query's model keeps its similarity.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from knowledge import vectors


def parse_vector(text: str | None) -> np.ndarray | None:
    """pgvector's text form "[0.1,0.2,...]" as a float32 array (knowledge.vectors); None (SQL NULL) stays None."""
    if not text:
        return None
    return vectors.parse_vector(text, np.float32)


def _unit(values: Sequence[float] | np.ndarray) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def expanded_query(query: Sequence[float], top: Sequence[Sequence[float] | np.ndarray],
                   low: Sequence[Sequence[float] | np.ndarray],
                   beta: float, gamma: float = 0.0) -> np.ndarray:
    """Rocchio: unit(unit(q) + beta * mean(unit(top)) - gamma * mean(unit(low))). Empty groups add nothing."""
    moved = _unit(query)
    if top and beta:
        moved = moved + beta * np.mean([_unit(v) for v in top], axis=0)
    if low and gamma:
        moved = moved - gamma * np.mean([_unit(v) for v in low], axis=0)
    return _unit(moved)


def cosine(query: np.ndarray, vector: np.ndarray) -> float:
    return float(np.dot(_unit(query), _unit(vector)))
