#!/usr/bin/env python
"""Knowledge-base benchmark: ingestion rate, search latency and HNSW recall at 100k chunks.

    .venv/bin/python bench/knowledge_bench.py                    # 100,000 chunks, 200 queries
    .venv/bin/python bench/knowledge_bench.py --chunks 5000 --queries 100
    .venv/bin/python bench/knowledge_bench.py --reuse            # keep/reuse the corpus database
    .venv/bin/python bench/knowledge_bench.py --reuse --embed-budget 1500   # see "Padding" below
    .venv/bin/python bench/knowledge_bench.py --model e5 --reuse --embed-budget 600   # multilingual-e5-small

What it does, all through the production code paths:
1. Creates a scratch database (`vp_bench_knowledge`, migrated) on the configured
   Postgres — the embedded one by default — and one org with one knowledge base on
   a local model: all-MiniLM-L6-v2 (`--model minilm`, database `vp_bench_knowledge`) or
   multilingual-e5-small (`--model e5`, database `vp_bench_knowledge_e5`), 384 dims.
2. Generates synthetic support documents (50 one-paragraph sections each; one
   section ≈ one chunk) and ingests them with `knowledge.services.ingest_version`:
   extraction, chunking, local embedding, bulk insert with the HNSW and GIN indexes
   live. Prints chunks/s for the whole pipeline and for embedding alone.
3. Runs paraphrased questions about random sections and prints p50/p95 latency of
   - the database part (`search_by_vectors`: HNSW leg + full-text leg + fusion +
     row fetch), query vectors precomputed;
   - end to end (`search_knowledge`: embedding the query with the local model too).
4. recall@10 of the HNSW leg against exact nearest neighbours computed in numpy over
   every stored vector, and answer@10: how often the section a question was written
   from is among the 10 fused results.

Padding: `--embed-budget SECONDS` stops real ingestion after that long and fills
the corpus up to --chunks with padded documents (real generated text, real
chunker, vectors = model vectors of embedded sections on the same topic plus
noise; see pad_corpus). The report always says how many chunks are padded, and
questions are only asked about model-embedded sections.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("VP_TESTING", "1")  # dev secrets; no production settings needed

# --model choice -> (local model, scratch database): one corpus per model, each 100k chunks.
MODELS = {"minilm": ("all-MiniLM-L6-v2", "vp_bench_knowledge"),
          "e5": ("multilingual-e5-small", "vp_bench_knowledge_e5")}

SECTIONS_PER_DOC = 50

PRODUCTS = ["Aurora kettle", "Breeze fan", "Cascade dishwasher", "Delta drill", "Ember heater", "Falcon router",
            "Glacier fridge", "Harbor speaker", "Ion toothbrush", "Juniper blender", "Kestrel vacuum",
            "Lumen lamp", "Meridian watch", "Nimbus humidifier", "Orbit camera", "Pioneer mower",
            "Quartz oven", "Ridge backpack", "Summit tent", "Tidal kayak", "Umber grinder", "Vertex monitor",
            "Willow crib", "Xenon headlamp", "Yarrow planter", "Zephyr dryer"]
ASPECTS = {
    "warranty": ("The {p} comes with a {n}-year warranty that covers manufacturing defects. "
                 "Accidental damage, water ingress and wear from commercial use are excluded. "
                 "Claims need the order number and a photo of the serial plate.",
                 "Is my {p} still guaranteed after {m} years?"),
    "returns": ("Unused {p} units can be sent back within {n} days of delivery for a full refund. "
                "Print the prepaid label from your account and drop the parcel at any post office. "
                "The refund reaches the original card about five days after we receive it.",
                "How long do I have to send back a {p} I don't want?"),
    "shipping": ("Orders for the {p} leave our {c} warehouse within {n} working days. "
                 "Tracking details are e-mailed as soon as the courier collects the parcel. "
                 "Deliveries to islands and remote areas can take two extra days.",
                 "When will my {p} be dispatched from {c}?"),
    "cleaning": ("Unplug the {p} before cleaning and wipe it with a damp cloth. "
                 "Descale it every {n} weeks in hard-water areas using a citric acid solution. "
                 "Never put the base in the dishwasher or under running water.",
                 "How often should the {p} be descaled?"),
    "power": ("The {p} draws up to {w} watts and works on 220 to 240 volt mains. "
              "Use it with the supplied plug only; travel adapters void the safety certification. "
              "In standby it uses less than half a watt.",
              "How much electricity does the {p} use?"),
    "troubleshooting": ("If the {p} shows error E{n}, hold the power button for ten seconds to reset it. "
                        "When the light keeps blinking after a reset, the internal fuse has tripped. "
                        "Contact support with the error code rather than opening the casing.",
                        "My {p} is flashing code E{n}, what do I do?"),
    "spare parts": ("Replacement filters and seals for the {p} are sold in packs of {n}. "
                    "Genuine parts carry a holographic label; third-party parts may damage the motor. "
                    "Spare parts are stocked for at least seven years after the model is discontinued.",
                    "Where can I buy replacement filters for the {p}?"),
    "pricing": ("The {p} costs {w} pounds including VAT, with free delivery on orders above fifty pounds. "
                "Members of the loyalty club get {n} percent off accessories. "
                "Price-match requests are accepted within fourteen days of purchase.",
                "What is the price of the {p}?"),
}
CITIES = ["Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "Norwich", "Exeter", "York", "Derby", "Hull"]


def make_document(rng: random.Random, doc_no: int) -> tuple[str, list[tuple[str, str]]]:
    """A markdown document of SECTIONS_PER_DOC sections plus (question, section heading) pairs."""
    lines = [f"# Product guide {doc_no}"]
    questions: list[tuple[str, str]] = []
    for s in range(SECTIONS_PER_DOC):
        product = f"{rng.choice(PRODUCTS)} {rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(100, 999)}"
        aspect = rng.choice(list(ASPECTS))
        body, question = ASPECTS[aspect]
        fill = {"p": product, "n": rng.randint(2, 90), "m": rng.randint(1, 5), "c": rng.choice(CITIES),
                "w": rng.randint(20, 2400)}
        heading = f"{product} {aspect} (section {s})"
        lines += [f"## {heading}", body.format(**fill)]
        questions.append((question.format(**fill), heading))
    return "\n\n".join(lines), questions


PADDING_NOISE = 0.02  # per-dimension sigma: a padded vector keeps cosine ~0.93 to its source


def padded_total(kb) -> int:
    from knowledge.models import Chunk

    return Chunk.objects.filter(knowledge_base=kb, document__title__startswith="Padding").count()


def pad_corpus(kb, docs_needed: int, seed: int) -> int:
    """Fill the corpus up to `docs_needed` documents without running the model.

    Used only when --embed-budget stops real ingestion early (a 2-core machine
    embeds ~20 chunks/s, so 100k real chunks take well over an hour). Padded
    documents get their own generated text (so full text search sees a realistic
    100k-row table) chunked by the real chunker, and vectors that are real model
    vectors of an embedded section on the same topic plus Gaussian noise, then
    normalised. They are titled "Padding …" and the report counts them apart.
    """
    import numpy as np

    from knowledge.chunking import ChunkingConfig, chunk_document
    from knowledge.extraction import extract_text
    from knowledge.models import Chunk, Document, DocumentVersion, IngestState, SourceType

    real = Document.objects.filter(knowledge_base=kb, title__startswith="Product guide").count()
    have = real + Document.objects.filter(knowledge_base=kb, title__startswith="Padding").count()
    if have >= docs_needed:
        return 0
    by_topic: dict[str, list[np.ndarray]] = {aspect: [] for aspect in ASPECTS}
    for heading, vector in (Chunk.objects.filter(knowledge_base=kb, document__title__startswith="Product guide")
                            .values_list("heading", "embedding")[:20000]):
        for aspect in ASPECTS:
            if f" {aspect} (section" in heading:
                by_topic[aspect].append(np.asarray(vector, dtype=np.float32))
    if not any(by_topic.values()):
        raise SystemExit("padding needs some embedded chunks first: raise --embed-budget")
    rng = np.random.default_rng(seed)
    spec = kb.spec
    from knowledge.embeddings import create_backend

    config = ChunkingConfig(max_tokens=200, overlap_tokens=40)

    counter = create_backend(spec.backend, spec.model, spec.dimensions)
    added = 0
    for doc_no in range(have, docs_needed):
        text, _ = make_document(random.Random(seed * 1_000_003 + doc_no), doc_no)
        extracted = extract_text(text)
        chunks = chunk_document(extracted, counter, config)
        document = Document.objects.create(org=kb.org, knowledge_base=kb, title=f"Padding {doc_no}",
                                           source_type=SourceType.TEXT)
        version = DocumentVersion.objects.create(
            org=kb.org, document=document, number=1, pasted_text=text, file_type="text", size_bytes=len(text),
            extracted_text=extracted.text, state=IngestState.READY, progress=100, chunk_count=len(chunks),
            embedding_model=spec.key)
        rows = []
        for chunk in chunks:
            topic = next((a for a in ASPECTS if f" {a} (section" in chunk.heading and by_topic[a]), None)
            pool = by_topic[topic] if topic else [v for vs in by_topic.values() for v in vs]
            vector = pool[int(rng.integers(len(pool)))] + rng.normal(0, PADDING_NOISE, 384).astype(np.float32)
            vector /= np.linalg.norm(vector)
            rows.append(Chunk(org=kb.org, knowledge_base=kb, document=document, version=version, index=chunk.index,
                              heading=chunk.heading, text=chunk.text, start=chunk.start, end=chunk.end,
                              token_count=chunk.token_count, is_active=True, embedding=vector,
                              embedding_dims=spec.dimensions, embedding_model=spec.key))
        Chunk.objects.bulk_create(rows)
        Document.objects.filter(pk=document.pk).update(current_version=version, latest_version=version)
        added += len(rows)
    return added


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the corpus database and reuse it if present")
    parser.add_argument("--embed-budget", type=float, default=None,
                        help="seconds of real ingestion; the rest of the corpus is padded (see the docstring)")
    parser.add_argument("--model", choices=list(MODELS), default="minilm", help="the base's local embedding model")
    args = parser.parse_args()
    model_name, database = MODELS[args.model]
    os.environ["VP_TEST_DB_NAME"] = database

    import django

    django.setup()
    import numpy as np
    from django.conf import settings
    from django.db import connection

    from knowledge import services
    from knowledge.embeddings import create_backend
    from knowledge.models import Chunk, Document, DocumentVersion, IngestState, KnowledgeBase, SourceType
    from knowledge.search import _resolve_bases, _vector_leg, search_by_vectors, search_knowledge
    from orgs.models import Organization
    from orgs.services import SYSTEM

    original_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=args.reuse)
    org, _ = Organization.objects.get_or_create(slug="bench-knowledge", defaults={"name": "Bench"})
    kb = KnowledgeBase.objects.for_org(org).filter(name="Bench corpus").first()
    if kb is None:
        kb = services.create_knowledge_base(org, SYSTEM, name="Bench corpus", embedding_model=model_name)
    backend = create_backend("local", model_name, 384)
    backend.embed_query("warm up")  # model load is not ingestion

    docs_needed = (args.chunks + SECTIONS_PER_DOC - 1) // SECTIONS_PER_DOC
    existing = Document.objects.filter(knowledge_base=kb, title__startswith="Product guide").count()
    if Document.objects.filter(knowledge_base=kb, title__startswith="Padding").exists():
        existing = docs_needed  # a padded corpus is complete; never ingest after padding

    print(f"# knowledge bench — {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"model {model_name}, {settings.KNOWLEDGE_EMBED_THREADS} embedding thread(s), load {os.getloadavg()[0]:.1f}")
    print(f"corpus: {docs_needed} documents x {SECTIONS_PER_DOC} sections -> target {args.chunks:,} chunks")
    if existing < docs_needed:
        started = time.perf_counter()
        chunks_before = Chunk.objects.filter(knowledge_base=kb).count()
        last_report = started
        for doc_no in range(existing, docs_needed):
            if args.embed_budget is not None and time.perf_counter() - started > args.embed_budget:
                break
            text, _ = make_document(random.Random(args.seed * 1_000_003 + doc_no), doc_no)
            # What add_document + the worker do, minus the broker round trip (no worker runs here).
            document = Document.objects.create(org=org, knowledge_base=kb, title=f"Product guide {doc_no}",
                                               source_type=SourceType.TEXT)
            version = DocumentVersion.objects.create(org=org, document=document, number=1, pasted_text=text,
                                                     file_type="text", size_bytes=len(text))
            Document.objects.filter(pk=document.pk).update(latest_version=version)
            services.ingest_version(str(version.public_id), org)
            if time.perf_counter() - last_report > 30:
                done = Chunk.objects.filter(knowledge_base=kb).count()
                rate = (done - chunks_before) / (time.perf_counter() - started)
                print(f"  … {done:,} chunks, {rate:.0f} chunks/s", flush=True)
                last_report = time.perf_counter()
        elapsed = time.perf_counter() - started
        ingested = Chunk.objects.filter(knowledge_base=kb).count() - chunks_before
        failed = DocumentVersion.objects.filter(document__knowledge_base=kb, state=IngestState.FAILED).count()
        print(f"ingestion: {ingested:,} chunks in {elapsed:.1f} s = {ingested / elapsed:.1f} chunks/s end to end "
              f"(extract + chunk + embed + insert); failed documents: {failed}")
        # The embedding share, measured alone on the same texts.
        texts = list(Chunk.objects.filter(knowledge_base=kb).values_list("heading", "text")[:1000])
        t = time.perf_counter()
        backend.embed_documents([f"{h}\n{x}" for h, x in texts])
        print(f"  embedding alone: {len(texts) / (time.perf_counter() - t):.1f} chunks/s "
              f"({model_name}, {settings.KNOWLEDGE_EMBED_THREADS} torch thread(s))")
    live_doc_numbers = sorted(int(title.rsplit(" ", 1)[1]) for title in Document.objects.filter(
        knowledge_base=kb, title__startswith="Product guide", current_version__isnull=False)
        .values_list("title", flat=True))
    padded = pad_corpus(kb, docs_needed, args.seed)
    total = Chunk.objects.filter(knowledge_base=kb, is_active=True).count()
    print(f"corpus size: {total:,} active chunks ({total - padded_total(kb):,} embedded by the pipeline, "
          f"{padded_total(kb):,} padded{'' if not padded else f', {padded:,} added now'})")
    # Questions only about sections whose vectors came from the model itself.
    questions = [q for doc_no in live_doc_numbers
                 for q in make_document(random.Random(args.seed * 1_000_003 + doc_no), doc_no)[1]]

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
    sample = random.Random(args.seed).sample(questions, min(args.queries, len(questions)))
    bases = _resolve_bases(org, [kb.public_id])
    vectors = [backend.embed_query(q) for q, _ in sample]
    for q, _ in sample[:5]:  # warm caches and the connection
        search_knowledge(org, [kb.public_id], q, args.k, backends={kb.spec.key: backend})

    db_ms: list[float] = []
    answered = 0
    for (question, heading), vector in zip(sample, vectors, strict=True):
        t = time.perf_counter()
        hits = search_by_vectors(org, bases, question, {kb.spec.key: vector}, args.k)
        db_ms.append((time.perf_counter() - t) * 1000)
        answered += any(h.heading.endswith(heading) for h in hits)
    e2e_ms: list[float] = []
    embed_ms: list[float] = []
    for question, _ in sample:
        t = time.perf_counter()
        backend.embed_query(question)
        embed_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        search_knowledge(org, [kb.public_id], question, args.k, backends={kb.spec.key: backend})
        e2e_ms.append((time.perf_counter() - t) * 1000)

    def line(name: str, values: list[float]) -> str:
        return (f"{name}: p50 {statistics.median(values):.1f} ms, p95 {percentile(values, 95):.1f} ms, "
                f"max {max(values):.1f} ms (n={len(values)})")

    print(line("search latency, database (HNSW + full text + fusion + fetch)", db_ms))
    print(line("query embedding alone (local model)", embed_ms))
    print(line("search latency, end to end (embed query + database)", e2e_ms))

    # Exact neighbours over every stored vector, in numpy.
    ids: list[int] = []
    rows: list[np.ndarray] = []
    for pk, embedding in Chunk.objects.filter(knowledge_base=kb, is_active=True).values_list("id", "embedding") \
            .iterator(chunk_size=5000):
        ids.append(pk)
        rows.append(np.asarray(embedding, dtype=np.float32))
    matrix = np.vstack(rows)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    id_array = np.asarray(ids)
    row_of = {pk: i for i, pk in enumerate(ids)}
    recalls = []
    tie_recalls = []
    for vector in vectors:
        query = np.asarray(vector, dtype=np.float32)
        query /= np.linalg.norm(query)
        sims = matrix @ query
        order = np.argsort(-sims)[: args.k]
        exact = set(id_array[order].tolist())
        approx = [pk for pk, _ in _vector_leg(org, kb.spec, [kb.pk], vector, args.k)]
        recalls.append(len(exact & set(approx)) / args.k)
        # Padded near-duplicates make many neighbours tie to float precision; a hit as
        # close as the exact k-th neighbour is as good an answer.
        kth = sims[order[-1]] - 1e-5
        tie_recalls.append(sum(1 for pk in approx if sims[row_of[pk]] >= kth) / args.k)
    print(f"recall@{args.k} of HNSW (m=16, ef_construction=64, ef_search=100) vs exact: "
          f"{statistics.mean(recalls):.3f} (min {min(recalls):.1f}, n={len(recalls)}); counting hits at least "
          f"as close as the exact {args.k}th neighbour: {statistics.mean(tie_recalls):.3f} "
          f"(min {min(tie_recalls):.1f})")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"answer@{args.k}: the section a question was written from is in the fused top {args.k} for "
          f"{answered}/{len(sample)} questions ({100 * answered / len(sample):.0f}%)")
    if not args.reuse:
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
