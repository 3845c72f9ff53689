"""Split an extracted document into chunks sized for an embedding model.

Rules, in order of precedence:
1. A chunk never spans two sections: a heading starts a new chunk, and the chunk
   carries its heading path ("Billing > Refunds") so it can be embedded with context.
2. Inside a section, chunks end on sentence boundaries (or line breaks, which in
   tables and CSV rows are the natural unit); a single sentence longer than the
   budget is cut between words.
3. Consecutive chunks of one section overlap by up to `overlap_tokens` worth of
   whole sentences, so an answer that straddles a boundary is still found.
4. Size is measured with the embedding model's own tokenizer, not characters:
   `max_tokens` includes the heading prefix, so nothing is silently truncated.

Offsets (`start`, `end`) are character positions in `ExtractedDocument.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from knowledge.extraction import ExtractedDocument


class TokenCounter(Protocol):
    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text as the embedding model will see it (no special tokens)."""
        ...


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str
    heading_path: tuple[str, ...]
    token_count: int
    page: int | None = None

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)

    def embedding_text(self, title: str = "") -> str:
        """What is sent to the embedding model: the document title and the heading path
        give a bare paragraph its topic ("Returns policy > Refunds" + "within 30 days").
        The title is left out when the heading path already starts with it."""
        return context_text(title, self.heading, self.text)


def context_text(title: str, heading: str, text: str) -> str:
    """Title, heading path and text as one string (the embedded form of a chunk)."""
    parts = [title] if title and not heading.startswith(title) else []
    if heading:
        parts.append(heading)
    parts.append(text)
    return "\n".join(parts)


@dataclass(frozen=True)
class ChunkingConfig:
    max_tokens: int = 200
    overlap_tokens: int = 40

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ValueError(f"max_tokens must be at least 16, got {self.max_tokens}")
        if not 0 <= self.overlap_tokens < self.max_tokens // 2:
            raise ValueError(
                f"overlap_tokens must be between 0 and max_tokens/2 ({self.max_tokens // 2}),"
                f" got {self.overlap_tokens}"
            )


_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "inc",
    "ltd", "co", "corp", "approx", "dept", "fig", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "mon", "tue", "wed", "thu", "fri", "sat", "sun",
}
# Candidate boundary: terminal punctuation (plus closing quotes/brackets) then whitespace,
# then something that can start a sentence. It may only start at the first mark of a run
# (the lookbehind) and takes the run whole (`++`): otherwise every mark of a long run of
# dots restarted a scan of the rest of the run (quadratic; a 16 KB line of dots took 3 s).
_SENTENCE_END = re.compile(
    r"(?<![.!?\u2026])[.!?\u2026]++[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00C0-\u024F])")
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?]*[\"'\u201d\u2019)\]]*\s*$")
# The word before a boundary is looked for in this many characters before it, not in the
# whole line so far (that was quadratic in the line's sentences: an 80 KB paragraph took
# 97 s). Abbreviations are short; a word cut by the window is still far too long to be one.
_WORD_WINDOW = 64


def split_sentences(text: str, base: int = 0) -> list[tuple[int, int]]:
    """(start, end) spans of sentences and lines in `text`, shifted by `base`."""
    spans: list[tuple[int, int]] = []
    for line_match in re.finditer(r"[^\n]+", text):
        line = line_match.group(0)
        line_start = line_match.start()
        cursor = 0
        for boundary in _SENTENCE_END.finditer(line):
            before = _WORD_BEFORE.search(line, max(0, boundary.start() - _WORD_WINDOW), boundary.start() + 1)
            word = before.group(1).lower().rstrip(".") if before else ""
            # "Dr. Smith", "e.g. Paris", "J. Doe": a period after these does not end a sentence.
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
            end = boundary.end()
            _append_span(spans, line, line_start + base, cursor, end)
            cursor = end
        _append_span(spans, line, line_start + base, cursor, len(line))
    return spans


def _append_span(spans: list[tuple[int, int]], line: str, offset: int, start: int, end: int) -> None:
    segment = line[start:end]
    stripped_left = len(segment) - len(segment.lstrip())
    stripped_right = len(segment) - len(segment.rstrip())
    if segment.strip():
        spans.append((offset + start + stripped_left, offset + end - stripped_right))


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    page: int | None


