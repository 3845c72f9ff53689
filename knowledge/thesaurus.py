"""Synonyms of a caller's word from a packaged thesaurus (MyThes format: OpenThesaurus for German, the Spanish and
English LibreOffice thesauri; Debian's mythes-de, mythes-es, mythes-en-us, LGPL), for the full-text leg.

Contract: `synonyms(word, language)` lists the single-word synonyms the thesaurus gives for `word` (lower-cased),
in every meaning it lists, without relation entries (hypernyms, hyponyms, antonyms: "Geld (Oberbegriff)",
"computer (generic term)", "x (antonym)") and without annotations ("(ugs.)"); [] for a word or a language it does
not know, or when its files are absent. The search (knowledge.search, `SearchTuning.synonyms`) stems them in the
lexeme round trip it already makes and keeps only those its bases' own vocabulary holds, as alternatives of the
query word ("Rechner" | "Computer"), so a synonym counts as the caller's word in the coverage rule.

Why: callers use other words than the manual ("Rechner" for "Computer", "Spiegelserver" for "Mirror").
Checking against the base's vocabulary keeps the thesaurus's many meanings from matching text the base lacks
anyway; a synonym the base does not use could not match a chunk. Measured on the evaluation sets and left off
(`SearchTuning.synonyms` "off"): no German gain, small Spanish and English losses, BENCH.md "Sixth pass". By stem
(`StemIndex`): an inflected caller word finds the headwords that share its stem.

Files: KNOWLEDGE_THESAURUS_DIR (default /usr/share/mythes, where Debian installs them), file names per
text-search language in FILES. The .idx file (first line the encoding, second the entry count, then
"word|byte offset") is read once per language into a dict; an entry of the .dat file ("word|meanings", then one
"pos|synonym|synonym..." line per meaning) is read at its offset when asked. Absent or unreadable files mean no
synonyms for that language: logged once, never an error.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_DIR = "/usr/share/mythes"
FILES = {"german": "th_de_DE_v2", "spanish": "th_es_ES_v2", "english": "th_en_US_v2"}
# Relation entries, not synonyms: OpenThesaurus's Ober-/Unterbegriff, WordNet's generic/similar/related terms.
RELATIONS = re.compile(r"\((?:Oberbegriff|Unterbegriff|Antonym|antonym|generic term|similar term|related term)\)")
_ANNOTATION = re.compile(r"\([^)]*\)")
MAX_SYNONYMS = 40  # a word with dozens of meanings ("machen") gives noise, not the caller's meaning


class Thesaurus:
    """One language's MyThes files: the index in memory, entries read from the data file on demand."""

    def __init__(self, index: Path, data: Path) -> None:
        with index.open("rb") as handle:
            self.encoding = handle.readline().decode("ascii").strip() or "UTF-8"
            handle.readline()  # the entry count
            self.offsets: dict[str, int] = {}
            for line in handle.read().decode(self.encoding).splitlines():
                word, _, offset = line.rpartition("|")
                if word and offset.isdigit():
                    self.offsets.setdefault(word.lower(), int(offset))
        self.data = data

    def synonyms(self, word: str) -> list[str]:
        offset = self.offsets.get(word.lower())
        if offset is None:
            return []
        found: list[str] = []
        with self.data.open("rb") as handle:
            handle.seek(offset)
            head = handle.readline().decode(self.encoding).strip()
            _, _, count = head.rpartition("|")
            for _ in range(int(count) if count.isdigit() else 0):
                for entry in handle.readline().decode(self.encoding).strip().split("|")[1:]:
                    if RELATIONS.search(entry):
                        continue
                    term = _ANNOTATION.sub("", entry).strip().lower()
                    if term and " " not in term and term != word.lower() and term not in found:
                        found.append(term)
        return found[:MAX_SYNONYMS]


_LOCK = threading.Lock()


def directory() -> Path:
    from django.conf import settings

    return Path(getattr(settings, "KNOWLEDGE_THESAURUS_DIR", DEFAULT_DIR) or DEFAULT_DIR)


@lru_cache(maxsize=len(FILES) * 2)
def _load(folder: str, language: str) -> Thesaurus | None:
    name = FILES.get(language)
    if name is None:
        return None
    index, data = Path(folder) / f"{name}.idx", Path(folder) / f"{name}.dat"
    try:
        return Thesaurus(index, data) if data.is_file() else None
    except (OSError, UnicodeDecodeError, LookupError):
        logger.warning("knowledge thesaurus unreadable, no synonyms", extra={"language": language,
                                                                              "path": str(index)})
        return None
    finally:
        if not data.is_file():
            logger.info("knowledge thesaurus absent, no synonyms", extra={"language": language, "path": str(data)})


def for_language(language: str) -> Thesaurus | None:
    """The language's thesaurus from KNOWLEDGE_THESAURUS_DIR, loaded once (None when it has none)."""
    with _LOCK:
        return _load(str(directory()), language)


def synonyms(word: str, language: str) -> list[str]:
    """Single-word synonyms of `word` in `language` (module docstring); [] without a thesaurus."""
    thesaurus = for_language(language)
    return thesaurus.synonyms(word) if thesaurus else []


def clear() -> None:
    """Forget loaded thesauri and stem indexes (tests that point KNOWLEDGE_THESAURUS_DIR elsewhere)."""
    _load.cache_clear()
    STEM_INDEXES.clear()


class StemIndex:
    """A thesaurus keyed by stem (`SearchTuning.synonyms` "stem"): an inflected caller word ("herunterlädt",
    "Pakete") finds the entries of every single-word headword with its stem ("herunterladen", "Paket").
    `stems`: headword → its lexeme under the language's text-search configuration (computed by Postgres once per
    language and process, `stem_index`)."""

    def __init__(self, thesaurus: Thesaurus, stems: dict[str, str]) -> None:
        self.thesaurus = thesaurus
        self.stems = stems
        self.by_stem: dict[str, list[str]] = {}
        for word, stem in stems.items():
            if stem and " " not in stem:
                self.by_stem.setdefault(stem, []).append(word)

    def synonym_stems(self, stem: str) -> list[str]:
        """Stems of the synonyms of every headword with this stem (synonyms that are no headword are left out)."""
        found: dict[str, None] = {}
        for word in self.by_stem.get(stem, []):
            for synonym in self.thesaurus.synonyms(word):
                lexeme = self.stems.get(synonym, "")
                if lexeme and " " not in lexeme and lexeme != stem:
                    found[lexeme] = None
        return list(found)[:MAX_SYNONYMS]


STEM_INDEXES: dict[tuple[str, str], StemIndex] = {}


def stem_index(language: str) -> StemIndex | None:
    """The language's thesaurus keyed by stem: its single-word headwords stemmed by Postgres (the language's
    text-search configuration, as the chunks are) in one statement, once per language and process."""
    from django.db import connection

    found = for_language(language)
    if found is None:
        return None
    key = (str(directory()), language)
    index = STEM_INDEXES.get(key)
    if index is None:
        words = single_words(found)
        with connection.cursor() as cursor:
            cursor.execute("SELECT array(SELECT array_to_string(tsvector_to_array(to_tsvector(%s::regconfig, w)), ' ')"
                           " FROM unnest(%s::text[]) WITH ORDINALITY AS x(w, n) ORDER BY n)", [language, words])
            stems = cursor.fetchone()[0]
        index = STEM_INDEXES[key] = StemIndex(found, dict(zip(words, stems, strict=True)))
    return index


def single_words(thesaurus: Thesaurus) -> list[str]:
    """The headwords a stem index stems: single alphabetic words."""
    return [word for word in thesaurus.offsets if word.isalpha()]
