#!/usr/bin/env python
"""Retrieval quality benchmark: hit@1, hit@5, MRR and latency per configuration.

    .venv/bin/python -m voiceplatform.embedded exec -- .venv/bin/python bench/knowledge_quality.py
    ... bench/knowledge_quality.py --models minilm --langs en          # one configuration
    ... bench/knowledge_quality.py --reuse                             # keep/reuse the ingested corpora

Corpus: the Debian Reference, chapters 2-5 (package management, boot, authentication,
network), one document per numbered section, read from Debian's
debian-reference-en/-es/-de packages at run time (`make browser` installs them;
knowledge/evaluation/corpus.py). Questions: knowledge/evaluation/questions/*.json,
paraphrased the way callers ask (English also has keyword queries the way a model
writes a `search_knowledge` call), each with the section that answers it.

For each embedding model and language the corpus is ingested into its own knowledge
base through `ingest_version` (extraction, chunking with title and section context,
embedding, insert), timed (chunks/s on this machine, one thread), then every
question is asked through `search_knowledge` in each search mode and scored. Latency
is end to end: embedding the query on the CPU + the database + reranking.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
os.environ.setdefault("VP_TESTING", "1")
os.environ["VP_TEST_DB_NAME"] = "vp_bench_knowledge_quality"

# name -> (backend, model, dimensions)
MODELS = {
    "minilm": ("local", "all-MiniLM-L6-v2", 384),
    "e5": ("local", "multilingual-e5-small", 384),
}
LANGUAGE_NAMES = {"en": "english", "es": "spanish", "de": "german"}


def tuning_variants() -> dict:
    """Ranking variants compared by --tune (knowledge.search.SearchTuning; BENCH.md lists the results)."""
    from dataclasses import replace

    from knowledge.search import SearchTuning

    before = SearchTuning(section_dedup=False, term_rule="share", caller_words=False,
                          decompound="off")  # the code before the second pass
    base = replace(before, section_dedup=True, term_rule="rows", caller_words=True)  # the second pass's default
    split = replace(base, decompound="and")  # third pass: compound words also match all their parts
    default = replace(base, decompound="or")
    return {
        "before (rerank)": before,
        "dedup": replace(before, section_dedup=True),
        "dedup+rows": replace(before, section_dedup=True, term_rule="rows"),
        "dedup+rows+caller": base,
        "d+r+c+idf": replace(base, idf=True),
        "d+r+c+idf+head0.5": replace(base, idf=True, heading_boost=0.5),
        "d+r+c+idf+cov0.34": replace(base, idf=True, coverage=0.34),
        "d+r+c+idf+OR": replace(base, idf=True, coverage=0.01),
        "d+r+c+idf+share": replace(base, idf=True, text_share=True),
        "d+r+c+idf+share+OR": replace(base, idf=True, text_share=True, coverage=0.01),
        "d+r+c+idf+share+OR+t1.5": replace(base, idf=True, text_share=True, coverage=0.01, text_weight=1.5),
        "d+r+c+cov0.34": replace(base, coverage=0.34),
        "d+r+c+text1.5": replace(base, text_weight=1.5),
        "d+r+c+text0.7": replace(base, text_weight=0.7),
        "d+r+c+sim1.5": replace(base, similarity_weight=1.5),
        "d+r+c+cand30": replace(base, candidates=30),
        "d+r+c+split": split,
        "d+r+c+split-or (default)": replace(base, decompound="or"),
        "d+r+c+split-or, unknown words only": replace(base, decompound="or", split_known=False),
        "d+r+c+split, unknown words only": replace(split, split_known=False),
        "d+r+c+split+OR": replace(split, coverage=0.01),
        "d+r+c+split+idf": replace(split, idf=True),
        "d+r+c+split+idf+head0.5": replace(split, idf=True, heading_boost=0.5),
        "d+r+c+split+idf+head1": replace(split, idf=True, heading_boost=1.0),
        "d+r+c+split+text1.5": replace(split, text_weight=1.5),
        # fourth pass: a section scores its best chunks (pool n, the i-th weighted decay**i), over more candidates
        "pool2 d0.5 raw": replace(default, section_pool=2, section_floor=False),
        "pool3 d0.5 raw": replace(default, section_pool=3, section_floor=False),
        "pool2 d1.0 raw": replace(default, section_pool=2, section_decay=1.0, section_floor=False),
        "pool2 d0.3 raw": replace(default, section_pool=2, section_decay=0.3, section_floor=False),
        "pool2 d0.5 raw cand40": replace(default, section_pool=2, candidates=40, section_floor=False),
        "pool2 d0.1": replace(default, section_pool=2, section_decay=0.1),
        "pool2 d0.2": replace(default, section_pool=2, section_decay=0.2),
        "pool2 d0.5": replace(default, section_pool=2),
        "pool3 d0.5": replace(default, section_pool=3),
        "pool3 d0.3": replace(default, section_pool=3, section_decay=0.3),
        "pool2 d0.3": replace(default, section_pool=2, section_decay=0.3),
        "pool2 d0.5 cand40": replace(default, section_pool=2, candidates=40),
        "cand40": replace(default, candidates=40),
        "join": replace(default, join_words=True),
        "rrf20": replace(default, rrf_k=20),
        "rrf120": replace(default, rrf_k=120),
        "sim0.5": replace(default, similarity_weight=0.5),
        "simnorm": replace(default, similarity_norm=True),
        "simnorm w0.5": replace(default, similarity_norm=True, similarity_weight=0.5),
        "simnorm w1.5": replace(default, similarity_norm=True, similarity_weight=1.5),
        "simnorm w2": replace(default, similarity_norm=True, similarity_weight=2.0),
        # fifth pass: the second stage's cosine corrected for anisotropy (knowledge.anisotropy)
        "center": replace(default, center=True),
        "center w0.5": replace(default, center=True, similarity_weight=0.5),
        "center w1.5": replace(default, center=True, similarity_weight=1.5),
        "center w2": replace(default, center=True, similarity_weight=2.0),
        "center cand40": replace(default, center=True, candidates=40),
        "center cand60": replace(default, center=True, candidates=60),
        "center w2 cand40": replace(default, center=True, similarity_weight=2.0, candidates=40),
        "whiten32": replace(default, whiten=32),
        "whiten64": replace(default, whiten=64),
        "whiten128": replace(default, whiten=128),
        "whiten256": replace(default, whiten=256),
        "whiten128 cand40": replace(default, whiten=128, candidates=40),
        "center w3": replace(default, center=True, similarity_weight=3.0),
        "whiten64 w2": replace(default, whiten=64, similarity_weight=2.0),
        "whiten128 w2 cand60": replace(default, whiten=128, similarity_weight=2.0, candidates=60),
        "whiten384 shrink0.1": replace(default, whiten=384, whiten_shrink=0.1),
        "whiten384 shrink1": replace(default, whiten=384, whiten_shrink=1.0),
        "whiten384 shrink1 w2": replace(default, whiten=384, whiten_shrink=1.0, similarity_weight=2.0),
        "whiten128 shrink0.3": replace(default, whiten=128, whiten_shrink=0.3),
        # fifth pass: pseudo-relevance feedback on the vector leg (Rocchio) and section centroids, second stage
        "prf b0.3 m3": replace(default, feedback_beta=0.3, feedback_top=3),
        "prf b0.5 m3": replace(default, feedback_beta=0.5, feedback_top=3),
        "prf b0.3 m5": replace(default, feedback_beta=0.3, feedback_top=5),
        "prf b0.5 m5": replace(default, feedback_beta=0.5, feedback_top=5),
        "prf b0.5 m3 g0.15": replace(default, feedback_beta=0.5, feedback_top=3, feedback_gamma=0.15),
        "centroid 0.3": replace(default, section_centroid=0.3),
        "centroid 0.5": replace(default, section_centroid=0.5),
        "centroid 1.0": replace(default, section_centroid=1.0),
        "prf g0.5 (away from the lower half)": replace(default, feedback_gamma=0.5),
        "prf g0.9": replace(default, feedback_gamma=0.9),
        "prf b0.5 m3 g0.5": replace(default, feedback_beta=0.5, feedback_top=3, feedback_gamma=0.5),
        "prf b0.5 m3 simnorm": replace(default, feedback_beta=0.5, feedback_top=3, similarity_norm=True),
        "prf b0.3 m3 simnorm": replace(default, feedback_beta=0.3, feedback_top=3, similarity_norm=True),
        "prf b0.5 m5 simnorm": replace(default, feedback_beta=0.5, feedback_top=5, similarity_norm=True),
        "prf b0.5 m3 simnorm w0.5": replace(default, feedback_beta=0.5, feedback_top=3, similarity_norm=True,
                                            similarity_weight=0.5),
        "centroid 0.5 simnorm": replace(default, section_centroid=0.5, similarity_norm=True),
        # sixth pass: query words also match their thesaurus synonyms the base uses (knowledge.thesaurus)
        "synonyms all": replace(default, synonyms="all"),
        "synonyms unknown": replace(default, synonyms="unknown"),
        "synonyms unknown stem": replace(default, synonyms="unknown stem"),
        "synonyms all stem": replace(default, synonyms="all stem"),
        "synonyms all max1": replace(default, synonyms="all", synonym_limit=1),
        "synonyms all max3": replace(default, synonyms="all", synonym_limit=3),
    }


# Fourth pass: how the question is turned into a query vector (measured with the default tuning).
# plain: embed_query(question) ("query: " + question); passage: embedded as a passage ("passage: " prefix);
# bare: the question's content words only (Postgres stop words and CALLER_WORDS dropped); mean: plain + bare.
# Fifth pass: feedback b0.3 / b0.5 = the plain vector moved by Rocchio towards the 3 best chunks of a first default
# search (knowledge.feedback.expanded_query), then searched again with it: both legs, a second retrieval.
# Sixth pass: adapter <sources> r<reg> = normalize(W q), W a per-base query adapter (knowledge.evaluation.adapter) trained on the
# base's own pseudo-queries: "ict" sentences of its chunks, "+head" also its section headings and document titles.
QUERY_FORMS = ("plain", "passage", "bare", "mean", "feedback b0.3", "feedback b0.5")
ADAPTER_FORMS = ("adapter ict r1", "adapter ict r0.1", "adapter ict+head r0.1")
_ADAPTERS: dict = {}
_PSEUDO: dict = {}


def base_chunks(kb):
    """The base's active chunks: unit vectors (n x d), section labels ((title, heading) as an index), texts."""
    import numpy as np
    from django.db import connection

    from knowledge.vectors import parse_vector

    with connection.cursor() as cursor:
        cursor.execute("SELECT c.embedding::text, d.title, c.heading, c.text FROM knowledge_chunk c"
                       " JOIN knowledge_document d ON d.id = c.document_id"
                       " WHERE c.knowledge_base_id = %s AND c.is_active ORDER BY c.id", [kb.pk])
        rows = cursor.fetchall()
    vectors = np.stack([parse_vector(row[0]) for row in rows])
    sections: dict = {}
    labels = [sections.setdefault((row[1], row[2]), len(sections)) for row in rows]
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels, rows, sections


