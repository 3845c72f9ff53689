"""Embedding backends: the local model for real, OpenAI/Gemini SDKs against fakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import pytest

from knowledge.embeddings import EmbeddingError, create_backend, model_choices
from knowledge.testing.fake_embeddings import FakeGeminiEmbeddings, FakeOpenAIEmbeddings


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_importing_backends_does_not_import_torch_or_sdks() -> None:
    code = ("import sys, knowledge.embeddings, knowledge.chunking, knowledge.extraction;"
            "print(sorted(m for m in ('torch','sentence_transformers','openai','google.genai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def local():
    return create_backend("local", "all-MiniLM-L6-v2", 384)


def test_local_model_is_offline_and_semantic(local) -> None:
    docs = local.embed_documents([
        "Refunds are issued to the original card within 30 days of the return.",
        "Our office is closed on public holidays.",
    ])
    query = local.embed_query("How long until I get my money back?")
    assert len(query) == 384 and abs(math.sqrt(sum(v * v for v in query)) - 1) < 1e-4
    assert cosine(query, docs[0]) > cosine(query, docs[1]) + 0.1


def test_local_async_query(local) -> None:
    vector = asyncio.run(local.aembed_query("opening hours"))
    assert len(vector) == 384


def test_local_rejects_wrong_dimensions() -> None:
    with pytest.raises(EmbeddingError, match="produces 384 dimensions, not 768"):
        create_backend("local", "all-MiniLM-L6-v2", 768)


def test_openai_backend_through_real_sdk() -> None:
    with FakeOpenAIEmbeddings(api_key="sk-org-a") as fake:
        backend = create_backend("openai", "text-embedding-3-small", 768, api_key="sk-org-a",
                                 base_url=f"{fake.base_url}/v1")
        vectors = backend.embed_documents([f"text {i}" for i in range(300)])
        assert len(vectors) == 300 and len(vectors[0]) == 768
        # Batched by the backend, in order.
        assert [len(r.json()["input"]) for r in fake.requests] == [256, 44]
        assert fake.requests[0].json()["dimensions"] == 768
        assert fake.requests[0].headers["authorization"] == "Bearer sk-org-a"
        assert cosine(vectors[5], backend.embed_query("text 5")) > 0.99


@pytest.mark.parametrize("status,retryable", [(429, True), (503, True), (400, False)])
def test_openai_errors_are_typed(status: int, retryable: bool) -> None:
    with FakeOpenAIEmbeddings() as fake:
        backend = create_backend("openai", "text-embedding-3-small", 1536, api_key="k",
                                 base_url=f"{fake.base_url}/v1")
        fake.fail_next = [(status, "boom")]
        with pytest.raises(EmbeddingError, match=f"HTTP {status}") as info:
            backend.embed_query("x")
        assert info.value.retryable is retryable and info.value.provider == "openai"
        assert len(fake.requests) == 1, "no hidden SDK retries"


def test_openai_bad_key_is_not_retryable() -> None:
    with FakeOpenAIEmbeddings(api_key="right") as fake:
        backend = create_backend("openai", "text-embedding-3-small", 1536, api_key="wrong",
                                 base_url=f"{fake.base_url}/v1")
        with pytest.raises(EmbeddingError, match="HTTP 401") as info:
            backend.embed_documents(["a"])
        assert not info.value.retryable


def test_unreachable_server_is_retryable() -> None:
    with FakeOpenAIEmbeddings() as fake:
        url = f"{fake.base_url}/v1"
    backend = create_backend("openai", "text-embedding-3-small", 1536, api_key="k", base_url=url, timeout=2)
    with pytest.raises(EmbeddingError, match="cannot reach") as info:
        backend.embed_query("x")
    assert info.value.retryable


def test_gemini_backend_through_real_sdk() -> None:
    with FakeGeminiEmbeddings(api_key="g-key") as fake:
        backend = create_backend("gemini", "gemini-embedding-001", 768, api_key="g-key",
                                 base_url=fake.base_url)
        vectors = backend.embed_documents([f"doc {i}" for i in range(150)])
        assert len(vectors) == 150 and {len(v) for v in vectors} == {768}
        first = fake.requests[0].json()["requests"]
        assert len(first) == 100 and first[0]["taskType"] == "RETRIEVAL_DOCUMENT"
        assert first[0]["outputDimensionality"] == 768
        backend.embed_query("doc 3")
        assert fake.requests[-1].json()["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


@pytest.mark.parametrize("status,retryable", [(429, True), (500, True), (403, False)])
def test_gemini_errors_are_typed(status: int, retryable: bool) -> None:
    with FakeGeminiEmbeddings() as fake:
        backend = create_backend("gemini", "gemini-embedding-001", 768, api_key="k", base_url=fake.base_url)
        fake.fail_next = [(status, "nope")]
        with pytest.raises(EmbeddingError, match=f"HTTP {status}") as info:
            backend.embed_query("x")
        assert info.value.retryable is retryable
        assert len(fake.requests) == 1


def test_gemini_bad_key() -> None:
    with FakeGeminiEmbeddings(api_key="right") as fake:
        backend = create_backend("gemini", "gemini-embedding-001", 768, api_key="wrong", base_url=fake.base_url)
        with pytest.raises(EmbeddingError, match="API key not valid"):
            backend.embed_query("x")


@pytest.mark.parametrize("args,message", [
    (("openai", "text-embedding-3-small", 1536), "no openai API key"),
    (("openai", "gpt-4o", 1536), "unknown openai embedding model"),
    (("gemini", "gemini-embedding-001", 3072), "3072 dimensions is not supported"),
    (("cohere", "x", 384), "unknown embedding backend 'cohere'"),
])
def test_bad_backend_configuration(args, message: str) -> None:
    with pytest.raises(EmbeddingError, match=message):
        create_backend(*args)


def test_model_choices_only_list_indexable_dimensions() -> None:
    assert ("local", "all-MiniLM-L6-v2", 384) in model_choices()
    assert all(d in (384, 768, 1536) for _, _, d in model_choices())


def test_web_process_modules_do_not_import_torch() -> None:
    """Serving knowledge pages and API calls must not pay for torch; only embedding does."""
    import os
    from pathlib import Path

    code = ("import django, sys; django.setup();"
            "import knowledge.views, knowledge.api.views, knowledge.admin, knowledge.search, knowledge.services;"
            "import voiceplatform.urls;"
            "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "voiceplatform.settings", "VP_TESTING": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
