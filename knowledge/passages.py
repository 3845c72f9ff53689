"""What the agent reads aloud from a search: passages trimmed to whole sentences that fit ~35 s of speech, each
with its source (issue 20, "voice-shaped queries"). `knowledge.search` runs the search; this module only shapes
its hits, so it needs no database.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from knowledge.search import SearchHit

# A passage the agent may read out: ~35 s of speech at ~15 characters a second. Longer
# chunks (tables, whole procedures) are cut to the sentences that best match the query.
SPOKEN_PASSAGE_CHARS = 520
_WORD = re.compile(r"\w+", re.UNICODE)
_NOISE_LINE = re.compile(r"^[\s|+\-=_*#>`~]*$")


def _stem(word: str) -> str:
    # A crude, language-agnostic stem for picking sentences: the first five letters.
    return word.lower()[:5]


def spoken_passage(text: str, query: str = "", max_chars: int = SPOKEN_PASSAGE_CHARS) -> str:
    """The part of a chunk worth reading aloud: whole sentences around those that share the most words with the
    query, at most `max_chars` long; rule and separator lines are dropped and whitespace collapsed. A single
    sentence longer than the budget is cut between words and marked with an ellipsis."""
    from knowledge.chunking import split_sentences

    lines = [line for line in text.splitlines() if line.strip() and not _NOISE_LINE.match(line)]
    clean = "\n".join(" ".join(line.split()) for line in lines)
    if len(clean) <= max_chars:
        return clean.replace("\n", " ")
    sentences = [clean[a:b].replace("\n", " ") for a, b in split_sentences(clean)]
    if not sentences:
        return ""
    wanted = {_stem(w) for w in _WORD.findall(query) if len(w) > 2}
    overlap = [len(wanted & {_stem(w) for w in _WORD.findall(sentence)}) for sentence in sentences]
    best: tuple[int, int, int] = (-1, 0, 1)  # (score, start, end)
    for start in range(len(sentences)):
        length, score, end = 0, 0, start
        while end < len(sentences) and length + len(sentences[end]) + 1 <= max_chars:
            length += len(sentences[end]) + 1
            score += overlap[end]
            end += 1
        if end > start and score > best[0]:
            best = (score, start, end)
    if best[0] < 0:  # even the first sentence is over budget: cut it between words
        cut = sentences[0][:max_chars - 1].rsplit(" ", 1)[0]
        return cut.rstrip(",;:") + "…"
    return " ".join(sentences[best[1]:best[2]])


def format_for_agent(hits: Sequence[SearchHit], max_chars: int = 2400, *, query: str = "",
                     passage_chars: int = SPOKEN_PASSAGE_CHARS) -> dict[str, Any]:
    """The tool result an agent gets: passages it can read aloud (see `spoken_passage`), each with its source
    (document title and section), at most `max_chars` in all."""
    results: list[dict[str, Any]] = []
    used = 0
    for hit in hits:
        passage = spoken_passage(hit.text, query, min(passage_chars, max_chars))
        text = passage if used + len(passage) <= max_chars else passage[: max(0, max_chars - used)]
        if not text:
            break
        used += len(text)
        results.append({"source": hit.document_title, "section": hit.heading, "text": text,
                        "score": hit.score})
    return {"results": results} if results else {"results": [], "note": "No matching passages found."}