def pseudo_queries(kb, backend, rows, labels, sections, sources: str):
    """(vectors, labels) of the base's pseudo-queries, embedded as queries; each part cached per base."""
    import random
    import time

    import numpy as np

    from knowledge.evaluation import adapter

    parts = []
    for part in sources.split("+"):
        key = (kb.pk, part)
        if key not in _PSEUDO:
            rng = random.Random(0)
            texts, wanted = [], []
            if part == "ict":
                for row, label in zip(rows, labels, strict=True):
                    for sentence in adapter.sentences(row[3], per_chunk=3, rng=rng):
                        texts.append(sentence)
                        wanted.append(label)
            else:  # head: the section's heading and its document's title
                for (title, heading), label in sections.items():
                    for text in sorted({title, heading.split(" > ")[-1]} - {""}):
                        texts.append(text)
                        wanted.append(label)
            started = time.perf_counter()
            vectors = []
            for i in range(0, len(texts), 32):
                vectors.extend(backend._embed(texts[i:i + 32], is_query=True))
            print(f"    {kb.name} {part}: {len(texts)} pseudo-queries embedded in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            _PSEUDO[key] = (np.asarray(vectors, dtype=np.float32), wanted)
        parts.append(_PSEUDO[key])
    return np.concatenate([p[0] for p in parts]), [label for p in parts for label in p[1]]


def base_adapter(kb, backend, form: str):
    """W for an ADAPTER_FORMS name, trained once per base (timed; with the pseudo-queries' own top-1 section
    before and after, the only fit it is judged on while training)."""
    import time

    import numpy as np

    from knowledge.evaluation import adapter

    key = (kb.pk, form)
    if key not in _ADAPTERS:
        _, sources, reg = form.split(" ")
        passages, labels, rows, sections = base_chunks(kb)
        queries, wanted = pseudo_queries(kb, backend, rows, labels, sections, sources)
        started = time.perf_counter()
        w = adapter.train(passages, labels, queries, wanted, reg=float(reg[1:]))
        seconds = time.perf_counter() - started
        label_of = np.asarray(labels)

        def top1(matrix):
            moved = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
            return float(np.mean(label_of[np.argmax(moved @ passages.T, axis=1)] == np.asarray(wanted)))

        print(f"    {kb.name} {form}: trained on {len(wanted)} pseudo-queries, {len(rows)} chunks in {seconds:.1f} s;"
              f" ||W-I|| {np.linalg.norm(w - np.eye(len(w))):.2f}; pseudo-query top-1 section {top1(queries):.2f} ->"
              f" {top1(queries @ w.T):.2f}", flush=True)
        _ADAPTERS[key] = w
    return _ADAPTERS[key]


def calibrate_adapter(kb, backend, regs: Sequence[float], sources: str = "ict") -> None:
    """Choose the adapter's reg without the questions: train on 4/5 of the base's pseudo-queries, print the top-1
    section of the other fifth (other sentences of the same chunks) before and after, per reg."""
    import time

    import numpy as np

    from knowledge.evaluation import adapter

    passages, labels, rows, sections = base_chunks(kb)
    queries, wanted = pseudo_queries(kb, backend, rows, labels, sections, sources)
    label_of, want = np.asarray(labels), np.asarray(wanted)
    test = np.arange(len(want)) % 5 == 0

    def top1(matrix, chosen):
        unit = matrix[chosen] / np.linalg.norm(matrix[chosen], axis=1, keepdims=True)
        return float(np.mean(label_of[np.argmax(unit @ passages.T, axis=1)] == want[chosen]))

    print(f"    {kb.name} {sources} pseudo-queries, top-1 section: plain train {top1(queries, ~test):.3f} "
          f"held {top1(queries, test):.3f}")
    for reg in regs:
        started = time.perf_counter()
        w = adapter.train(passages, labels, queries[~test], list(want[~test]), reg=reg)
        print(f"      reg {reg}: {time.perf_counter() - started:.1f} s, ||W-I|| {np.linalg.norm(w - np.eye(len(w))):.2f},"
              f" train {top1(queries @ w.T, ~test):.3f} held {top1(queries @ w.T, test):.3f}", flush=True)


def query_vectors(kb, backend, questions, form: str) -> dict:
    """Query vector per question text for one of QUERY_FORMS."""
    import numpy as np
    from django.db import connection

    from knowledge.passages import _WORD
    from knowledge.search import CALLER_WORDS

    def bare(text: str) -> str:
        words = _WORD.findall(text)
        with connection.cursor() as cursor:  # ts_lexize returns {} for the language's stop words
            cursor.execute(f"SELECT array(SELECT ts_lexize('{kb.language}_stem', lower(w)) <> '{{}}'"
                           " FROM unnest(%s::text[]) WITH ORDINALITY AS x(w, n) ORDER BY n)", [words])
            keep = cursor.fetchone()[0]
        filler = set(CALLER_WORDS.get(kb.language, "").split())
        return " ".join(w for w, k in zip(words, keep, strict=True) if k and w.lower() not in filler)

    vectors = {}
    for q in questions:
        text = q.question
        if form == "plain":
            vectors[text] = backend.embed_query(text)
        elif form == "passage":
            vectors[text] = backend.embed_documents([text])[0]
        elif form == "bare":
            vectors[text] = backend.embed_query(bare(text) or text)
        elif form.startswith("adapter"):
            from knowledge.evaluation import adapter

            vectors[text] = adapter.adapt(base_adapter(kb, backend, form), backend.embed_query(text))
        elif form.startswith("feedback"):
            vectors[text] = list(second_retrieval_vector(kb, text, backend.embed_query(text), float(form[-3:])))
        else:
            mean = np.asarray(backend.embed_query(text)) + np.asarray(backend.embed_query(bare(text) or text))
            vectors[text] = list(mean / np.linalg.norm(mean))
    return vectors


def second_retrieval_vector(kb, question: str, query, beta: float, top: int = 3):
    """Rocchio's moved query for a second retrieval: q towards the stored vectors of a first search's best chunks."""
    from knowledge import feedback
    from knowledge.models import Chunk
    from knowledge.search import search_by_vectors

    first = search_by_vectors(kb.org, [kb], question, {kb.spec.key: query}, top)
    chunks = [Chunk.objects.get(version__public_id=hit.version_id, index=hit.chunk_index) for hit in first]
    return feedback.expanded_query(query, [c.embedding for c in chunks if c.embedding is not None], [], beta)


def tune(org, kb, questions, show_misses: bool, only: list[str] | None = None, forms: bool = False) -> None:
    """Every tuning variant on cached query vectors: whole set, tuning half (odd ids), held-out half (even ids).
    `forms`: instead, the default tuning with each of QUERY_FORMS."""
    from knowledge import services
    from knowledge.evaluation.run import evaluate
    from knowledge.search import DEFAULT_TUNING, search_by_vectors

    backend = services.backend_for(kb)
    runs = ([(f"query form: {form}", DEFAULT_TUNING, form) for form in QUERY_FORMS + ADAPTER_FORMS] if forms
            else [(name, tuning, "plain") for name, tuning in tuning_variants().items()])
    cached: dict = {}
    for name, tuning, form in runs:
        if only and name not in only:
            continue
        if form not in cached:
            cached[form] = query_vectors(kb, backend, questions, form)
        vectors = cached[form]

        def run(org, kb_ids, query, k, tuning=tuning, vectors=vectors):
            return search_by_vectors(org, [kb], query, {kb.spec.key: vectors[query]}, k, tuning=tuning)

        parts = {"all": questions, "tune": [q for q in questions if not q.held_out],
                 "held": [q for q in questions if q.held_out]}
        line = []
        for part, subset in parts.items():
            scores = evaluate(org, kb, subset, search=run)
            line.append(f"{part} n={scores.n:3} {scores.hit_at(1):.2f}/{scores.hit_at(5):.2f}/{scores.mrr:.2f}")
            if part == "all":
                db_ms = scores.latency(0.95)
            if part == "tune":
                misses = scores.misses  # only the tuning half's misses are read: the held-out half stays unseen
                missed_ranks = [rank for rank in scores.ranks if rank is None or rank > 1]
        print(f"  {name:22} " + " | ".join(line) + f" | db p95 {db_ms:.0f} ms", flush=True)
        if show_misses:
            for (question, section, got), rank in zip(misses, missed_ranks, strict=True):
                print(f"      miss {section:7} rank {rank or '>10':>3} {question[:60]!r} -> {got}")


def vector_ranks(org, kb, questions, whiten: int = 128, adapter_forms: Sequence[str] = ()) -> None:
    """Fifth pass: for each question of the tuning half (only), where its answer's section ranks in the vector leg
    alone over the whole base (sections counted once, exact order over every chunk vector): raw cosine, centred,
    whitened (`whiten` components); with the best raw cosine and the answer's. Printed for those not first in the raw
    order and those that move. Sixth pass: then the vector leg's own hit@1/hit@5/MRR per half and space (counts only;
    no held-out question is printed)."""
    import functools

    import numpy as np

    from knowledge import anisotropy, services
    from knowledge.evaluation.corpus import answers

    backend = services.backend_for(kb)
    # The models store unit vectors, so base_chunks' normalisation leaves them as read (to float precision).
    vectors, _, rows, _ = base_chunks(kb)
    mean = vectors.mean(axis=0)
    white = anisotropy.whitening_matrix(vectors - mean, whiten)

    def unit(m):
        return m / np.linalg.norm(m, axis=-1, keepdims=True)

    spaces = {"raw": (unit(vectors), lambda q: unit(q)),
              "centred": (unit(vectors - mean), lambda q: unit(q - mean)),
              f"whiten{whiten}": (unit((vectors - mean) @ white), lambda q: unit((q - mean) @ white))}
    if adapter_forms:  # sixth pass: the stored vectors as they are, the query through the base's adapter
        spaces = {"raw": spaces["raw"]}
        for form in adapter_forms:
            spaces[form] = (unit(vectors), functools.partial(lambda q, w: unit(w @ q),
                                                             w=base_adapter(kb, backend, form)))
    raw_all = unit(vectors) @ unit(vectors).T
    print(f"    cosines between chunks: raw {np.percentile(raw_all, 5):.2f}-{np.percentile(raw_all, 95):.2f} (5-95 %)"
          f", centred {np.percentile(unit(vectors - mean) @ unit(vectors - mean).T, 5):.2f}-"
          f"{np.percentile(unit(vectors - mean) @ unit(vectors - mean).T, 95):.2f}")
    leg: dict[tuple[str, str], list] = {}
    for q in questions:
        query = np.asarray(backend.embed_query(q.question), dtype=np.float64)
        ranks, cosines = {}, {}
        for name, (matrix, project) in spaces.items():
            scores = matrix @ project(query)
            seen: list[tuple[str, str]] = []
            for i in np.argsort(-scores):
                section = (rows[i][1], rows[i][2])
                if section in seen:
                    continue
                seen.append(section)
                if answers(q, rows[i][1], rows[i][2]):
                    ranks[name], cosines[name] = len(seen), (float(scores.max()), float(scores[i]))
                    break
        for name in spaces:
            leg.setdefault((name, "held" if q.held_out else "tune"), []).append(ranks.get(name))
        if not q.held_out and ranks and (ranks["raw"] > 1 or len(set(ranks.values())) > 1):
            print(f"    {q.section:7} " + "  ".join(f"{name} {ranks[name]:3} ({cosines[name][1]:.3f} vs top "
                                                   f"{cosines[name][0]:.3f})" for name in ranks)
                  + f"  {q.question[:50]!r}")
    for (name, part), found in leg.items():
        hit = [r for r in found if r is not None]
        print(f"    vector leg alone, {name:17} {part} n={len(found):3} {sum(r <= 1 for r in hit) / len(found):.2f}/"
              f"{sum(r <= 5 for r in hit) / len(found):.2f}/{sum(1 / r for r in hit if r <= 10) / len(found):.2f}")


def search_modes() -> dict[str, dict]:
    """Search options compared per configuration (keyword arguments of search_knowledge)."""
    import inspect

    from knowledge.search import search_knowledge

    params = inspect.signature(search_knowledge).parameters
    if "rerank" not in params:
        return {"hybrid": {}}
    return {"hybrid": {"rerank": False}, "hybrid+rerank": {"rerank": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--langs", nargs="+", default=["en", "es", "de"], choices=["en", "es", "de"])
    parser.add_argument("--reuse", action="store_true", help="keep the scratch database and reuse ingested corpora")
    parser.add_argument("--misses", action="store_true",
                        help="print the questions not answered at rank 1 (with --tune: of the tuning half only)")
    parser.add_argument("--tune", action="store_true",
                        help="compare the ranking variants (hit@1/hit@5/MRR) on the ingested corpora")
    parser.add_argument("--variants", nargs="+", help="with --tune: only these variants (names as printed)")
    parser.add_argument("--forms", action="store_true", help="with --tune: compare how the query is embedded")
    parser.add_argument("--ranks", action="store_true",
                        help="with --tune: where the tuning half's answers rank in the vector leg alone, raw and "
                             "corrected for anisotropy")
    parser.add_argument("--adapter", nargs="+", choices=ADAPTER_FORMS, default=(),
                        help="with --ranks: the vector leg's ranks raw and through these per-base query adapters")
    parser.add_argument("--calibrate-adapter", nargs="+", type=float, metavar="REG",
                        help="with --tune: the adapter's held-out pseudo-query top-1 per reg (no question used)")
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from knowledge import services
    from knowledge.embeddings import model_choices
    from knowledge.evaluation.corpus import load_corpus, load_questions
    from knowledge.evaluation.run import evaluate, ingest_corpus
    from knowledge.models import Chunk, KnowledgeBase
    from orgs.models import Organization
    from orgs.services import SYSTEM

    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=args.reuse)
    org, _ = Organization.objects.get_or_create(slug="bench-quality", defaults={"name": "Bench quality"})
    print(f"# knowledge quality bench — {platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}, {settings.KNOWLEDGE_EMBED_THREADS} embedding thread(s), "
          f"load {os.getloadavg()[0]:.1f}")
    rows = []
    kb_fields = {f.name for f in KnowledgeBase._meta.get_fields()}
    for model_name in args.models:
        backend, model, dims = MODELS[model_name]
        if (backend, model, dims) not in model_choices():
            print(f"{model_name}: not available in this build, skipped")
            continue
        for lang in args.langs:
            name = f"{model_name} {lang}"
            kb = KnowledgeBase.objects.for_org(org).filter(name=name).first()
            if kb is None:
                extra = {"language": LANGUAGE_NAMES[lang]} if "language" in kb_fields else {}
                kb = services.create_knowledge_base(org, SYSTEM, name=name, embedding_backend=backend,
                                                    embedding_model=model, embedding_dimensions=dims, **extra)
            if not Chunk.objects.filter(knowledge_base=kb, is_active=True).exists():
                services.backend_for(kb).embed_query("warm up")  # model load is not ingestion
                documents = load_corpus(lang)
                chunks, seconds = ingest_corpus(org, kb, documents)
                print(f"{name}: ingested {len(documents)} documents, {chunks} chunks in {seconds:.1f} s "
                      f"= {chunks / seconds:.1f} chunks/s", flush=True)
            services.backend_for(kb).embed_query("warm up")
            if args.tune:
                print(f"{name}: variants (hit@1/hit@5/MRR)", flush=True)
                if args.calibrate_adapter:
                    calibrate_adapter(kb, services.backend_for(kb), args.calibrate_adapter)
                if args.ranks:
                    vector_ranks(org, kb, load_questions(lang, "caller"), adapter_forms=args.adapter)
                tune(org, kb, load_questions(lang, "caller"), args.misses, args.variants, args.forms)
                continue
            for style in ("caller", "model"):
                questions = load_questions(lang, style)
                if not questions:
                    continue
                for mode, options in search_modes().items():
                    scores = evaluate(org, kb, questions, **options)
                    summary = scores.summary()
                    rows.append((model_name, lang, style, mode, summary))
                    print(f"{name:10} {style:6} {mode:14} n={summary['n']:3} hit@1 {summary['hit@1']:.2f} "
                          f"hit@5 {summary['hit@5']:.2f} MRR {summary['mrr']:.2f} "
                          f"p50 {summary['p50_ms']:.0f} ms p95 {summary['p95_ms']:.0f} ms", flush=True)
                    if args.misses:
                        for question, section, got in scores.misses:
                            print(f"    miss {section:7} {question[:70]!r} -> {got}")
    print()
    print("| model | language | queries | search | n | hit@1 | hit@5 | MRR | p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model_name, lang, style, mode, s in rows:
        print(f"| {MODELS[model_name][1]} | {lang} | {style} | {mode} | {s['n']} | {s['hit@1']:.2f} | "
              f"{s['hit@5']:.2f} | {s['mrr']:.2f} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} |")


if __name__ == "__main__":
    main()
