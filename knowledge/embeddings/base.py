"""The embedding backend interface every provider implements.

A backend turns texts into fixed-length vectors. It is synchronous because it runs
in Celery workers and in the benchmark; async callers (the call session) use
`aembed_query`, which runs the blocking call in a thread so the event loop keeps
moving audio.

Errors from any provider become `EmbeddingError` with `retryable` set: the
ingestion task retries only those (rate limits, timeouts, 5xx), and fails the
document with the message otherwise (bad key, unknown model).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence


class EmbeddingError(Exception):
    def __init__(self, message: str, *, retryable: bool, provider: str) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.provider = provider


@dataclass(frozen=True)
class ModelSpec:
    """What a knowledge base records about the model its vectors came from."""

    backend: str
    model: str
    dimensions: int

    @property
    def key(self) -> str:
        # Stored on every chunk: vectors are only comparable within one key.
        return f"{self.backend}:{self.model}:{self.dimensions}"


class EmbeddingBackend(ABC):
    name: ClassVar[str]
    # Inputs per request; providers cap batch sizes and large batches time out.
    batch_size: ClassVar[int] = 64
    # Chunk size the chunker aims for: small enough to keep one topic per chunk,
    # always below max_input_tokens.
    preferred_chunk_tokens: ClassVar[int] = 400

    def __init__(self, model: str, dimensions: int) -> None:
        self.model = model
        self.dimensions = dimensions

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.name, self.model, self.dimensions)

    @property
    @abstractmethod
    def max_input_tokens(self) -> int:
        """Longest input the model embeds without truncation; chunks are sized below it."""

    @abstractmethod
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts used by the chunker (see knowledge.chunking.TokenCounter)."""

    @abstractmethod
    def _embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        """Embed one batch (len <= batch_size). Raise EmbeddingError on failure."""

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i : i + self.batch_size])
            result = self._embed(batch, is_query=False)
            self._check(result, len(batch))
            vectors.extend(result)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        result = self._embed([text], is_query=True)
        self._check(result, 1)
        return result[0]

    async def aembed_query(self, text: str) -> list[float]:
        return await asyncio.to_thread(self.embed_query, text)

    def _check(self, vectors: list[list[float]], expected: int) -> None:
        if len(vectors) != expected:
            raise EmbeddingError(
                f"{self.name} returned {len(vectors)} embeddings for {expected} inputs",
                retryable=False, provider=self.name,
            )
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbeddingError(
                    f"{self.name} model {self.model} returned {len(vector)} dimensions, "
                    f"expected {self.dimensions}",
                    retryable=False, provider=self.name,
                )
