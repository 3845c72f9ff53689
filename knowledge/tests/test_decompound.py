"""German decompounding in the full-text leg (knowledge.decompound): the splitting rules on hand-made stems, and a
tiny German base built here where a caller's joined compound finds the manual's hyphenated or split form."""

from __future__ import annotations

from typing import Any

import pytest

from knowledge import decompound, services
from knowledge.search import SearchTuning, _query_terms, search_knowledge
from orgs.services import SYSTEM

STEMS = {"kernel": "kernel", "modul": "modul", "spiegel": "spiegel", "server": "serv", "rechner": "rechn",
         "name": "nam", "arbeit": "arbeit", "arbeits": "arbeit", "speicher": "speich", "paket": "paket",
         "datei": "datei", "version": "version", "sion": "sion", "ver": "ver"}


def test_a_compound_splits_only_into_parts_the_base_uses() -> None:
    vocabulary = frozenset({"kernel", "modul", "rechn", "nam", "arbeit", "speich", "paket", "datei"})
    assert decompound.split("Kernelmodul", STEMS, vocabulary, "german") == ["kernel", "modul"]
    assert decompound.split("rechnername", STEMS, vocabulary, "german") == ["rechn", "nam"]
    # The linking -s- of Arbeit-s-speicher is dropped from the first part.
    assert decompound.split("arbeitsspeicher", STEMS, vocabulary, "german") == ["arbeit", "speich"]
    assert decompound.split("paketdateikernel", STEMS, vocabulary, "german") == ["paket", "datei", "kernel"]
    # Parts the base does not use are no split at all, and English is never split.
    assert decompound.split("spiegelserver", STEMS, vocabulary, "german") is None
    assert decompound.split("kernelmodul", STEMS, vocabulary, "english") is None
    assert decompound.candidate_parts("kernelmodul", "english") == []
    # Short words and parts under MIN_PART letters are not tried.
    assert decompound.candidate_parts("modul", "german") == []
    assert all(len(part) >= decompound.MIN_PART for part in decompound.candidate_parts("spiegelserver", "german"))


def test_nearby_words_are_joined_either_way_round_and_without_the_genitive() -> None:
    assert decompound.joined_candidates("Spiegel", "Server", "german") == ["serverspiegel", "spiegelserver"]
    assert "rechnername" in decompound.joined_candidates("Name", "Rechners", "german")
    assert decompound.joined_candidates("Name", "des", "german") == []  # too short to be a part
    assert decompound.joined_candidates("spiegel", "server", "english") == []


def test_the_vocabulary_cache_is_bounded_and_keeps_one_version_per_base() -> None:
    cache = decompound.BaseVocabulary(bases=2)
    cache.put((1, "a"), frozenset({"x"}))
    cache.put((1, "b"), frozenset({"y"}))
    assert cache.get((1, "a")) is None and cache.get((1, "b")) == {"y"}
    cache.put((2, "a"), frozenset())
    cache.get((1, "b"))
    cache.put((3, "a"), frozenset())  # evicts base 2, the least recently used
    assert cache.get((2, "a")) is None and cache.get((1, "b")) is not None


MANUAL = """# Handbuch

## Module
Ein Kernel-Modul wird beim Systemstart geladen. Mit modprobe lädt man es von Hand nach.

## Hostname
Der Name des Rechners steht in der Datei /etc/hostname und wird beim Start gesetzt.

## Drucker
Drucker werden über CUPS eingerichtet; die Warteschlange zeigt lpstat an.
"""


@pytest.fixture
def kb(org_a: Any, ingest: Any) -> Any:
    """A German base holding MANUAL, with an empty vocabulary cache."""
    decompound.VOCABULARIES.clear()
    base = services.create_knowledge_base(org_a, SYSTEM, name="Handbuch", language="german",
                                          embedding_model="all-MiniLM-L6-v2")
    ingest(base, "handbuch.md", MANUAL.encode())
    return base


def _text_matched(kb: Any, query: str, tuning: SearchTuning) -> list[str]:
    hits = search_knowledge(kb.org, [kb.public_id], query, k=5, tuning=tuning)
    return [hit.heading for hit in hits if hit.text_rank is not None]


@pytest.mark.django_db
def test_a_joined_compound_finds_the_hyphenated_and_the_split_form(kb: Any) -> None:
    off = SearchTuning(decompound="off")
    # Without splitting, the joined words match no chunk's text.
    assert _text_matched(kb, "Kernelmodul", off) == []
    assert _text_matched(kb, "Rechnername ändern", off) == []
    assert [h.split(" > ")[-1] for h in _text_matched(kb, "Kernelmodul", SearchTuning())] == ["Module"]
    assert [h.split(" > ")[-1] for h in _text_matched(kb, "Rechnername ändern", SearchTuning())] == ["Hostname"]
    # The parts are an alternative to the whole word, which still counts as one term.
    terms, alternatives, _ = _query_terms("Kernelmodul", {"german": [kb]})
    assert alternatives["german"] == {terms["german"][0]: ["kernel", "modul"]}


JOINED_MANUAL = """# Handbuch

## Rechnername
Der Rechnername steht in /etc/hostname.

## Namen
Namen von Dateien dürfen Leerzeichen enthalten.
"""


@pytest.mark.django_db
def test_words_the_caller_splits_find_the_manuals_joined_compound(org_a: Any, ingest: Any) -> None:
    decompound.VOCABULARIES.clear()
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Rechner", language="german",
                                        embedding_model="all-MiniLM-L6-v2")
    ingest(kb, "handbuch.md", JOINED_MANUAL.encode())
    query = "Wo steht der Name meines Rechners"
    assert _query_terms(query, {"german": [kb]})[1] == {}  # off by default
    joining = SearchTuning(join_words=True)
    terms, alternatives, _ = _query_terms(query, {"german": [kb]}, joining)
    # The compound holds both words, so it stands in for either term.
    assert alternatives["german"] == {term: ["rechnernam"] for term in ("nam", "rechn")}
    assert set(terms["german"]) >= {"nam", "rechn"}
    assert [h.split(" > ")[-1] for h in _text_matched(kb, query, SearchTuning())] == []
    assert [h.split(" > ")[-1] for h in _text_matched(kb, query, joining)][0] == "Rechnername"


@pytest.mark.django_db
def test_the_vocabulary_follows_the_bases_content(kb: Any, ingest: Any) -> None:
    assert _query_terms("Spiegelserver", {"german": [kb]})[1] == {}  # "Spiegel" is no word of this base yet
    ingest(kb, "spiegel.md", "# Spiegel\n\nEin Spiegel-Server hält eine Kopie des Archivs bereit.\n".encode())
    assert _query_terms("Spiegelserver", {"german": [kb]})[1]["german"]
    assert _text_matched(kb, "Spiegelserver", SearchTuning())
