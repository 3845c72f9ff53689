"""Hybrid search: pgvector HNSW similarity + Postgres full text, fused by reciprocal rank.

`search_knowledge(org, kb_ids, query, k)` is the one entry point (API, dashboard
playground, and the agent's tool during calls). It is scoped twice: the
knowledge bases are looked up with `for_org(org)`, and every SQL leg filters on
`org_id` too, so a foreign or guessed id can never surface another org's chunk.

Knowledge bases that use different embedding models are searched with one vector
query per model (vectors are only comparable within one model) and all lists are
fused together. Chunks whose vectors are from an older model (re-embedding in
progress) still match through full text. The full-text leg stems the query with each
base's language (one tsquery per language present), as its chunks were stemmed.

Second stage (`rerank`, on by default): the fused top `RERANK_CANDIDATES` are
re-scored with each one's exact cosine similarity to the query (computed in the same
statement for every candidate, also those only the text leg found) added to its fused
score. Rank fusion alone throws the similarity values away: a text-leg match ranked
first and a vector-leg match ranked first count the same, however close the vector
match is. No cross-encoder ships inside a package on the registries this project can
use (knowledge/BENCH.md, "Model survey" and the later surveys), so this is the cheaper signal; it costs a
few rows' distance computations. A heading/title term-match signal was measured too
and left out: it helped English and hurt German (BENCH.md, "Second stage"). The second
stage then lists each section (document + heading) once before any section's second
chunk: a big catch-all section's chunks otherwise fill the top five (Spanish hit@5
0.75 → 0.84 on its own).

Which query words reach the full-text leg: not those in more than MAX_TERM_ROWS chunks
(long posting lists are what is slow; a row count rather than a share, or small bases
lose their telling words), and not the language's CALLER_WORDS (question words, verbs of
asking), which would otherwise count toward "half the query's terms" and make real
questions match nothing. In German and Dutch, a joined query word also matches any of its parts
found in the base's own vocabulary (knowledge.decompound; "Kernelmodul" finds "Kernel-Modul"), stemmed in the
same lexeme round trip. Knobs and measured alternatives (IDF weighting, fusion weights, OR semantics,
decompounding, section pooling, joining split compounds, anisotropy correction, pseudo-relevance feedback,
section centroids, thesaurus synonyms): `SearchTuning`, BENCH.md "Second pass" to "Sixth pass".
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Sequence
from uuid import UUID

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection

from knowledge import anisotropy, decompound, feedback, thesaurus
from knowledge.embeddings import EmbeddingBackend, ModelSpec
from knowledge.models import KnowledgeBase
from knowledge.passages import _WORD, format_for_agent
from orgs.models import Organization
from voiceplatform.metrics import KNOWLEDGE_SEARCH_SECONDS

logger = logging.getLogger(__name__)

RRF_K = 60  # the constant from Cormack et al.; damps the weight of top ranks
HNSW_EF_SEARCH = 100  # set per connection, see knowledge.apps
MAX_K = 50


@dataclass(frozen=True)
class SearchTuning:
    """The knobs of ranking, one place (bench/knowledge_quality.py measures alternatives through it).

    `text_weight`: weight of the full-text leg's reciprocal rank against the vector leg's (1.0).
    `idf`: rank the full-text leg by IDF-weighted query-term matches (document frequencies counted in the searched
    bases, capped at `df_cap`) instead of ts_rank_cd, which weighs every term alike. `heading_boost`: in that
    score, the extra weight of a term found in the chunk's title or section heading.
    `candidates` / `similarity_weight`: the second stage (module docstring). `section_dedup`: in the second
    stage, a further chunk of a section already listed goes after every other section's best chunk.
    `section_pool` / `section_decay` / `section_floor`: sections are ordered by their best `section_pool` chunks'
    combined scores (the i-th weighted `section_decay ** i`, measured above the weakest candidate's score), so a
    section matching in several places can pass one lucky chunk; 1 (the default) orders by the best chunk alone.
    `similarity_norm`: the cosine is min-max scaled over the candidates before it is weighted.
    `join_words` (with decompound "or"): two query words one or two apart also match their joined compound when the
    base uses it ("Name meines Rechners" finds "Rechnername"; knowledge.decompound.joined_candidates). All three
    measured and left off (BENCH.md, "Fourth pass").
    `center` / `whiten`: the second stage's cosine is taken between query and chunk vectors minus the searched
    bases' mean chunk vector, and with `whiten` > 0 projected on their top `whiten` whitened principal components
    (`whiten_shrink`: eigenvalues raised by that share of their mean, a regularised whitening)
    (knowledge.anisotropy; BENCH.md, "Fifth pass: anisotropy correction").
    `feedback_beta` / `feedback_top` / `feedback_gamma`: pseudo-relevance feedback (knowledge.feedback): the query
    vector moves towards the first pass's best candidates and every candidate's cosine is taken again.
    `section_centroid`: a candidate's cosine becomes (1 - share) * its own + share * that of its section's centroid
    (the mean of the section's chunk vectors, in SQL). Both measured and left off (BENCH.md, "Fifth pass").
    `synonyms` (with decompound "or"): a query word also matches its single-word thesaurus synonyms
    (knowledge.thesaurus) that the searched bases' vocabulary holds, as alternatives like compound parts; "unknown"
    only for words the vocabulary lacks; `synonym_limit`: at most that many per word (BENCH.md, "Sixth pass")."""

    rrf_k: int = RRF_K
    text_weight: float = 1.0
    coverage: float = 0.5
    idf: bool = False
    heading_boost: float = 0.0
    df_cap: int = 5000
    candidates: int = 20
    similarity_weight: float = 1.0
    section_dedup: bool = True
    term_rule: str = "rows"  # "rows": drop terms in > MAX_TERM_ROWS chunks; "share": in > MAX_TERM_FREQUENCY of them
    caller_words: bool = True
    text_share: bool = False  # with idf: the text leg's reciprocal rank is scaled by the query idf share matched
    decompound: str = "or"  # compound query words (de, nl) also match their parts: "or" any of them, "and" all; "off"
    split_known: bool = True  # also split a compound the base itself uses as one word
    similarity_norm: bool = False  # second stage: cosine min-max scaled over the candidates before weighting
    join_words: bool = False  # with decompound "or": two nearby query words also match their joined compound
    section_pool: int = 1  # second stage: a section scores its best chunk + decayed next ones, up to this many
    section_decay: float = 0.5  # weight of a section's i-th best chunk: section_decay ** i
    section_floor: bool = True  # pool scores above the weakest candidate's (else raw scores)
    center: bool = False  # second stage: cosine of the vectors centred on the searched bases' mean chunk vector
    whiten: int = 0  # second stage: also whitened, keeping this many principal components (implies centring)
    whiten_shrink: float = 0.0  # with whiten: eigenvalues + this times their mean before the inverse square root
    feedback_beta: float = 0.0  # second stage: Rocchio weight of the top candidates' mean vector (0 = off)
    feedback_top: int = 3  # how many of the first pass's best candidates make that mean
    feedback_gamma: float = 0.0  # Rocchio weight of the lower half of the candidates' mean, subtracted
    section_centroid: float = 0.0  # share of the cosine to the chunk's section centroid in the second stage
    synonyms: str = "off"  # with decompound "or": query words also match thesaurus synonyms the base uses; "all",
    # "unknown" (only words the base's vocabulary lacks), "all stem" / "unknown stem" (looked up by stem) or "off"
    synonym_limit: int = 0  # with synonyms: at most this many per query word, in the thesaurus's order (0: no limit)


DEFAULT_TUNING = SearchTuning()
RERANK_CANDIDATES = DEFAULT_TUNING.candidates


@dataclass(frozen=True)
class SearchHit:
    knowledge_base_id: str
    knowledge_base: str
    document_id: str
    document_title: str
    version_id: str
    version: int
    chunk_index: int
    heading: str
    text: str
    start: int
    end: int
    page: int | None
    score: float  # fused reciprocal-rank score
    vector_similarity: float | None  # cosine similarity, None if only full text matched
    vector_rank: int | None
    text_rank: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _resolve_bases(org: Organization, kb_ids: Iterable[Any]) -> list[KnowledgeBase]:
    ids: list[UUID] = []
    pks: list[int] = []
    for item in kb_ids:
        if isinstance(item, KnowledgeBase):
            pks.append(item.pk)
            continue
        try:
            ids.append(item if isinstance(item, UUID) else UUID(str(item)))
        except ValueError:
            continue  # a malformed id matches nothing, like another org's id
    from django.db.models import Q

    return list(KnowledgeBase.objects.for_org(org).filter(Q(public_id__in=ids) | Q(pk__in=pks))
                .select_related("org"))


def _vector_cte(name: str, dims: int) -> str:
    """Nearest chunks of one model group. `dims` comes from a closed set and is inlined
    because the partial HNSW index is matched on the literal expression."""
    dims = int(dims)
    return (
        f"{name} AS MATERIALIZED ("
        f" SELECT id, (embedding::vector({dims})) <=> %({name}_vec)s::vector({dims}) AS distance"
        f" FROM knowledge_chunk"
        f" WHERE embedding_dims = {dims} AND org_id = %(org)s AND knowledge_base_id = ANY(%({name}_kbs)s)"
        f" AND is_active AND embedding_model = %({name}_model)s"
        f" ORDER BY distance LIMIT %(candidates)s)"
    )


def _vector_literal(vector: Sequence[float] | Any) -> str:
    return "[" + ",".join(f"{float(v):.7g}" for v in vector) + "]"


def _vector_leg(org: Organization, spec: ModelSpec, kb_pks: list[int], query_vector: Sequence[float],
                limit: int) -> list[tuple[int, float]]:
    """The vector leg alone, nearest first (the benchmark's recall measurement uses it)."""
    sql = f"WITH {_vector_cte('v0', spec.dimensions)} SELECT id, distance FROM v0 ORDER BY distance"
    with connection.cursor() as cursor:
        cursor.execute(sql, {"v0_vec": _vector_literal(query_vector), "org": org.pk, "v0_kbs": kb_pks,
                             "v0_model": spec.key, "candidates": limit})
        return [(row[0], float(row[1])) for row in cursor.fetchall()]


MIN_TERM_COVERAGE = 0.5
MAX_QUERY_TERMS = 8  # C(8, 4) = 70 conjunctions at most


def coverage_tsquery(lexemes: Sequence[str], coverage: float = MIN_TERM_COVERAGE,
                     alternatives: dict[str, list[str]] | None = None, *, any_part: bool = False) -> str | None:
    """A tsquery text that matches chunks containing at least `coverage` of the terms:
    an OR of every AND-combination of ceil(n * coverage) terms.

    Why: a spoken question has many words a relevant passage lacks, so all-terms
    (AND) matching finds little; any-term (OR) matching lets one incidental shared
    word ("arrive") put an unrelated passage at text rank 1, where rank fusion would
    lift it over the semantic best match — and on a 100k-chunk base an OR of common
    words matches thousands of rows that all have to be fetched and ranked (measured:
    ~100 ms). Expressed as a tsquery, the GIN index itself applies the rule.
    Long questions keep their longest terms (longer stems are rarer, more telling).
    `alternatives` (term → its compound parts, knowledge.decompound): the term is satisfied by the whole word or
    by all its parts (`any_part`: by any of them), so a joined word counts once either way.
    """
    import itertools
    import math

    unique = sorted(set(lexemes), key=lambda term: (-len(term), term))[:MAX_QUERY_TERMS]
    if not unique:
        return None
    need = max(1, math.ceil(len(unique) * coverage))

    def quote(term: str) -> str:
        return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"

    def operand(term: str) -> str:
        parts = (alternatives or {}).get(term)
        if not parts:
            return quote(term)
        joined = (" | " if any_part else " & ").join(quote(part) for part in parts)
        return f"({quote(term)} | {joined})" if any_part else f"({quote(term)} | ({joined}))"

    quoted = [operand(term) for term in unique]
    return " | ".join("(" + " & ".join(combo) + ")" for combo in itertools.combinations(quoted, need))


def _text_cte(languages: int, tuning: SearchTuning = DEFAULT_TUNING) -> str:
    """The full-text leg: one ranked subquery per language (each with that language's tsquery), merged.

    With `tuning.idf` each language also gets a `terms{i}` CTE: the query's lexemes with their inverse document
    frequency in the searched bases (BM25's idf; counts stop at `df_cap`, so a term in thousands of chunks costs a
    bounded scan and weighs ~0), and a matched chunk scores the idf sum of the terms it holds (plus
    `heading_boost` times the idf of those in its title or heading); ts_rank_cd only breaks ties."""
    ctes: list[str] = []
    legs: list[str] = []
    for i in range(languages):
        where = (f"c.org_id = %(org)s AND c.knowledge_base_id = ANY(%(tkbs{i})s) AND c.is_active")
        rank_cd = f"ts_rank_cd(c.search_vector, %(tsq{i})s::tsquery, 32)"
        if tuning.idf:
            ctes.append(
                f"terms{i} AS MATERIALIZED (SELECT t.lex, ln(1 + (n.n - least(d.df, n.n) + 0.5) / (d.df + 0.5)) AS idf"
                f" FROM unnest(%(terms{i})s::text[]) AS t(lex),"
                f" (SELECT count(*) AS n FROM (SELECT 1 FROM knowledge_chunk c WHERE {where}"
                f"  LIMIT %(df_cap)s) s) n,"
                f" LATERAL (SELECT count(*) AS df FROM (SELECT 1 FROM knowledge_chunk c WHERE {where}"
                f"  AND c.search_vector @@ quote_literal(t.lex)::tsquery LIMIT %(df_cap)s) s) d)")
            matched = (f"(SELECT coalesce(sum(t.idf * ((c.search_vector @@ quote_literal(t.lex)::tsquery)::int"
                       f" + %(heading_boost)s * (c.search_vector @@ (quote_literal(t.lex) || ':A')::tsquery)::int)),"
                       f" 0) FROM terms{i} t)")
            score = f"{matched} + 0.001 * {rank_cd}"
            share = (f"{matched} / greatest((SELECT sum(idf) FROM terms{i}), 1e-9)" if tuning.text_share
                     else "1.0")
        else:
            score, share = rank_cd, "1.0"
        legs.append(
            f"(SELECT c.id, {score} AS text_score, {share} AS share"
            f" FROM knowledge_chunk c"
            f" WHERE {where} AND c.search_vector @@ %(tsq{i})s::tsquery"
            f" ORDER BY text_score DESC, c.id LIMIT %(candidates)s)")
    return "".join(cte + ", " for cte in ctes) + (
        "text_ranked AS ("
        " SELECT id, row_number() OVER (ORDER BY text_score DESC, id) AS rank, least(share, 1.0) AS share FROM ("
        + " UNION ALL ".join(legs) + ") matched)")


_NO_TEXT_CTE = ("text_ranked AS (SELECT NULL::bigint AS id, NULL::bigint AS rank, NULL::numeric AS share"
                " WHERE false)")


# Terms in more than this share of all chunks are left to the vector leg: their GIN
# posting lists are long (on the 100k-chunk bench an OR over such words took ~300 ms),
# and a word on every other page tells the ranking little anyway.
MAX_TERM_FREQUENCY = 0.02
# The same limit as a number of rows (2 % of the 100k-chunk bench table): what costs time is the length of a posting
# list, not its share. On a table of a few hundred chunks a share of 2 % is a handful of rows, and the share rule
# dropped nearly every telling word of a question ("paquet", "actualiz") while keeping its filler.
MAX_TERM_ROWS = 2000

# Words callers wrap their question in, per text-search language, beyond Postgres's stop words: question words
# with their accents (the Spanish stop list has "como", not "cómo") and the verbs of asking ("how do I", "I want").
# They match any page, so in the coverage rule ("at least half the terms") they crowd out the words that matter.
CALLER_WORDS = {
    "english": "want need way please tell know get",
    "spanish": ("cómo qué cuál cuáles dónde cuándo quién porqué hago hace hacer hice puedo puede pueden podría "
                "debo debería quiero necesito tengo hay veo pongo sé saber manera forma exactamente algo alguna "
                "alguien favor"),
    "german": ("warum wieso weshalb wozu gibt geht mache machen tun bekomme bekommen brauche braucht möchte will "
               "genau bitte irgendwo jemand etwas eigentlich einfach überhaupt davon dafür los raus komme "
               "sehe sehen heraus"),
    "french": "comment pourquoi où quel quelle quels quelles faire fais peux veux dois faut",
    "italian": "come perché dove quale quali fare faccio posso voglio devo",
    "portuguese": "como porquê onde qual quais fazer faço posso quero devo",
    "dutch": "hoe waarom waar welke doen kan wil moet",
}


def _query_lexemes(query: str, languages: Sequence[str],
                   tuning: SearchTuning | None = None) -> dict[str, list[str]]:
    """Per language: the query's selective terms (`_query_terms` without bases, so without compound parts)."""
    return _query_terms(query, {language: [] for language in languages}, tuning)[0]


def _query_terms(query: str, by_language: dict[str, list[KnowledgeBase]], tuning: SearchTuning | None = None,
                 ) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]], dict[int, str]]:
    """Per language: the query's selective terms, stemmed as the chunks' tsvector of that
    language stores them, minus terms that ANALYZE found in too many chunks
    (pg_stats.most_common_elems: table-wide, so cheap to read; a tenant-rare word that is
    common across the table is dropped too, which only costs text-leg recall): more than
    MAX_TERM_ROWS rows, or with `tuning.term_rule == "share"` more than MAX_TERM_FREQUENCY of
    them. `tuning.caller_words` also drops the language's CALLER_WORDS.

    Second result, for languages that compound (knowledge.decompound) and `tuning.decompound`: per language, a
    term → the parts of that query word found in the bases' own vocabulary (same selectivity rules). The
    candidate parts are stemmed and the bases' content versions read in this same round trip.

    Third result: base pk → its content version (an md5 of its documents' current versions), for the bases whose
    words were split and, with `tuning.center` or `tuning.whiten`, for every base (knowledge.anisotropy's key)."""
    tuning = tuning or DEFAULT_TUNING
    languages = list(by_language)
    fillers = [CALLER_WORDS.get(lang, "") if tuning.caller_words else "" for lang in languages]
    part_langs: list[str] = []
    part_texts: list[str] = []
    split_words: dict[str, list[str]] = {}
    joined_pairs: dict[str, list[tuple[str, str, list[str]]]] = {}
    split_bases: list[KnowledgeBase] = []
    if tuning.decompound != "off":
        for lang, group in by_language.items():
            if not decompound.compounds(lang) or not group:
                continue
            tokens = [w.lower() for w in _WORD.findall(query)]
            words = sorted({w for w in tokens if decompound.candidate_parts(w, lang)})
            joins = [(a, b, joined) for i, a in enumerate(tokens) for b in tokens[i + 1:i + 3]
                     if tuning.join_words and tuning.decompound == "or"
                     and (joined := decompound.joined_candidates(a, b, lang))]
            if not words and not joins:
                continue
            split_words[lang] = words
            joined_pairs[lang] = joins
            split_bases.extend(group)
            texts = sorted({*words, *(p for w in words for p in decompound.candidate_parts(w, lang)),
                            *(text for a, b, joined in joins for text in (a, b, *joined))})
            part_langs.extend([lang] * len(texts))
            part_texts.extend(texts)
    synonym_words: dict[str, dict[str, list[str]]] = {}
    if tuning.synonyms != "off" and tuning.decompound == "or":
        by_stem = tuning.synonyms.endswith("stem")
        tokens = sorted({w.lower() for w in _WORD.findall(query)})
        for lang, group in by_language.items():
            if not group or (by_stem and thesaurus.stem_index(lang) is None):
                continue
            # By stem, only the words themselves are stemmed here; their synonyms come stemmed from the index.
            looked_up = ({w: [] for w in tokens if w.isalpha()} if by_stem
                         else {w: syns for w in tokens if (syns := thesaurus.synonyms(w, lang))})
            if not looked_up:
                continue
            synonym_words[lang] = looked_up
            split_bases.extend(kb for kb in group if kb not in split_bases)
            texts = sorted({*looked_up, *(s for syns in looked_up.values() for s in syns)})
            part_langs.extend([lang] * len(texts))
            part_texts.extend(texts)
    versioned = ([kb for group in by_language.values() for kb in group] if tuning.center or tuning.whiten
                 else split_bases)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT most_common_elems::text::text[] FROM pg_stats WHERE schemaname = current_schema()"
            "  AND tablename = 'knowledge_chunk' AND attname = 'search_vector'),"
            " (SELECT most_common_elem_freqs FROM pg_stats WHERE schemaname = current_schema()"
            "  AND tablename = 'knowledge_chunk' AND attname = 'search_vector'),"
            " (SELECT reltuples FROM pg_class WHERE oid = 'knowledge_chunk'::regclass),"
            " array(SELECT array_to_string(tsvector_to_array(to_tsvector(lang::regconfig, %s)), ' ')"
            "  FROM unnest(%s::text[]) WITH ORDINALITY AS l(lang, n) ORDER BY n),"
            " array(SELECT array_to_string(tsvector_to_array(to_tsvector(lang::regconfig, words)), ' ')"
            "  FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS l(lang, words, n) ORDER BY n),"
            " array(SELECT array_to_string(tsvector_to_array(to_tsvector(lang::regconfig, part)), ' ')"
            "  FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS p(lang, part, n) ORDER BY n),"
            " array(SELECT (SELECT md5(coalesce(string_agg(d.current_version_id::text, ',' ORDER BY d.id), ''))"
            "  FROM knowledge_document d WHERE d.knowledge_base_id = b.id)"
            "  FROM unnest(%s::bigint[]) WITH ORDINALITY AS b(id, n) ORDER BY n)",
            [query, languages, languages, fillers, part_langs, part_texts, [kb.pk for kb in versioned]])
        common, freqs, rows, per_language, per_language_fillers, part_stems, version_list = cursor.fetchone()
    versions = dict(zip([kb.pk for kb in versioned], version_list or [], strict=True))
    # most_common_elem_freqs has three extra entries at its end (min, max, null frequency).
    frequency = dict(zip(common or [], freqs or [], strict=False))
    limit = MAX_TERM_FREQUENCY if tuning.term_rule == "share" else MAX_TERM_ROWS / max(float(rows or 0), 1.0)
    result: dict[str, list[str]] = {}
    drops: dict[str, set[str]] = {}
    for language, joined, filler in zip(languages, per_language, per_language_fillers, strict=True):
        lexemes = joined.split(" ") if joined else []
        drops[language] = set(filler.split(" ")) if filler else set()
        result[language] = [t for t in lexemes if frequency.get(t, 0.0) <= limit and t not in drops[language]]
    alternatives: dict[str, dict[str, list[str]]] = {}
    if split_words or synonym_words:
        vocabularies = _vocabularies(split_bases, [versions[kb.pk] for kb in split_bases])
        stems: dict[str, dict[str, str]] = defaultdict(dict)
        for lang, text, stem in zip(part_langs, part_texts, part_stems, strict=True):
            stems[lang][text] = stem
        for lang, words in split_words.items():
            vocabulary = frozenset().union(*(vocabularies[kb.pk] for kb in by_language[lang]))
            for word in words:
                whole = stems[lang].get(word, "")
                parts = decompound.split(word, stems[lang], vocabulary, lang)
                if not parts or " " in whole or whole not in result[lang] or whole in parts:
                    continue
                if not tuning.split_known and whole in vocabulary:
                    continue  # the base uses the joined word itself
                kept = [p for p in parts if frequency.get(p, 0.0) <= limit and p not in drops[lang]]
                if kept:
                    alternatives.setdefault(lang, {})[whole] = kept
            for a, b, joined in joined_pairs.get(lang, []):
                ends = [stems[lang].get(a, ""), stems[lang].get(b, "")]
                found = [stem for text in joined if (stem := stems[lang].get(text, "")) and " " not in stem
                         and stem in vocabulary and stem not in ends and frequency.get(stem, 0.0) <= limit]
                for end in ends:  # the compound holds both words: it satisfies either term
                    if found and end in result[lang]:
                        listed = alternatives.setdefault(lang, {}).setdefault(end, [])
                        listed.extend(stem for stem in found if stem not in listed)
        for lang, found_synonyms in synonym_words.items():
            vocabulary = frozenset().union(*(vocabularies[kb.pk] for kb in by_language[lang]))
            for word, synonyms in found_synonyms.items():
                whole = stems[lang].get(word, "")
                if not whole or " " in whole or whole not in result[lang]:
                    continue
                if tuning.synonyms.startswith("unknown") and whole in vocabulary:
                    continue  # the base uses the caller's own word
                index = thesaurus.stem_index(lang) if tuning.synonyms.endswith("stem") else None
                lexemes = (index.synonym_stems(whole) if index
                           else [stems[lang].get(text, "") for text in synonyms])
                kept = [stem for stem in lexemes if stem and " " not in stem
                        and stem != whole and stem in vocabulary and frequency.get(stem, 0.0) <= limit
                        and stem not in drops[lang]]
                kept = list(dict.fromkeys(kept))[:tuning.synonym_limit or None]
                if kept:
                    listed = alternatives.setdefault(lang, {}).setdefault(whole, [])
                    listed.extend(stem for stem in kept if stem not in listed)
    return result, alternatives, versions


