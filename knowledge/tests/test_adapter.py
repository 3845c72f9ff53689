"""The per-base query adapter (knowledge.evaluation.adapter, sixth pass, measured in the bench only): it learns a query map that
sends pseudo-queries to their own section, stays the identity when regularised hard, and leaves vectors unit."""

from __future__ import annotations

import random

import numpy as np

from knowledge.evaluation import adapter


def _base(seed: int = 0) -> tuple[np.ndarray, list[int], np.ndarray, list[int]]:
    """Eight sections of five chunks around their centres; their queries are the centres seen through a fixed
    rotation (what an encoder's query/passage mismatch looks like), plus noise."""
    rng = np.random.default_rng(seed)
    dims = 32
    centres = rng.normal(size=(8, dims))
    labels = [s for s in range(8) for _ in range(5)]
    passages = centres[labels] + 0.3 * rng.normal(size=(40, dims))
    rotation = np.linalg.qr(rng.normal(size=(dims, dims)))[0]
    query_labels = [s for s in range(8) for _ in range(6)]
    queries = (centres[query_labels] + 0.3 * rng.normal(size=(48, dims))) @ rotation.T
    return passages / np.linalg.norm(passages, axis=1, keepdims=True), labels, queries.astype(np.float32), query_labels


def _top1(passages: np.ndarray, labels: list[int], queries: np.ndarray, wanted: list[int]) -> float:
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return float(np.mean(np.asarray(labels)[np.argmax(unit @ passages.T, axis=1)] == np.asarray(wanted)))


def test_adapter_learns_the_map_back_to_the_queries_own_sections() -> None:
    passages, labels, queries, wanted = _base()
    held = _base(seed=0)[2][1::2]  # the same rotation; scored on queries it was not trained on
    w = adapter.train(passages, labels, queries[::2], wanted[::2], reg=1e-4, temperature=0.1, steps=300, lr=1e-2)
    before = _top1(passages, labels, held, wanted[1::2])
    after = _top1(passages, labels, held @ w.T, wanted[1::2])
    assert before < 0.9
    assert after > before
    moved = adapter.adapt(w, queries[1])
    assert abs(np.linalg.norm(moved) - 1.0) < 1e-5


def test_strong_regularisation_keeps_the_identity() -> None:
    passages, labels, queries, wanted = _base(seed=1)
    strong = adapter.train(passages, labels, queries, wanted, reg=1e3, steps=100)
    weak = adapter.train(passages, labels, queries, wanted, reg=1e-4, steps=100)
    eye = np.eye(len(strong))
    assert np.abs(strong - eye).max() < 5e-3  # Adam's steps are ~lr each: it jitters around the optimum, W = I
    assert np.linalg.norm(weak - eye) > 10 * np.linalg.norm(strong - eye)


def test_sentences_are_a_chunks_full_sentences_of_a_sensible_length() -> None:
    text = "Debian. The package manager keeps a log of every install.\nUse apt to upgrade the system safely today."
    found = adapter.sentences(text, per_chunk=5, rng=random.Random(0))
    assert sorted(found) == ["The package manager keeps a log of every install.",
                             "Use apt to upgrade the system safely today."]
    assert len(adapter.sentences(text, per_chunk=1, rng=random.Random(0))) == 1
