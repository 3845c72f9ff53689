"""Embedding backends behind one interface, chosen per knowledge base.

Importing this package is cheap: torch, openai and google-genai are imported by
the backends on first use, never here.
"""

from __future__ import annotations

from typing import Any

from knowledge.embeddings.base import EmbeddingBackend, EmbeddingError, ModelSpec
from knowledge.embeddings.local import LocalEmbeddingBackend
from knowledge.embeddings.remote import GeminiEmbeddingBackend, OpenAIEmbeddingBackend

BACKENDS: dict[str, type[EmbeddingBackend]] = {
    LocalEmbeddingBackend.name: LocalEmbeddingBackend,
    OpenAIEmbeddingBackend.name: OpenAIEmbeddingBackend,
    GeminiEmbeddingBackend.name: GeminiEmbeddingBackend,
}

# Every dimension some backend can produce has its own partial HNSW index (pgvector
# indexes need a fixed dimension), so the set is closed.
SUPPORTED_DIMENSIONS: tuple[int, ...] = (384, 768, 1536)


def create_backend(backend: str, model: str, dimensions: int, **options: Any) -> EmbeddingBackend:
    """Build a backend; `options` are api_key/base_url/timeout for remote providers."""
    if backend not in BACKENDS:
        raise EmbeddingError(f"unknown embedding backend {backend!r}; available: {', '.join(BACKENDS)}",
                             retryable=False, provider=backend)
    if dimensions not in SUPPORTED_DIMENSIONS:
        raise EmbeddingError(f"{dimensions} dimensions is not supported; use one of {SUPPORTED_DIMENSIONS}",
                             retryable=False, provider=backend)
    return BACKENDS[backend](model=model, dimensions=dimensions, **options)


def model_choices() -> list[tuple[str, str, int]]:
    """(backend, model, dimensions) triples a knowledge base may be configured with."""
    choices: list[tuple[str, str, int]] = [("local", model, dims)
                                           for model, dims in LocalEmbeddingBackend.models.items()]
    for cls in (OpenAIEmbeddingBackend, GeminiEmbeddingBackend):
        for model, dims in cls.models.items():
            choices.extend((cls.name, model, d) for d in dims)
    return choices


__all__ = [
    "BACKENDS", "SUPPORTED_DIMENSIONS", "EmbeddingBackend", "EmbeddingError", "ModelSpec",
    "LocalEmbeddingBackend", "OpenAIEmbeddingBackend", "GeminiEmbeddingBackend",
    "create_backend", "model_choices",
]