def chunk_document(doc: ExtractedDocument, counter: TokenCounter,
                   config: ChunkingConfig | None = None) -> list[Chunk]:
    config = config or ChunkingConfig()
    sections = _sections(doc)
    chunks: list[Chunk] = []
    heading_prefixes = sorted({path for path, _ in sections if path})
    prefix_tokens = dict(zip(heading_prefixes,
                             counter.count_tokens([" > ".join(p) for p in heading_prefixes]), strict=True))

    # Count all sentences of the document in one tokenizer call: far faster than per unit.
    all_spans = [span for _, spans in sections for span in spans]
    counts = counter.count_tokens([doc.text[s:e] for s, e, _ in all_spans]) if all_spans else []
    position = 0
    for path, spans in sections:
        # +1 for the newline joining the heading to the body.
        budget = config.max_tokens - (prefix_tokens.get(path, 0) + 1 if path else 0)
        if budget < 16:
            # A pathological heading path eats the budget: keep only the nearest heading.
            path = path[-1:]
            budget = max(16, config.max_tokens - counter.count_tokens([path[0]])[0] - 1)
        units: list[_Unit] = []
        for start, end, page in spans:
            tokens = counts[position]
            position += 1
            if tokens > budget:
                units.extend(_split_long(doc.text, start, end, page, budget, counter))
            else:
                units.append(_Unit(start, end, tokens, page))
        _pack(doc.text, path, units, budget, config.overlap_tokens, chunks)
    return chunks


def _sections(doc: ExtractedDocument) -> list[tuple[tuple[str, ...], list[tuple[int, int, int | None]]]]:
    """Group sentence spans by the heading path they sit under."""
    sections: list[tuple[tuple[str, ...], list[tuple[int, int, int | None]]]] = []
    stack: list[tuple[int, str]] = []
    current: list[tuple[int, int, int | None]] = []
    current_path: tuple[str, ...] = ()
    for block in doc.blocks:
        if block.kind == "heading":
            if current:
                sections.append((current_path, current))
                current = []
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, doc.block_text(block).replace("\n", " ")))
            current_path = tuple(text for _, text in stack)
            continue
        for start, end in split_sentences(doc.block_text(block), base=block.start):
            current.append((start, end, block.page))
    if current:
        sections.append((current_path, current))
    elif stack and not sections:
        # A document that is nothing but headings: index the headings themselves.
        for block in doc.blocks:
            sections.append(((), [(block.start, block.end, block.page)]))
    return sections


def _split_long(text: str, start: int, end: int, page: int | None, budget: int,
                counter: TokenCounter) -> list[_Unit]:
    """Cut an over-long sentence between words into pieces that fit the budget."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]
    word_tokens = counter.count_tokens([text[s:e] for s, e in words])
    units: list[_Unit] = []
    piece_start = 0
    running = 0
    for i, tokens in enumerate(word_tokens):
        if running + tokens > budget and i > piece_start:
            units.append(_Unit(words[piece_start][0], words[i - 1][1], running, page))
            piece_start, running = i, 0
        if tokens > budget:
            # A single "word" beyond the budget (a giant URL or base64 blob): hard-cut it
            # by characters, proportionally; this is the only place text can be split mid-word.
            s, e = words[i]
            step = max(1, (e - s) * budget // max(tokens, 1))
            for cut in range(s, e, step):
                piece = text[cut:min(cut + step, e)]
                units.append(_Unit(cut, min(cut + step, e), counter.count_tokens([piece])[0], page))
            piece_start, running = i + 1, 0
            continue
        running += tokens
    if piece_start < len(words):
        units.append(_Unit(words[piece_start][0], words[-1][1], running, page))
    return units


def _pack(text: str, path: tuple[str, ...], units: list[_Unit], budget: int, overlap: int,
          out: list[Chunk]) -> None:
    i = 0
    while i < len(units):
        used = 0
        j = i
        while j < len(units) and used + units[j].tokens <= budget:
            used += units[j].tokens
            j += 1
        if j == i:  # a unit exactly over budget after the split rounding: take it alone
            used, j = units[i].tokens, i + 1
        start, end = units[i].start, units[j - 1].end
        out.append(Chunk(index=len(out), start=start, end=end, text=text[start:end],
                         heading_path=path, token_count=used, page=units[i].page))
        if j >= len(units):
            break
        # Step back over whole trailing units for the overlap, but always make progress.
        back = j
        carried = 0
        while back - 1 > i and carried + units[back - 1].tokens <= overlap:
            back -= 1
            carried += units[back].tokens
        i = back if back > i else j
