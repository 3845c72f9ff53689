"""Chunking: heading-aware, sentence boundaries, overlap, token budget, exact offsets."""

from __future__ import annotations

import itertools

import pytest

from knowledge.chunking import ChunkingConfig, chunk_document, split_sentences
from knowledge.embeddings.tokens import count_wordpiece_tokens
from knowledge.extraction import extract_text


class WordPiece:
    def count_tokens(self, texts):
        return count_wordpiece_tokens(texts)


def test_sentence_split_respects_abbreviations() -> None:
    text = "Dr. Smith arrived at 5 p.m. on Monday. He met J. Doe, e.g. the CEO! Was it late? Yes."
    sentences = [text[s:e] for s, e in split_sentences(text)]
    assert sentences == ["Dr. Smith arrived at 5 p.m. on Monday.", "He met J. Doe, e.g. the CEO!",
                         "Was it late?", "Yes."]


def test_offsets_point_into_the_document_text() -> None:
    doc = extract_text("# Billing\n\nWe bill monthly. Invoices go out on the 1st.\n\n## Refunds\n\n"
                       "Refunds take five days. Contact support first.")
    chunks = chunk_document(doc, WordPiece(), ChunkingConfig(max_tokens=64, overlap_tokens=8))
    assert [c.heading_path for c in chunks] == [("Billing",), ("Billing", "Refunds")]
    for chunk in chunks:
        assert doc.text[chunk.start:chunk.end] == chunk.text
    assert chunks[1].text == "Refunds take five days. Contact support first."
    assert chunks[1].embedding_text() == "Billing > Refunds\n" + chunks[1].text


def test_sections_never_merge_and_budget_holds_with_heading_prefix() -> None:
    sentences = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60))
    doc = extract_text(f"# Long section heading here\n\n{sentences}\n\n# Other\n\nShort one.")
    counter = WordPiece()
    config = ChunkingConfig(max_tokens=80, overlap_tokens=20)
    chunks = chunk_document(doc, counter, config)
    assert len(chunks) > 5
    for chunk in chunks:
        # The heading prefix is what the model sees too: the whole input fits the budget.
        assert counter.count_tokens([chunk.embedding_text()])[0] <= config.max_tokens + 2
        assert chunk.text.endswith(".")  # sentence boundaries
    assert chunks[-1].heading_path == ("Other",) and chunks[-1].text == "Short one."
    assert all(c.heading_path == ("Long section heading here",) for c in chunks[:-1])


def test_overlap_repeats_whole_trailing_sentences() -> None:
    sentences = " ".join(f"Fact {i} is about the warehouse in city {i}." for i in range(40))
    doc = extract_text(sentences)
    chunks = chunk_document(doc, WordPiece(), ChunkingConfig(max_tokens=60, overlap_tokens=15))
    for previous, current in itertools.pairwise(chunks):
        assert current.start < previous.end, "consecutive chunks overlap"
        assert current.start > previous.start, "always progress"
        overlap = doc.text[current.start:previous.end]
        assert overlap.startswith("Fact ") and overlap.endswith(".")
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())


def test_zero_overlap() -> None:
    doc = extract_text(" ".join(f"Line {i} ends here." for i in range(50)))
    chunks = chunk_document(doc, WordPiece(), ChunkingConfig(max_tokens=40, overlap_tokens=0))
    assert all(b.start > a.end for a, b in itertools.pairwise(chunks))


def test_giant_sentence_and_giant_word_are_cut_to_budget() -> None:
    long_sentence = " ".join(["antidisestablishmentarianism"] * 200)
    blob = "x" * 3000
    doc = extract_text(f"{long_sentence}\n\n{blob}")
    counter = WordPiece()
    chunks = chunk_document(doc, counter, ChunkingConfig(max_tokens=50, overlap_tokens=0))
    assert all(c.token_count <= 50 for c in chunks)
    assert all(counter.count_tokens([c.text])[0] <= 52 for c in chunks)
    covered = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace()), "nothing lost"


def test_csv_like_lines_are_units() -> None:
    doc = extract_text("\n".join(f"sku: {i}; price: {i}.99" for i in range(30)))
    chunks = chunk_document(doc, WordPiece(), ChunkingConfig(max_tokens=40, overlap_tokens=0))
    assert all(c.text.startswith("sku: ") and c.text[-2:] == "99" for c in chunks)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingConfig(max_tokens=100, overlap_tokens=60)
