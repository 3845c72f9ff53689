"""Knowledge ingestion and search time reach the operational metrics
(voiceplatform/metrics.py): one observation per ingestion, labelled by how it ended,
and one per search, labelled by whether it found anything."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.registry import REGISTRY

from knowledge.models import IngestState
from knowledge.search import search_knowledge

pytestmark = pytest.mark.django_db


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0


def test_ingestion_and_search_are_timed(kb_a: Any, ingest: Any) -> None:
    ok, failed = _count("vp_knowledge_ingest_seconds", result="ok"), _count("vp_knowledge_ingest_seconds",
                                                                          result="failed")
    good = ingest(kb_a, "hours.txt", b"Our support line is open from nine to five on weekdays.")
    bad = ingest(kb_a, "bad.docx", b"not a zip")
    assert good.latest_version.state == IngestState.READY and bad.latest_version.state == IngestState.FAILED
    assert _count("vp_knowledge_ingest_seconds", result="ok") == ok + 1
    assert _count("vp_knowledge_ingest_seconds", result="failed") == failed + 1

    hits, empty = _count("vp_knowledge_search_seconds", outcome="hits"), _count("vp_knowledge_search_seconds",
                                                                               outcome="empty")
    assert search_knowledge(kb_a.org, [kb_a.public_id], "when is the support line open?", k=3)
    assert _count("vp_knowledge_search_seconds", outcome="hits") == hits + 1
    assert search_knowledge(kb_a.org, [], "anything") == []  # no bases: nothing searched, nothing timed
    assert _count("vp_knowledge_search_seconds", outcome="empty") == empty
