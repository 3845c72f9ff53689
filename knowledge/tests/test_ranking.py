"""The ranking rules of knowledge.search measured in knowledge/BENCH.md ("Raising Spanish and German"), each on a
tiny corpus built here: which query terms reach the full-text leg, the IDF-weighted text score, and the second
stage's one-chunk-per-section rule."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from knowledge.search import DEFAULT_TUNING, SearchHit, SearchTuning, _query_lexemes, rerank_hits, search_knowledge


def _hit(section: str, score: float, similarity: float, document: str = "d1") -> SearchHit:
    return SearchHit(knowledge_base_id="kb", knowledge_base="KB", document_id=document, document_title="Manual",
                     version_id="v", version=1, chunk_index=0, heading=section, text=section, start=0, end=1,
                     page=None, score=score, vector_similarity=similarity, vector_rank=1, text_rank=None)


def test_second_stage_lists_each_section_once_before_repeating_one() -> None:
    hits = [_hit("Upgrades", 0.033, 0.81), _hit("Upgrades", 0.032, 0.80), _hit("Upgrades", 0.031, 0.80),
            _hit("Pinning", 0.030, 0.78), _hit("Upgrades", 0.029, 0.79, document="d2")]
    plain = rerank_hits(hits, SearchTuning(section_dedup=False))
    assert [h.heading for h in plain[:3]] == ["Upgrades"] * 3
    ranked = rerank_hits(hits, SearchTuning(section_dedup=True))
    # The same heading in another document is another section; repeats keep their order after the firsts.
    assert [(h.heading, h.document_id) for h in ranked] == [
        ("Upgrades", "d1"), ("Pinning", "d1"), ("Upgrades", "d2"), ("Upgrades", "d1"), ("Upgrades", "d1")]
    assert DEFAULT_TUNING.section_dedup


def test_section_pooling_orders_sections_by_their_best_chunks_above_the_weakest() -> None:
    # "Pinning" has the best single chunk; "Upgrades" matches in two places a little below it.
    hits = [_hit("Pinning", 0.033, 0.80), _hit("Upgrades", 0.032, 0.79), _hit("Upgrades", 0.031, 0.79),
            _hit("Other", 0.020, 0.60)]
    assert [h.heading for h in rerank_hits(hits)][:2] == ["Pinning", "Upgrades"]  # default: best chunk only
    pooled = rerank_hits(hits, SearchTuning(section_pool=2, section_decay=0.5))
    assert [h.heading for h in pooled] == ["Upgrades", "Pinning", "Other", "Upgrades"]
    # A small weight for the second chunk keeps the single better chunk first.
    assert rerank_hits(hits, SearchTuning(section_pool=2, section_decay=0.05))[0].heading == "Pinning"
    assert DEFAULT_TUNING.section_pool == 1  # measured and left off (BENCH.md, "Fourth pass")


def test_scaled_cosine_lets_a_close_vector_match_pass_a_text_match() -> None:
    # "Details" is the nearest by cosine but found by the vector leg alone; "Install" also matched the text leg.
    hits = [_hit("Install", 0.032, 0.870), _hit("Details", 0.017, 0.894), _hit("Other", 0.016, 0.860)]
    assert [h.heading for h in rerank_hits(hits)][0] == "Install"  # raw cosines differ by 0.03: fusion decides
    scaled = rerank_hits(hits, SearchTuning(similarity_norm=True))
    assert [h.heading for h in scaled] == ["Details", "Install", "Other"]
    assert not DEFAULT_TUNING.similarity_norm  # measured and left off (BENCH.md, "Fourth pass")


BIG_SECTION = "\n\n".join(
    f"Upgrading step {n}: run apt upgrade to upgrade every package, and check the upgrade log after each upgrade "
    f"of the packages in group {n}." for n in range(1, 40))
UPGRADE_MANUAL = f"""# Package manual

## Upgrades
{BIG_SECTION}

## Holding a package back
To keep one package at its version while the rest upgrade, mark it with apt-mark hold.
"""


@pytest.mark.django_db
def test_a_big_section_does_not_fill_the_top_five(kb_a: Any, ingest: Any) -> None:
    ingest(kb_a, "manual.md", UPGRADE_MANUAL.encode())
    question = "how do I stop one package from being upgraded when I upgrade the others"
    plain = search_knowledge(kb_a.org, [kb_a.public_id], question, k=3,
                             tuning=SearchTuning(section_dedup=False))
    assert len({h.heading for h in plain}) < len(plain)  # the big section's chunks crowd the list
    hits = search_knowledge(kb_a.org, [kb_a.public_id], question, k=3)
    assert len({h.heading for h in hits[:2]}) == 2 and any(h.heading.endswith("Holding a package back")
                                                           for h in hits[:2]), [h.heading for h in hits]


@pytest.mark.django_db
def test_a_term_common_in_a_small_base_still_reaches_the_text_leg(kb_a: Any, ingest: Any) -> None:
    for n in range(3):
        ingest(kb_a, f"router{n}.txt", f"The router model {n} restarts at night.".encode())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
    # "router" is in every chunk of this three-chunk table: a share of 100 %, three rows. The posting list is short,
    # so the term stays; the old share rule (2 % of the table) dropped it.
    assert "router" in _query_lexemes("router restarts", ["english"])["english"]
    assert "router" not in _query_lexemes("router restarts", ["english"], SearchTuning(term_rule="share"))["english"]


@pytest.mark.django_db
def test_caller_filler_words_do_not_reach_the_text_leg() -> None:
    spanish = _query_lexemes("¿Cómo hago para limpiar la caché de paquetes?", ["spanish"])["spanish"]
    assert {"limpi", "cach", "paquet"} <= set(spanish) and not {"com", "hag"} & set(spanish), spanish
    german = _query_lexemes("Warum gibt es den Fehler, und wie bekomme ich das Paket?", ["german"])["german"]
    assert {"fehl", "paket"} <= set(german) and not {"warum", "gibt", "bekomm"} & set(german), german
    kept = _query_lexemes("¿Cómo hago para limpiar la caché?", ["spanish"], SearchTuning(caller_words=False))
    assert "com" in kept["spanish"]


KETTLE_MANUAL = """# Kettle manual

## Warranty terms
The warranty covers the kettle for two years. Keep the kettle receipt: a kettle warranty claim needs it, and the
warranty does not cover a kettle dropped on the floor.

## Filling
Fill the kettle to the mark. Never run the kettle empty.

## Cleaning
Wipe the kettle with a damp cloth.

## Cord
The kettle base has a cord store underneath the kettle.

## Descaling
Descaling every month keeps the warranty valid in hard-water areas.
"""


@pytest.mark.django_db
def test_idf_weighting_ranks_the_rarer_term_section_first(kb_a: Any, ingest: Any) -> None:
    ingest(kb_a, "kettle.md", KETTLE_MANUAL.encode())
    query = "kettle descaling warranty"

    def text_first(tuning: SearchTuning) -> str:
        hits = search_knowledge(kb_a.org, [kb_a.public_id], query, k=10, tuning=tuning)
        return next(h.heading for h in hits if h.text_rank == 1)

    # ts_rank_cd counts occurrences: "kettle" and "warranty" over and over win. With IDF, "descaling" (one chunk)
    # outweighs "kettle" (every chunk).
    assert text_first(SearchTuning(idf=False)).endswith("Warranty terms")
    assert text_first(SearchTuning(idf=True)).endswith("Descaling")
