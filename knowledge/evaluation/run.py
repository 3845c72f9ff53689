"""Ingest the evaluation corpus and score search against the question sets.

Shared by `bench/knowledge_quality.py` (every configuration, the README table) and
`knowledge/tests/test_retrieval_quality.py` (a small slice, so quality cannot
regress silently). Both go through the production code: `ingest_version` (HTML
extraction, chunking, embedding, insert) and `search_knowledge`.

Scores, per question: the rank of the first result that answers it (see
`corpus.answers`); hit@1 and hit@5 are the shares of questions answered at rank 1
and within the top 5, MRR the mean of 1/rank over the top 10 (0 when not found).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from knowledge.evaluation.corpus import CorpusDocument, Question, answers


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[tuple[str, str, list[str]]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ranks)

    def hit_at(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= k) / max(1, self.n)

    @property
    def mrr(self) -> float:
        return sum(1.0 / r for r in self.ranks if r is not None) / max(1, self.n)

    def latency(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    def summary(self) -> dict[str, Any]:
        return {"n": self.n, "hit@1": round(self.hit_at(1), 3), "hit@5": round(self.hit_at(5), 3),
                "mrr": round(self.mrr, 3), "p50_ms": round(self.latency(0.5), 1),
                "p95_ms": round(self.latency(0.95), 1),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 1) if self.latencies_ms else 0.0}


def ingest_corpus(org: Any, kb: Any, documents: Sequence[CorpusDocument]) -> tuple[int, float]:
    """Add each corpus document as an uploaded HTML file and ingest it in this process (what add_document and the
    worker do, minus the broker). Returns (chunks, seconds)."""
    from django.core.files.base import ContentFile

    from knowledge import services
    from knowledge.models import Chunk, Document, DocumentVersion, SourceType

    started = time.perf_counter()
    for doc in documents:
        document = Document.objects.create(org=org, knowledge_base=kb, title=doc.title, source_type=SourceType.UPLOAD)
        version = DocumentVersion(org=org, document=document, number=1, filename=f"{doc.section}.html",
                                  content_type="text/html", file_type="html", size_bytes=len(doc.html))
        version.file.save(f"{doc.section}.html", ContentFile(doc.html), save=False)
        version.save()
        Document.objects.filter(pk=document.pk).update(latest_version=version)
        services.ingest_version(str(version.public_id), org)
    elapsed = time.perf_counter() - started
    return Chunk.objects.filter(knowledge_base=kb, is_active=True).count(), elapsed


def evaluate(org: Any, kb: Any, questions: Sequence[Question], *,
             search: Callable[..., Sequence[Any]] | None = None, k: int = 10, **options: Any) -> Scores:
    """Ask every question through `search` (default `search_knowledge`) and score the ranks."""
    from knowledge.search import search_knowledge

    run = search or search_knowledge
    scores = Scores()
    for question in questions:
        started = time.perf_counter()
        hits = run(org, [kb.public_id], question.question, k, **options)
        scores.latencies_ms.append((time.perf_counter() - started) * 1000)
        rank = next((i + 1 for i, hit in enumerate(hits) if answers(question, hit.document_title, hit.heading)),
                    None)
        scores.ranks.append(rank)
        if rank is None or rank > 1:
            scores.misses.append((question.question, question.section,
                                  [f"{hit.document_title.split(' ')[0]}|{hit.heading.split(' > ')[-1][:40]}"
                                   for hit in hits[:3]]))
    return scores
