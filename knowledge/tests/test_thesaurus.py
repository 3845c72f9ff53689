"""Synonyms in the full-text leg (knowledge.thesaurus, SearchTuning.synonyms): a tiny thesaurus in MyThes format
written to tmp_path, and a German base where a caller's word the manual does not use finds the chunk that uses its
synonym."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from knowledge import decompound, services, thesaurus
from knowledge.search import SearchTuning, _query_terms, search_knowledge
from orgs.services import SYSTEM

ENTRIES = {
    "rechner": ["-|Computer|Rechner (ugs.)|Rechenknecht (ugs.)|elektrisches Gerät (Oberbegriff)",
                "-|Rechenmaschine|Taschenrechner"],
    "drucker": ["-|Printer (engl.)|Druckgerät"],
    "computer": ["-|Rechner|Rechenmaschine"],
}


def write_mythes(folder: Path, name: str, entries: dict[str, list[str]], encoding: str = "UTF-8") -> None:
    """`entries` as MyThes .idx/.dat files (byte offsets into the .dat, words sorted as the format has them)."""
    data = (encoding + "\n").encode(encoding)
    offsets = []
    for word in sorted(entries):
        offsets.append(f"{word}|{len(data)}")
        data += (f"{word}|{len(entries[word])}\n" + "".join(line + "\n" for line in entries[word])).encode(encoding)
    (folder / f"{name}.dat").write_bytes(data)
    (folder / f"{name}.idx").write_bytes((f"{encoding}\n{len(entries)}\n" + "\n".join(offsets) + "\n")
                                         .encode(encoding))


@pytest.fixture
def tiny_thesaurus(settings: Any, tmp_path: Path) -> Any:
    write_mythes(tmp_path, thesaurus.FILES["german"], ENTRIES)
    settings.KNOWLEDGE_THESAURUS_DIR = str(tmp_path)
    thesaurus.clear()
    yield tmp_path
    thesaurus.clear()


def test_synonyms_are_single_words_without_relations_or_annotations(tiny_thesaurus: Path) -> None:
    # The word itself, the hypernym (Oberbegriff) and the two-word entry are left out; "(ugs.)" is dropped.
    assert thesaurus.synonyms("Rechner", "german") == ["computer", "rechenknecht", "rechenmaschine",
                                                       "taschenrechner"]
    assert thesaurus.synonyms("Drucker", "german") == ["printer", "druckgerät"]
    assert thesaurus.synonyms("Kernel", "german") == []
    assert thesaurus.synonyms("Rechner", "spanish") == []  # no Spanish files in this folder


def test_absent_files_mean_no_synonyms(settings: Any, tmp_path: Path) -> None:
    settings.KNOWLEDGE_THESAURUS_DIR = str(tmp_path / "missing")
    thesaurus.clear()
    try:
        assert thesaurus.synonyms("Rechner", "german") == []
    finally:
        thesaurus.clear()


def test_a_latin1_thesaurus_reads_like_the_spanish_package(settings: Any, tmp_path: Path) -> None:
    write_mythes(tmp_path, thesaurus.FILES["spanish"], {"ordenador": ["-|computadora|máquina"]}, "ISO8859-1")
    settings.KNOWLEDGE_THESAURUS_DIR = str(tmp_path)
    thesaurus.clear()
    try:
        assert thesaurus.synonyms("ordenador", "spanish") == ["computadora", "máquina"]
    finally:
        thesaurus.clear()


MANUAL = """# Handbuch

## Netzwerk
Der Computer bekommt seine Adresse per DHCP vom Router.

## Drucker
Drucker werden über CUPS eingerichtet; die Warteschlange zeigt lpstat an. Ein Drucker ist keine Rechenmaschine.
"""


@pytest.mark.django_db
def test_a_callers_word_the_base_lacks_finds_the_chunk_with_its_synonym(tiny_thesaurus: Path, org_a: Any,
                                                                         ingest: Any) -> None:
    decompound.VOCABULARIES.clear()
    kb = services.create_knowledge_base(org_a, SYSTEM, name="Handbuch", language="german",
                                        embedding_model="all-MiniLM-L6-v2")
    ingest(kb, "handbuch.md", MANUAL.encode())
    query = "Rechner Adresse"

    def text_matched(tuning: SearchTuning) -> list[str]:
        hits = search_knowledge(kb.org, [kb.public_id], query, k=5, tuning=tuning)
        return [hit.heading.split(" > ")[-1] for hit in hits if hit.text_rank is not None]

    # "Rechner" is no word of the manual: with both terms needed, nothing matches by text without synonyms.
    assert text_matched(SearchTuning(coverage=1.0)) == []
    assert text_matched(SearchTuning(coverage=1.0, synonyms="unknown")) == ["Netzwerk"]
    terms, alternatives, _ = _query_terms(query, {"german": [kb]}, SearchTuning(synonyms="all"))
    # Only synonyms the base uses are alternatives ("rechenknecht", "taschenrechner" are not in its vocabulary), in
    # the thesaurus's order; synonym_limit keeps the first.
    rechner = next(t for t in terms["german"] if t.startswith("rechn"))
    assert [a[:8] for a in alternatives["german"][rechner]] == ["comput", "rechenma"]
    limited = _query_terms(query, {"german": [kb]}, SearchTuning(synonyms="all", synonym_limit=1))[1]
    assert limited["german"] == {rechner: ["comput"]}
    # "Drucker" is the manual's own word: with "unknown" it is not expanded, with "all" its synonyms are looked
    # up but none is in the base.
    assert _query_terms("Drucker", {"german": [kb]}, SearchTuning(synonyms="unknown"))[1] == {}
    assert _query_terms("Drucker", {"german": [kb]}, SearchTuning(synonyms="all"))[1] == {}
    # An inflected caller word is no headword; looked up by stem it finds the entry of "Rechner".
    inflected = "Rechners Adresse"
    assert _query_terms(inflected, {"german": [kb]}, SearchTuning(synonyms="unknown"))[1] == {}
    assert search_knowledge(kb.org, [kb.public_id], inflected, k=5,
                            tuning=SearchTuning(coverage=1.0, synonyms="unknown stem"))[0].text_rank == 1
