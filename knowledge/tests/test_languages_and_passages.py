"""Per-base language stemming, title and section context in chunks, and the spoken passages the agent tool returns
(issue 20: voice-shaped queries, passages trimmed to what can be read aloud, with their source)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from knowledge import services
from knowledge.chunking import context_text
from knowledge.models import Chunk
from knowledge.passages import SPOKEN_PASSAGE_CHARS, spoken_passage
from knowledge.search import run_search_tool, search_knowledge
from orgs.services import SYSTEM

MANUAL_ES = """# Manual de soporte

## Devoluciones
Las devoluciones se procesan en cinco días hábiles desde que el almacén recibe el paquete.

## Horario
Atendemos por teléfono de lunes a viernes, de nueve a seis.
"""


@pytest.mark.django_db
def test_full_text_leg_stems_with_the_base_language_and_restems_on_change(org_a: Any, ingest: Any) -> None:
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Soporte", language="spanish",
                                        embedding_model="multilingual-e5-small")
    ingest(kb, "manual.md", MANUAL_ES.encode())
    assert set(Chunk.objects.filter(knowledge_base=kb).values_list("language", flat=True)) == {"spanish"}
    # "procesado" and "procesan" share the Spanish stem "proces"; English stemming keeps them apart.
    hits = search_knowledge(org_a, [kb.public_id], "devolución procesado", k=2)
    assert hits[0].heading.endswith("Devoluciones") and hits[0].text_rank == 1

    services.update_knowledge_base(kb, SYSTEM, language="english")
    assert set(Chunk.objects.filter(knowledge_base=kb).values_list("language", flat=True)) == {"english"}
    hits = search_knowledge(org_a, [kb.public_id], "devolución procesado", k=2)
    assert all(hit.text_rank is None for hit in hits)  # the vector leg still answers

    with pytest.raises(ValidationError) as refused:
        services.update_knowledge_base(kb, SYSTEM, language="klingon")
    assert "language" in refused.value.message_dict


@pytest.mark.django_db
def test_chunks_carry_the_document_title_into_the_index(kb_a: Any, ingest: Any) -> None:
    # No headings at all: the title is the only thing that says what the text is about.
    ingest(kb_a, "note.txt", b"Money goes back to the original card within five days.",
           title="Refund policy for kettles")
    chunk = Chunk.objects.get(knowledge_base=kb_a)
    assert chunk.title == "Refund policy for kettles"
    hits = search_knowledge(kb_a.org, [kb_a.public_id], "kettle refund policy", k=1)
    assert hits and hits[0].text_rank == 1  # matched through the title, which the text lacks


def test_embedded_text_has_title_and_heading_once() -> None:
    assert context_text("Returns policy", "Refunds", "Within 30 days.") == "Returns policy\nRefunds\nWithin 30 days."
    # A heading path that already starts with the title does not repeat it.
    assert context_text("2.1. Basics", "2.1. Basics > 2.1.3. Upgrades", "Text.") == "2.1. Basics > 2.1.3. Upgrades\nText."
    assert context_text("", "", "Text.") == "Text."


def test_spoken_passage_keeps_the_sentences_that_answer() -> None:
    filler = " ".join(f"Paragraph sentence number {i} talks about something unrelated to the topic." for i in range(12))
    text = (filler + " The refund reaches your card five days after the parcel arrives. "
            + filler + "\n|---|---|\n| a | b |")
    passage = spoken_passage(text, "how long does the refund take to reach my card", SPOKEN_PASSAGE_CHARS)
    assert "The refund reaches your card five days after the parcel arrives." in passage
    assert len(passage) <= SPOKEN_PASSAGE_CHARS
    assert "|---|" not in passage and "\n" not in passage
    assert passage.endswith(".")  # whole sentences only

    assert spoken_passage("Short answer. Nothing to cut.", "anything") == "Short answer. Nothing to cut."
    one_long_sentence = "word " * 300
    cut = spoken_passage(one_long_sentence, "word", 100)
    assert cut.endswith("…") and len(cut) <= 100


HANDBOOK = """# Acme support handbook

## Refunds
Customers who return an item get their money back on the original payment card. Refunds are processed within five business days after the warehouse receives the parcel. """ + " ".join(
    f"Note {i}: refunds for gift cards, vouchers and marketplace orders follow the seller's own rules." for i in range(8)) + """

## Opening hours
The phone line is staffed Monday to Friday from 8am to 6pm. On Saturdays we answer from 10am to 2pm.
"""


@pytest.mark.django_db(transaction=True)  # the tool searches on another thread's connection
@pytest.mark.parametrize("query,section", [
    ("refund processing time returned item", "Refunds"),  # keyword-ish, as a model writes a tool call
    ("caller asks if they can phone on saturday", "Opening hours"),  # the caller's words, reported
    ("opening hours weekend", "Opening hours"),
])
def test_tool_answers_model_written_queries_with_speakable_passages(kb_a: Any, ingest: Any, query: str,
                                                                     section: str) -> None:
    ingest(kb_a, "handbook.md", HANDBOOK.encode())
    result = asyncio.run(run_search_tool(kb_a.org, [kb_a.public_id], {"query": query, "top_k": 2}))
    first = result["results"][0]
    assert first["section"].endswith(section) and first["source"] == "handbook.md"
    assert all(len(r["text"]) <= SPOKEN_PASSAGE_CHARS for r in result["results"])
    if section == "Refunds":
        assert "within five business days" in first["text"]  # the answering sentence survives the trim


@pytest.mark.django_db
def test_language_and_multilingual_model_through_api_and_dashboard(api: Any, login: Any, editor_a: Any,
                                                                   org_a: Any) -> None:
    from knowledge.models import KnowledgeBase

    created = api(editor_a).post("/api/v1/knowledge-bases/", {
        "name": "Soporte", "language": "spanish", "embedding_model": "multilingual-e5-small"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["language"] == "spanish" and created.json()["embedding_model"] == "multilingual-e5-small"
    bad = api(editor_a).patch(f"/api/v1/knowledge-bases/{created.json()['id']}/", {"language": "klingon"},
                              format="json")
    assert bad.status_code == 400

    client = login(editor_a)
    response = client.post("/knowledge/", {"name": "Hilfe", "model": "local/multilingual-e5-small/384",
                                           "language": "german"})
    assert response.status_code == 302
    kb = KnowledgeBase.objects.for_org(org_a).get(name="Hilfe")
    assert (kb.language, kb.embedding_model) == ("german", "multilingual-e5-small")


@pytest.mark.django_db
def test_default_model_follows_the_language(org_a: Any) -> None:
    english = services.create_knowledge_base(org_a, SYSTEM, name="FAQ")
    german = services.create_knowledge_base(org_a, SYSTEM, name="FAQ de", language="german")
    assert english.embedding_model == "all-MiniLM-L6-v2"
    assert german.embedding_model == "multilingual-e5-small"
    chosen = services.create_knowledge_base(org_a, SYSTEM, name="FAQ es", language="spanish",
                                            embedding_model="all-MiniLM-L6-v2")
    assert chosen.embedding_model == "all-MiniLM-L6-v2"  # an explicit choice is kept
    with pytest.raises(ValidationError) as refused:
        services.create_knowledge_base(org_a, SYSTEM, name="Remote", embedding_backend="openai")
    assert "embedding_model" in refused.value.message_dict
