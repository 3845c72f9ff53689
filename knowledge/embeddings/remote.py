"""Embedding APIs: OpenAI and Gemini through their official SDKs.

Both take the org's API key (from orgs.credentials at the call site) and an
optional base URL, which is how tests point the real SDK at the fakes in
knowledge.testing. SDK-level retries are off: retry policy lives in one place,
the ingestion task, driven by `EmbeddingError.retryable`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Sequence

from knowledge.embeddings.base import EmbeddingBackend, EmbeddingError
from knowledge.embeddings.tokens import count_wordpiece_tokens

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class _RemoteBackend(EmbeddingBackend):
    models: ClassVar[dict[str, tuple[int, ...]]]

    def __init__(self, model: str, dimensions: int, *, api_key: str | None = None,
                 base_url: str | None = None, timeout: float = 30.0) -> None:
        if model not in self.models:
            raise EmbeddingError(f"unknown {self.name} embedding model {model!r}; "
                                 f"available: {', '.join(sorted(self.models))}",
                                 retryable=False, provider=self.name)
        if dimensions not in self.models[model]:
            raise EmbeddingError(f"{model} supports dimensions {self.models[model]}, not {dimensions}",
                                 retryable=False, provider=self.name)
        if not api_key:
            raise EmbeddingError(f"no {self.name} API key is configured for this organisation",
                                 retryable=False, provider=self.name)
        super().__init__(model, dimensions)
        self.api_key = api_key
        self.base_url = base_url
        self.timeout = timeout

    @property
    def max_input_tokens(self) -> int:
        # Both providers accept far more; ~500 tokens keeps chunks focused for retrieval.
        return 512

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return count_wordpiece_tokens(texts)

    def _fail(self, message: str, retryable: bool) -> EmbeddingError:
        logger.warning("embedding request failed",
                       extra={"provider": self.name, "model": self.model, "retryable": retryable})
        return EmbeddingError(message, retryable=retryable, provider=self.name)


class OpenAIEmbeddingBackend(_RemoteBackend):
    name: ClassVar[str] = "openai"
    batch_size: ClassVar[int] = 256
    models: ClassVar[dict[str, tuple[int, ...]]] = {
        "text-embedding-3-small": (384, 768, 1536),
        "text-embedding-3-large": (384, 768, 1536),
        "text-embedding-ada-002": (1536,),
    }

    def __init__(self, model: str = "text-embedding-3-small", dimensions: int = 1536,
                 **kwargs: Any) -> None:
        super().__init__(model, dimensions, **kwargs)
        from openai import OpenAI

        # A customer's base_url override goes through the outbound guard (pinned, bounded).
        http_client = None
        if self.base_url:
            import httpx2

            from voiceplatform import outbound

            http_client = outbound.sync_client(outbound.Policy(total_timeout_s=self.timeout), hx=httpx2,
                                               timeout=self.timeout)
        self._client = OpenAI(api_key=self.api_key, base_url=self.base_url,
                              timeout=self.timeout, max_retries=0, http_client=http_client)

    def _embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        import openai

        params: dict[str, Any] = {"model": self.model, "input": texts}
        if self.model.startswith("text-embedding-3"):
            params["dimensions"] = self.dimensions
        try:
            response = self._client.embeddings.create(**params)
        except openai.APIStatusError as exc:
            raise self._fail(f"OpenAI embeddings returned HTTP {exc.status_code}: {exc.message}",
                             exc.status_code in _RETRYABLE_STATUS) from exc
        except openai.APITimeoutError as exc:
            raise self._fail("OpenAI embeddings request timed out", True) from exc
        except openai.APIConnectionError as exc:
            raise self._fail(f"cannot reach the OpenAI API: {exc}", True) from exc
        ordered = sorted(response.data, key=lambda item: item.index)
        return [list(item.embedding) for item in ordered]


class GeminiEmbeddingBackend(_RemoteBackend):
    name: ClassVar[str] = "gemini"
    batch_size: ClassVar[int] = 100  # batchEmbedContents accepts at most 100 requests
    models: ClassVar[dict[str, tuple[int, ...]]] = {
        "gemini-embedding-001": (384, 768, 1536),
        "text-embedding-004": (384, 768),
    }

    def __init__(self, model: str = "gemini-embedding-001", dimensions: int = 768,
                 **kwargs: Any) -> None:
        super().__init__(model, dimensions, **kwargs)
        from google import genai
        from google.genai import types

        options = types.HttpOptions(timeout=int(self.timeout * 1000),
                                    retry_options=types.HttpRetryOptions(attempts=1))
        if self.base_url:
            from voiceplatform import outbound

            options.base_url = self.base_url
            # A customer's base_url override goes through the outbound guard (pinned, bounded).
            options.httpx_client = outbound.sync_client(outbound.Policy(total_timeout_s=self.timeout),
                                                        timeout=self.timeout)
        self._client = genai.Client(api_key=self.api_key, http_options=options)

    def _embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        import httpx
        from google.genai import errors, types

        config = types.EmbedContentConfig(
            task_type="RETRIEVAL_QUERY" if is_query else "RETRIEVAL_DOCUMENT",
            output_dimensionality=self.dimensions,
        )
        try:
            response = self._client.models.embed_content(model=self.model, contents=texts,
                                                         config=config)
        except errors.APIError as exc:
            raise self._fail(f"Gemini embeddings returned HTTP {exc.code}: {exc.message}",
                             exc.code in _RETRYABLE_STATUS) from exc
        except httpx.TimeoutException as exc:
            raise self._fail("Gemini embeddings request timed out", True) from exc
        except httpx.TransportError as exc:
            raise self._fail(f"cannot reach the Gemini API: {exc}", True) from exc
        return [list(e.values or []) for e in (response.embeddings or [])]