def _vocabularies(bases: Sequence[KnowledgeBase], versions: Sequence[str]) -> dict[int, frozenset[str]]:
    """Each base's lexemes (knowledge.decompound.VOCABULARIES), read with ts_stat when its content changed."""
    found: dict[int, frozenset[str]] = {}
    for kb, version in zip(bases, versions, strict=True):
        key = (kb.pk, f"{kb.language}:{version}")
        vocabulary = decompound.VOCABULARIES.get(key)
        if vocabulary is None:
            # ts_stat takes its query as text; both ids are integers from the database.
            inner = (f"SELECT search_vector FROM knowledge_chunk WHERE org_id = {int(kb.org_id)}"
                     f" AND knowledge_base_id = {int(kb.pk)} AND is_active")
            with connection.cursor() as cursor:
                cursor.execute("SELECT word FROM ts_stat(%s) ORDER BY ndoc DESC, word LIMIT %s",
                               [inner, decompound.VOCABULARY_LEXEMES])
                vocabulary = frozenset(row[0] for row in cursor.fetchall())
            decompound.VOCABULARIES.put(key, vocabulary)
        found[kb.pk] = vocabulary
    return found


def search_knowledge(org: Organization, kb_ids: Iterable[Any], query: str, k: int = 5,
                     *, backends: dict[str, EmbeddingBackend] | None = None, rerank: bool = True,
                     tuning: SearchTuning = DEFAULT_TUNING) -> list[SearchHit]:
    """Top `k` chunks for `query` across the org's knowledge bases `kb_ids`.

    `kb_ids` are public ids (str/UUID) or KnowledgeBase instances; ids of other orgs
    or unknown ids are ignored. `backends` (spec key → backend) lets a caller reuse
    already-built backends; otherwise they are built from the bases' settings.
    `rerank=False` skips the second stage (the benchmark compares both).
    """
    from knowledge.services import backend_for

    query = (query or "").strip()
    if not query:
        return []
    bases = _resolve_bases(org, kb_ids)
    if not bases:
        return []
    started, outcome = time.perf_counter(), "error"
    try:
        query_vectors: dict[str, Sequence[float]] = {}
        for kb in bases:
            if kb.spec.key not in query_vectors:
                backend = (backends or {}).get(kb.spec.key) or backend_for(kb)
                query_vectors[kb.spec.key] = backend.embed_query(query)
        hits = search_by_vectors(org, bases, query, query_vectors, k, rerank=rerank, tuning=tuning)
        outcome = "hits" if hits else "empty"
        return hits
    finally:
        KNOWLEDGE_SEARCH_SECONDS.labels(outcome).observe(time.perf_counter() - started)


