"""A per-base query adapter: a linear map of the query vector learnt from the base's own text (sixth pass, measured).

Contract: `train(passages, labels, queries, query_labels, ...)` returns W (d x d), learnt with the encoder frozen
and the stored passage vectors unchanged, so that `adapt(W, q) = normalize(W q)` is nearer the chunks of the
section a pseudo-query came from than the other sections' chunks. W starts at the identity and is pulled back to
it by `reg * ||W - I||^2`, so an adapter trained on nothing, or with a huge `reg`, is the plain search.

Why a query-side map: multilingual-e5-small puts a base's chunks in a narrow cone (cosines 0.82-0.91), and the far
German answers rank 17th-47th in the vector leg; only a rotation of the space moved them (BENCH.md, fifth pass), and
whitening estimated from ~380 chunks is noise. A map trained on the contrast the base itself provides (which
section a sentence belongs to) rotates only the directions that separate this base's sections; HNSW over the stored
vectors is untouched, since only the query moves.

Pseudo-queries (no evaluation question is ever used): the Inverse Cloze Task (a sentence of a chunk, embedded as a
query, should find its own section: `sentences`) and the section headings and document titles as queries for
their sections. Loss: multi-positive InfoNCE over every chunk of the base (a few hundred: the full softmax is
cheap), full batch, Adam, a few hundred steps on the CPU. No Django here.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str, *, per_chunk: int, rng: random.Random, min_words: int = 5,
              max_words: int = 40) -> list[str]:
    """Up to `per_chunk` sentences of a chunk's text with a sensible length (shorter ones are labels or commands)."""
    found = [s.strip() for s in _SENTENCE_END.split(text.replace("\n", " "))]
    fitting = [s for s in found if min_words <= len(s.split()) <= max_words]
    rng.shuffle(fitting)
    return fitting[:per_chunk]


def train(passages: np.ndarray, labels: Sequence[int], queries: np.ndarray, query_labels: Sequence[int], *,
          reg: float = 1.0, temperature: float = 0.02, steps: int = 300, lr: float = 1e-3,
          seed: int = 0) -> np.ndarray:
    """W (d x d, float32) from unit passage vectors (n x d) with section labels and pseudo-query vectors (m x d)
    labelled with the section they should find. `reg` weighs ||W - I||_F^2 against the mean InfoNCE loss."""
    import torch

    torch.manual_seed(seed)
    dims = passages.shape[1]
    p = torch.nn.functional.normalize(torch.as_tensor(passages, dtype=torch.float32), dim=1)
    q = torch.as_tensor(queries, dtype=torch.float32)
    positive = (torch.as_tensor(list(query_labels))[:, None] == torch.as_tensor(list(labels))[None, :])
    eye = torch.eye(dims)
    w = torch.nn.Parameter(eye.clone())
    optimiser = torch.optim.Adam([w], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        logits = torch.nn.functional.normalize(q @ w.T, dim=1) @ p.T / temperature
        total = torch.logsumexp(logits, dim=1)
        hit = torch.logsumexp(logits.masked_fill(~positive, float("-inf")), dim=1)
        loss = (total - hit).mean() + reg * ((w - eye) ** 2).sum()
        loss.backward()
        optimiser.step()
    return w.detach().numpy().astype(np.float32)


def adapt(w: np.ndarray, query: Sequence[float]) -> list[float]:
    """The adapted query vector: normalize(W q)."""
    moved = w @ np.asarray(query, dtype=np.float32)
    return [float(x) for x in moved / np.linalg.norm(moved)]
