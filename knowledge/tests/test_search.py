"""Hybrid search quality with the local model, scoping, and the agent tool shape."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from knowledge import services
from knowledge.passages import format_for_agent
from knowledge.search import asearch_knowledge, search_knowledge
from orgs.services import SYSTEM

pytestmark = pytest.mark.django_db

HANDBOOK = """# Acme support handbook

## Refunds
Customers who return an item get their money back on the original payment card. Refunds are processed within five business days after the warehouse receives the parcel.

## Shipping
Orders placed before 2pm leave the warehouse the same day. Standard delivery inside the UK takes two to three days; international parcels take up to ten days.

## Opening hours
The phone line is staffed Monday to Friday from 8am to 6pm. On Saturdays we answer from 10am to 2pm. We are closed on Sundays and bank holidays.

## Passwords
To reset a forgotten password, use the "Forgot password" link on the sign-in page. A reset e-mail arrives within a few minutes and the link expires after one hour.

## Warranty
Every appliance has a two-year manufacturer warranty covering defects. Damage from accidents or misuse is not covered.

## Loyalty points
Members earn one point per pound spent. One hundred points can be exchanged for a five pound voucher at checkout.
"""

PARAPHRASES = [
    ("How long until I see the money for my returned order?", "Refunds"),
    ("When will my package arrive if I live abroad?", "Shipping"),
    ("Can I call you on the weekend?", "Opening hours"),
    ("I can't remember how to log in to my account", "Passwords"),
    ("My toaster broke after a year, is it still guaranteed?", "Warranty"),
    ("What are reward points worth?", "Loyalty points"),
]


@pytest.fixture
def handbook(kb_a: Any, ingest: Any) -> Any:
    return ingest(kb_a, "handbook.md", HANDBOOK.encode())


@pytest.mark.parametrize("question,section", PARAPHRASES)
def test_paraphrased_questions_find_the_right_section(kb_a: Any, handbook: Any, question: str, section: str) -> None:
    hits = search_knowledge(kb_a.org, [kb_a.public_id], question, k=3)
    assert hits[0].heading.endswith(section), [(h.heading, h.score) for h in hits]
    top = hits[0]
    assert top.document_id == str(handbook.public_id) and top.version == 1
    assert handbook.current_version.extracted_text[top.start:top.end] == top.text
    assert top.vector_similarity is not None and top.vector_rank is not None
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_exact_terms_are_found_by_full_text_too(kb_a: Any, handbook: Any) -> None:
    hits = search_knowledge(kb_a.org, [kb_a.public_id], "bank holidays", k=3)
    assert hits[0].heading.endswith("Opening hours") and hits[0].text_rank == 1


def test_other_orgs_chunks_never_come_back(org_a: Any, org_b: Any, ingest: Any) -> None:
    kb_a = services.create_knowledge_base(org_a, SYSTEM, name="A")
    kb_b = services.create_knowledge_base(org_b, SYSTEM, name="B")
    ingest(kb_a, "a.txt", b"The secret launch code of org A is pineapple.")
    ingest(kb_b, "b.txt", b"The secret launch code of org B is banana.")
    # B asks with A's knowledge base id (guessed or leaked): nothing.
    assert search_knowledge(org_b, [kb_a.public_id], "secret launch code", k=5) == []
    # Mixed ids: only B's own base is searched.
    hits = search_knowledge(org_b, [kb_a.public_id, str(kb_b.public_id), "not-a-uuid"], "secret launch code", k=5)
    assert [h.knowledge_base_id for h in hits] == [str(kb_b.public_id)]
    assert "banana" in hits[0].text


def test_search_is_filtered_to_the_bases_asked_for(org_a: Any, ingest: Any) -> None:
    first = services.create_knowledge_base(org_a, SYSTEM, name="First")
    second = services.create_knowledge_base(org_a, SYSTEM, name="Second")
    ingest(first, "1.txt", b"Bicycles can be parked in the courtyard.")
    ingest(second, "2.txt", b"Bicycles are not allowed inside the office.")
    only_first = search_knowledge(org_a, [first.public_id], "where do bicycles go", k=5)
    assert {h.knowledge_base for h in only_first} == {"First"}
    both = search_knowledge(org_a, [first.public_id, second.public_id], "where do bicycles go", k=5)
    assert {h.knowledge_base for h in both} == {"First", "Second"}


def test_empty_query_and_no_bases(kb_a: Any, handbook: Any) -> None:
    assert search_knowledge(kb_a.org, [kb_a.public_id], "   ", k=3) == []
    assert search_knowledge(kb_a.org, [], "refunds", k=3) == []
    # Only stop words: the text leg has no query, the vector leg still answers.
    assert search_knowledge(kb_a.org, [kb_a.public_id], "the of and", k=2)


@pytest.mark.django_db(transaction=True)  # the search runs on another thread's connection
def test_async_entry_point_and_agent_format(kb_a: Any, handbook: Any) -> None:
    hits = asyncio.run(asearch_knowledge(kb_a.org, [kb_a.public_id], "when are you open on saturday", 2))
    assert hits and hits[0].heading.endswith("Opening hours")
    result = format_for_agent(hits, max_chars=120)
    assert result["results"][0]["source"] == "handbook.md"
    assert sum(len(r["text"]) for r in result["results"]) <= 120
    assert format_for_agent([]) == {"results": [], "note": "No matching passages found."}


@pytest.mark.django_db(transaction=True)
def test_tool_entry_point_validates_arguments(kb_a: Any, handbook: Any) -> None:
    from knowledge.search import run_search_tool

    ok = asyncio.run(run_search_tool(kb_a.org, [str(kb_a.public_id)], {"query": "reset my password", "top_k": 1}))
    assert len(ok["results"]) == 1 and ok["results"][0]["section"].endswith("Passwords")
    assert asyncio.run(run_search_tool(kb_a.org, [kb_a.public_id], {"query": ""})) == {
        "error": "query must be a non-empty string"}
    assert asyncio.run(run_search_tool(kb_a.org, [kb_a.public_id], {"query": "x", "top_k": 99})) == {
        "error": "top_k must be an integer from 1 to 10"}
