"""Retrieval quality on a slice of the evaluation corpus (knowledge/evaluation), so a change to chunking, embedding,
the text leg or the reranker cannot lower it silently. The full sets and every configuration are measured by
bench/knowledge_quality.py (figures in knowledge/BENCH.md); the floors here sit a little below what the slice
measured, since a slice of a dozen questions moves in steps of ~8 %."""

from __future__ import annotations

from typing import Any

import pytest

from knowledge import services
from knowledge.evaluation.corpus import corpus_available, load_corpus, load_questions
from knowledge.evaluation.run import evaluate, ingest_corpus
from orgs.services import SYSTEM

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not corpus_available(), reason="the Debian Reference packages are not installed "
                                                      "(make browser installs debian-reference-en/-es/-de)"),
]

CHAPTER = 4  # authentication: 7 sections, big ones (PAM and NSS, security) beside one-paragraph ones


def _slice(lang: str) -> list[Any]:
    return [q for q in load_questions(lang) if q.section.startswith(f"{CHAPTER}.")]


def test_english_slice_with_the_default_model(org_a: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Debian Reference en")
    chunks, _ = ingest_corpus(org_a, kb, load_corpus("en", (CHAPTER,)))
    assert chunks > 20
    questions = _slice("en")
    assert len(questions) >= 12
    scores = evaluate(org_a, kb, questions)
    assert scores.hit_at(5) >= 0.9 and scores.mrr >= 0.75, (scores.summary(), scores.misses)
    # The second stage earns its place: without it the same questions rank no better.
    plain = evaluate(org_a, kb, questions, rerank=False)
    assert scores.mrr >= plain.mrr, (scores.summary(), plain.summary())


# The multilingual model embeds ~5x slower than MiniLM on this CPU: a smaller slice, still with distractors.
GERMAN_DOCUMENTS = frozenset({"4.1", "4.2", "4.3", "4.4", "5.3", "5.4", "5.5", "5.6"})


def test_german_slice_with_the_multilingual_model_and_german_stemming(org_a: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Debian-Referenz", language="german",
                                        embedding_model="multilingual-e5-small")
    ingest_corpus(org_a, kb, load_corpus("de", (4, 5), only=GERMAN_DOCUMENTS))
    questions = [q for q in load_questions("de") if q.document in GERMAN_DOCUMENTS]
    assert len(questions) >= 4
    scores = evaluate(org_a, kb, questions)
    assert scores.hit_at(5) >= 0.75 and scores.mrr >= 0.6, (scores.summary(), scores.misses)
