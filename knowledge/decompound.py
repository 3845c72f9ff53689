"""Splitting a caller's compound words into parts the knowledge base itself uses (German, Dutch).

Contract: `candidate_parts(word, language)` lists every substring of a query word that could be a part of it;
the search stems them in the lexeme round trip it already makes; `split(word, stems, vocabulary, language)` then
returns the word's parts as stemmed lexemes, every one of them present in the base's own vocabulary (the lexemes
of its active chunks, `BaseVocabulary`), or None. The search adds the parts as an alternative to the whole word
("kernelmodul" | "kernel" & "modul"), so the joined word still counts as one term of the coverage rule.

Why: German callers join what the manual hyphenates or splits ("Kernelmodul" vs "Kernel-Modul",
"Rechnername" vs "Name des Rechners"). The reverse (the caller splits what the manual joins) is handled the same
way at query time: `joined_candidates` of two query words one or two words apart are stemmed and kept when the base
uses the joined lexeme; it is then an alternative of both words (a chunk with "Rechnername" holds both "Name" and
"Rechner"). Postgres's german snowball stemmer does not split compounds, and no
decompounding dictionary (hunspell de_DE) is packaged here. A base's own vocabulary is the dictionary that
matters: a part it does not contain could not match anything anyway, and checking against it keeps random
splits ("Ver-sion") out. Rules: parts of at least MIN_PART letters; a non-final part may end in one of the
language's linking elements (Fugen: Arbeit-s-speicher, Seite-n-zahl); the split with the fewest parts wins,
then the one with the longest first part.

Cost: no extra round trip per query. The vocabulary is read once per base and content version (the set of its
documents' current versions, checked in the lexeme round trip) with ts_stat, kept in process in a bounded LRU
(VOCABULARY_BASES bases, at most VOCABULARY_LEXEMES lexemes each, the most frequent kept); the candidate parts
add a few dozen short strings to the stemming the round trip already did.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Mapping, TypeVar

V = TypeVar("V")

# Linking elements per text-search language that compounds; longest first so "-es-" is tried before "-s-".
LINKING_ELEMENTS: dict[str, tuple[str, ...]] = {
    "german": ("es", "en", "s", "n", "e"),
    "dutch": ("en", "s", "e"),
}
MIN_PART = 4  # shorter parts ("ei", "tag") make too many accidental splits
MIN_WORD = 2 * MIN_PART
MAX_WORD = 40  # longer "words" are hashes, paths or run-together junk
MAX_PARTS = 3

VOCABULARY_BASES = 32
VOCABULARY_LEXEMES = 100_000  # ~6 MB of Python strings per base at most


def compounds(language: str) -> bool:
    """Whether the search splits compound words for this text-search language."""
    return language in LINKING_ELEMENTS


def _pieces(word: str, start: int, end: int, final: bool, language: str) -> list[str]:
    """The substring word[start:end] as a part, and (not for the last part) without a trailing linking element."""
    piece = word[start:end]
    found = [piece]
    if not final:
        for link in LINKING_ELEMENTS[language]:
            if piece.endswith(link) and len(piece) - len(link) >= MIN_PART:
                found.append(piece[: -len(link)])
    return found


def candidate_parts(word: str, language: str) -> list[str]:
    """Every string `split` may look up for `word` (lower-cased): substrings of at least MIN_PART letters, with
    and without a linking element at their end. Empty for words too short or too long to split."""
    word = word.lower()
    if not compounds(language) or not MIN_WORD <= len(word) <= MAX_WORD or not word.isalpha():
        return []
    found: set[str] = set()
    for start in range(0, len(word) - MIN_PART + 1):
        for end in range(start + MIN_PART, len(word) + 1):
            if (start, end) == (0, len(word)):
                continue
            if end < len(word) and len(word) - end < MIN_PART:
                continue  # what is left after it could not be a part
            found.update(_pieces(word, start, end, end == len(word), language))
    return sorted(found)


def split(word: str, stems: Mapping[str, str], vocabulary: frozenset[str] | set[str],
          language: str) -> list[str] | None:
    """`word` as 2..MAX_PARTS stemmed parts all in `vocabulary` (stems: part → its lexeme, "" for a stop word),
    or None. Fewest parts first, then the longest first part."""
    word = word.lower()
    if not candidate_parts(word, language):
        return None

    def lexeme(start: int, end: int) -> str | None:
        for piece in _pieces(word, start, end, end == len(word), language):
            stem = stems.get(piece)
            if stem and stem in vocabulary:
                return stem
        return None

    def best(start: int, budget: int) -> list[str] | None:
        whole = lexeme(start, len(word)) if start else None
        if whole:
            return [whole]
        if budget <= 1:
            return None
        for end in range(len(word) - MIN_PART, start + MIN_PART - 1, -1):  # longest first part first
            head = lexeme(start, end)
            if head:
                rest = best(end, budget - 1)
                if rest:
                    return [head, *rest]
        return None

    for parts in range(2, MAX_PARTS + 1):
        found = best(0, parts)
        if found and len(set(found)) > 1:
            return found
    return None


# Endings a genitive or plural first word drops when it becomes a compound's head ("des Rechners" → "Rechner-").
INFLECTIONS: dict[str, tuple[str, ...]] = {"german": ("es", "s", "n"), "dutch": ("s",)}


def joined_candidates(first: str, second: str, language: str) -> list[str]:
    """The compounds two nearby query words may be written as in a manual (the reverse of `split`): "spiegel server"
    → "spiegelserver"; "name (des) rechners" → "rechnername" (the second word, uninflected, as the head).
    Lower-cased; empty when either word is too short to be a part or not alphabetic, or the language does not
    compound."""
    first, second = first.lower(), second.lower()
    if (not compounds(language) or min(len(first), len(second)) < MIN_PART or not (first + second).isalpha()
            or len(first) + len(second) > MAX_WORD):
        return []
    found = {first + second, second + first}
    for ending in INFLECTIONS[language]:
        if second.endswith(ending) and len(second) - len(ending) >= MIN_PART:
            found.add(second[: -len(ending)] + first)
    return sorted(found)


class BaseCache(Generic[V]):
    """In-process LRU of what is read once per knowledge base and content version: (base pk, version) → value.
    Putting a base's new version drops its older ones. Also holds knowledge.anisotropy's statistics."""

    def __init__(self, bases: int = VOCABULARY_BASES) -> None:
        self._entries: OrderedDict[tuple[int, str], V] = OrderedDict()
        self._bases = bases
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[int, str], value: V) -> None:
        with self._lock:
            for old in [k for k in self._entries if k[0] == key[0]]:
                del self._entries[old]  # an older version of the same base is of no use any more
            self._entries[key] = value
            while len(self._entries) > self._bases:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class BaseVocabulary(BaseCache[frozenset[str]]):
    """Knowledge-base vocabularies: (base pk, content version) → its active chunks' lexemes."""


VOCABULARIES = BaseVocabulary()