# The columns every row of the search statement has (score to version number); second-stage extras follow them.
_HIT_COLUMNS = 16


def search_by_vectors(org: Organization, bases: Sequence[KnowledgeBase], query: str,
                      query_vectors: dict[str, Sequence[float]], k: int, *, rerank: bool = True,
                      tuning: SearchTuning = DEFAULT_TUNING) -> list[SearchHit]:
    """The database part of the search, with query vectors already computed per model
    key (the benchmark times this separately from embedding).

    Two round trips: the query's lexemes (to build the coverage tsquery), then one
    statement with a vector CTE per embedding model, the full-text leg,
    reciprocal-rank fusion and the join to documents/versions. Ranks from different models are comparable as ranks, which is why
    RRF is used rather than raw scores.
    """
    bases = [kb for kb in bases if kb.org_id == org.pk]  # never trust the caller on scope
    if not bases:
        return []
    k = max(1, min(int(k), MAX_K))
    fetch = max(k, tuning.candidates) if rerank else k
    by_spec: dict[ModelSpec, list[KnowledgeBase]] = defaultdict(list)
    by_language: dict[str, list[KnowledgeBase]] = defaultdict(list)
    for kb in bases:
        by_spec[kb.spec].append(kb)
        by_language[kb.language].append(kb)
    lexemes, alternatives, versions = _query_terms(query, by_language, tuning)
    params: dict[str, Any] = {
        "org": org.pk, "kbs": [kb.pk for kb in bases], "candidates": max(4 * fetch, 40), "rrf": tuning.rrf_k,
        "k": fetch, "text_weight": tuning.text_weight, "heading_boost": tuning.heading_boost, "df_cap": tuning.df_cap,
    }
    text_legs = 0
    for language, group in by_language.items():
        tsq = coverage_tsquery(lexemes[language], tuning.coverage, alternatives.get(language),
                               any_part=tuning.decompound == "or")
        if tsq:
            params.update({f"tsq{text_legs}": tsq, f"tkbs{text_legs}": [kb.pk for kb in group],
                           f"terms{text_legs}": sorted(set(lexemes[language]))})
            text_legs += 1
    ctes: list[str] = []
    ranked: list[str] = []
    for i, (spec, group) in enumerate(by_spec.items()):
        name = f"v{i}"
        ctes.append(_vector_cte(name, spec.dimensions))
        ranked.append(f"SELECT id, distance, row_number() OVER (ORDER BY distance) AS rank FROM {name}")
        params.update({f"{name}_vec": _vector_literal(query_vectors[spec.key]),
                       f"{name}_kbs": [kb.pk for kb in group], f"{name}_model": spec.key})
    # Every fused chunk's cosine distance to the query under its own model, also for chunks
    # only the text leg found (a few rows: the vectors are read from the joined chunk).
    exact = ("CASE c.embedding_model " + " ".join(
        f"WHEN %(v{i}_model)s THEN (c.embedding::vector({int(spec.dimensions)}) <=> "
        f"%(v{i}_vec)s::vector({int(spec.dimensions)}))" for i, spec in enumerate(by_spec)) + " END")
    # Second-stage variants (all off by default) add columns only when on, named in `extras`: the anisotropy-corrected
    # cosine; the candidate's model and vector (feedback); its section centroid's cosine (the section = its version's
    # chunks under the same heading, a few index rows).
    extras: dict[str, str] = {}
    corrected, stats = _corrected_similarity(org, by_spec, query_vectors, versions, params, tuning if rerank else None)
    if corrected is not None:
        extras["corrected"] = corrected
    use_feedback = rerank and bool(tuning.feedback_beta or tuning.feedback_gamma)
    if use_feedback:
        extras.update(model="c.embedding_model", vector="c.embedding::text")
    if tuning.section_centroid:
        extras["centroid"] = "CASE c.embedding_model " + " ".join(
            f"WHEN %(v{i}_model)s THEN ((SELECT avg(s.embedding::vector({int(spec.dimensions)})) FROM knowledge_chunk s"
            f" WHERE s.org_id = %(org)s AND s.version_id = c.version_id AND s.heading = c.heading AND s.is_active"
            f" AND s.embedding_model = c.embedding_model) <=> %(v{i}_vec)s::vector({int(spec.dimensions)}))"
            for i, spec in enumerate(by_spec)) + " END"
    sql = (
        "WITH " + ", ".join(ctes) + ", "
        "vector_ranked AS (" + " UNION ALL ".join(ranked) + "), "
        + (_text_cte(text_legs, tuning) if text_legs else _NO_TEXT_CTE) + ", "
        "fused AS ("
        " SELECT id, sum(weight / (%(rrf)s + rank)) AS score FROM ("
        "  SELECT id, rank, 1.0 AS weight FROM vector_ranked"
        "  UNION ALL SELECT id, rank, %(text_weight)s * share AS weight FROM text_ranked) legs"
        " GROUP BY id ORDER BY score DESC, id LIMIT %(k)s) "
        "SELECT f.score, " + exact + ", vr.rank, tr.rank, c.index, c.heading, c.text, c.start, c.end, c.page,"
        " kb.public_id, kb.name, d.public_id, d.title, v.public_id, v.number"
        + "".join(", " + column for column in extras.values()) + " "
        "FROM fused f JOIN knowledge_chunk c ON c.id = f.id"
        " JOIN knowledge_knowledgebase kb ON kb.id = c.knowledge_base_id"
        " JOIN knowledge_document d ON d.id = c.document_id"
        " JOIN knowledge_documentversion v ON v.id = c.version_id"
        " LEFT JOIN vector_ranked vr ON vr.id = f.id LEFT JOIN text_ranked tr ON tr.id = f.id "
        "WHERE c.org_id = %(org)s "
        "ORDER BY f.score DESC, f.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    hits: list[SearchHit] = []
    similarities: list[float | None] = []
    vectors: list[tuple[str, Any]] = []
    for row in rows:
        (score, distance, vector_rank, text_rank, index, heading, text, start, end, page, kb_id, kb_name,
         doc_id, title, version_id, number) = row[:_HIT_COLUMNS]
        extra = dict(zip(extras, row[_HIT_COLUMNS:], strict=True))
        if "corrected" in extra:
            similarities.append(_second_similarity(extra["corrected"], stats, query_vectors))
        if distance is not None and extra.get("centroid") is not None:
            share = tuning.section_centroid
            distance = (1.0 - share) * float(distance) + share * float(extra["centroid"])
        if use_feedback:
            vectors.append((extra["model"], feedback.parse_vector(extra["vector"])))
        hits.append(SearchHit(
            knowledge_base_id=str(kb_id), knowledge_base=kb_name, document_id=str(doc_id), document_title=title,
            version_id=str(version_id), version=number, chunk_index=index, heading=heading, text=text,
            start=start, end=end, page=page, score=round(float(score), 6),
            vector_similarity=round(1.0 - float(distance), 4) if distance is not None else None,
            vector_rank=vector_rank, text_rank=text_rank,
        ))
    if rerank:
        hits = (feedback_rerank(hits, vectors, query_vectors, tuning) if use_feedback
                else rerank_hits(hits, tuning, similarities if stats else None))[:k]
    logger.info("knowledge search", extra={"org": str(org.public_id), "bases": len(bases), "hits": len(hits)})
    return hits


def _corrected_similarity(org: Organization, by_spec: dict[ModelSpec, list[KnowledgeBase]],
                          query_vectors: dict[str, Sequence[float]], versions: dict[int, str], params: dict[str, Any],
                          tuning: SearchTuning | None) -> tuple[str | None, dict[str, anisotropy.CorpusStatistics]]:
    """The search statement's column for the second stage's anisotropy-corrected cosine (knowledge.anisotropy), and
    the statistics used, per model key. Centring: the cosine distance of (chunk - mean) to (query - mean), computed
    by pgvector on the candidate rows; whitening: the chunk's vector itself (as text), projected here. None (no
    column) when the tuning asks for neither or no searched base has statistics."""
    if tuning is None or not (tuning.center or tuning.whiten):
        return None, {}
    stats: dict[str, anisotropy.CorpusStatistics] = {}
    cases: list[str] = []
    for i, (spec, group) in enumerate(by_spec.items()):
        found = anisotropy.corpus_statistics(org.pk, group, spec, versions, tuning.whiten, tuning.whiten_shrink)
        if found is None:
            continue
        stats[spec.key] = found
        dims = int(spec.dimensions)
        if tuning.whiten:
            cases.append(f"WHEN %(v{i}_model)s THEN c.embedding_model || ' ' || c.embedding::vector({dims})::text")
        else:
            params.update({f"v{i}_mean": _vector_literal(found.mean),
                           f"v{i}_centred": _vector_literal(anisotropy.centred_query(found, query_vectors[spec.key]))})
            cases.append(f"WHEN %(v{i}_model)s THEN ((c.embedding::vector({dims}) - %(v{i}_mean)s::vector({dims}))"
                         f" <=> %(v{i}_centred)s::vector({dims}))::text")
    return ("CASE c.embedding_model " + " ".join(cases) + " END") if cases else None, stats


def _second_similarity(value: str | None, stats: dict[str, anisotropy.CorpusStatistics],
                       query_vectors: dict[str, Sequence[float]]) -> float | None:
    """The corrected cosine from `_corrected_similarity`'s column: "<model key> <vector>" (whitening) or a distance."""
    if value is None or not stats:
        return None
    if value.endswith("]"):
        key, vector = value.rsplit(" ", 1)
        return anisotropy.similarity(stats[key], query_vectors[key], vector)
    return 1.0 - float(value)


def rerank_hits(hits: Sequence[SearchHit], tuning: SearchTuning = DEFAULT_TUNING,
                similarities: Sequence[float | None] | None = None) -> list[SearchHit]:
    """The second stage: fused score (relative to the best candidate) + weighted cosine similarity (each hit's
    `vector_similarity`, or the anisotropy-corrected one in `similarities` when given). Each hit's
    `score` becomes the combined score; ties keep the fused order. With `tuning.section_dedup`, a chunk whose
    document and section heading an earlier hit already has moves behind every section's first chunk: a big
    section's five chunks then leave room for four other sections in the top five."""
    if not hits:
        return []
    best = max(hit.score for hit in hits) or 1.0
    cosines = list(similarities) if similarities is not None else [hit.vector_similarity for hit in hits]
    known = [cosine for cosine in cosines if cosine is not None]
    low, high = (min(known), max(known)) if known and tuning.similarity_norm else (0.0, 1.0)
    # A chunk without a cosine (only its text matched, vectors of an older model) scores as the lowest; a corrected
    # cosine can be negative.
    missing = min(known, default=0.0) if similarities is not None else low
    scored = []
    for position, (hit, cosine) in enumerate(zip(hits, cosines, strict=True)):
        similarity = cosine if cosine is not None else missing
        if high > low:
            similarity = (similarity - low) / (high - low)
        combined = hit.score / best + tuning.similarity_weight * similarity
        scored.append((-combined, position, replace(hit, score=round(combined, 6))))
    scored.sort(key=lambda item: (item[0], item[1]))
    ranked = [hit for _, _, hit in scored]
    if not tuning.section_dedup:
        return ranked
    sections: dict[tuple[str, str], list[SearchHit]] = {}
    for hit in ranked:
        sections.setdefault((hit.document_id, hit.heading), []).append(hit)
    if tuning.section_pool > 1:
        floor = min(hit.score for hit in ranked) if tuning.section_floor else 0.0
        pooled = {key: sum(tuning.section_decay ** i * (hit.score - floor)
                           for i, hit in enumerate(chunks[:tuning.section_pool]))
                  for key, chunks in sections.items()}
        order = sorted(sections, key=lambda key: -pooled[key])  # stable: ties keep the best chunk's order
    else:
        order = list(sections)
    first = [sections[key][0] for key in order]
    repeats = [hit for hit in ranked if hit is not sections[(hit.document_id, hit.heading)][0]]
    return first + repeats


def feedback_rerank(hits: Sequence[SearchHit], vectors: Sequence[tuple[str, Any]],
                    query_vectors: dict[str, Sequence[float]], tuning: SearchTuning) -> list[SearchHit]:
    """The second stage with pseudo-relevance feedback (knowledge.feedback): a first pass ranks the candidates,
    each model's query vector moves towards its `feedback_top` best candidates (and away from the lower half of
    the list by `feedback_gamma`), and the second stage runs again on the cosines to the moved query.
    `vectors[i]` is hits[i]'s (embedding model, vector or None)."""
    first = rerank_hits(hits, tuning)
    position = {(hit.version_id, hit.chunk_index): i for i, hit in enumerate(hits)}
    order = [position[(hit.version_id, hit.chunk_index)] for hit in first]
    low = set(order[len(order) // 2:])
    moved = {}
    for model, query in query_vectors.items():
        mine = [i for i in order if vectors[i][0] == model and vectors[i][1] is not None]
        top = [vectors[i][1] for i in mine[:tuning.feedback_top]]
        bottom = [vectors[i][1] for i in mine if i in low]
        moved[model] = feedback.expanded_query(query, top, bottom, tuning.feedback_beta, tuning.feedback_gamma)
    rescored = []
    for hit, (model, vector) in zip(hits, vectors, strict=True):
        if vector is not None and model in moved and hit.vector_similarity is not None:
            hit = replace(hit, vector_similarity=round(feedback.cosine(moved[model], vector), 4))
        rescored.append(hit)
    return rerank_hits(rescored, tuning)


async def asearch_knowledge(org: Organization, kb_ids: Iterable[Any], query: str, k: int = 5) -> list[SearchHit]:
    """For the call session: runs in a worker thread so audio keeps flowing."""
    return await sync_to_async(_search_in_thread, thread_sensitive=False)(org, list(kb_ids), query, k)


def _search_in_thread(org: Organization, kb_ids: list[Any], query: str, k: int) -> list[SearchHit]:
    try:
        return search_knowledge(org, kb_ids, query, k)
    finally:
        # Executor threads never see request_finished; honour CONN_MAX_AGE here instead.
        close_old_connections()


async def run_search_tool(org: Organization, kb_ids: Iterable[Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """The `search_knowledge` built-in tool as the call session runs it: validates the
    model's arguments (`query`, optional `top_k` 1..10, see agents.builtin_tools),
    searches the agent's bases and returns passages, or an `error` the model can read.
    Embedding-provider failures come back as an error result so the call goes on."""
    from knowledge.embeddings import EmbeddingError

    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip():
        return {"error": "query must be a non-empty string"}
    # Postgres text cannot hold NUL; a model's stray control byte is not part of the question.
    query = query.replace("\x00", " ")
    if not query.strip():
        return format_for_agent([])
    top_k = arguments.get("top_k", 4)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 10:
        return {"error": "top_k must be an integer from 1 to 10"}
    try:
        hits = await asearch_knowledge(org, kb_ids, query, top_k)
    except EmbeddingError as exc:
        logger.warning("knowledge tool search failed", extra={"org": str(org.public_id), "provider": exc.provider})
        return {"error": "the knowledge search is temporarily unavailable"}
    return format_for_agent(hits, query=query)
