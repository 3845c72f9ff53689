#!/usr/bin/env python
"""Answer classification, measured on the labelled synthesized set.

Renders `calls/testing/answer_corpus.json` (espeak-ng voices, sox tones, silence,
noise; 8 kHz µ-law as a carrier streams it), plays every clip 20 ms at a time through
`calls.media.answer.AnswerClassifier` and prints, for two signal sets:
- "audio + transcript": the line plus the provider's transcription of each spoken part,
  delivered `TRANSCRIPT_LAG_MS` after the part ends (as a streaming transcriber would);
- "audio only": the line alone (a provider that gives no input transcript);
a confusion matrix (rows: truth, columns: the final decision, after any revision of a
"person" within `REVISE_MS`), per-class precision and recall, the median and p90 time to
that decision (ms of audio from the answer), how many decisions were revised, and the CPU
cost of one frame on the classifier.

    .venv/bin/python bench/answer_bench.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calls.audio.mulaw import mulaw_to_array  # noqa: E402
from calls.media.answer import REVISE_MS, AnswerClassifier, Decision, Outcome  # noqa: E402
from calls.testing.answer_corpus import Clip, load_corpus, missing_tools  # noqa: E402

LABELS = [o.value for o in Outcome]


def classify(clip: Clip, *, transcripts: bool) -> tuple[Decision | None, float]:
    """The clip's decision and the mean µs one frame cost."""
    machine = AnswerClassifier(expect_transcript=transcripts)
    pcm = mulaw_to_array(clip.mulaw)
    pending = list(clip.transcripts) if transcripts else []
    spent = 0.0
    frames = 0
    for start in range(0, len(pcm) - 159, 160):
        began = time.perf_counter()
        machine.feed(pcm[start:start + 160])
        spent += time.perf_counter() - began
        frames += 1
        while pending and pending[0][0] <= machine.at_ms:
            machine.transcript(pending.pop(0)[1])
        if machine.decision is not None and machine.at_ms > machine.decision.at_ms + REVISE_MS:
            break  # past the window in which a "person" may still turn out to be a machine
    # A clip that ends undecided: the line stays quiet until the machine's own timers fire.
    silence = pcm[:160] * 0
    while machine.decision is None and machine.at_ms < 30000:
        machine.feed(silence)
        while pending and pending[0][0] <= machine.at_ms:
            machine.transcript(pending.pop(0)[1])
    return machine.decision, spent / max(frames, 1) * 1e6


def report(clips: list[Clip], *, transcripts: bool) -> list[str]:
    matrix = {t: dict.fromkeys(LABELS, 0) for t in LABELS}
    times: list[int] = []
    costs: list[float] = []
    revised = 0
    by_label: dict[str, list[int]] = {t: [] for t in LABELS}
    wrong: list[str] = []
    for clip in clips:
        decision, cost = classify(clip, transcripts=transcripts)
        revised += bool(decision and "revised from human" in decision.signals)
        got = decision.outcome.value if decision else "silence"
        matrix[clip.label][got] += 1
        costs.append(cost)
        if decision is not None:
            times.append(decision.at_ms)
            by_label[clip.label].append(decision.at_ms)
        if got != clip.label:
            wrong.append(f"  {clip.key}: {clip.label} → {got} at {decision.at_ms if decision else '-'} ms "
                         f"({', '.join(decision.signals) if decision else 'no decision'})")
    width = max(len(x) for x in LABELS) + 1
    lines = [f"### {'audio + transcript' if transcripts else 'audio only'} ({len(clips)} clips)", "",
             "| truth \\ decided | " + " | ".join(LABELS) + " | recall |",
             "|---|" + "---:|" * (len(LABELS) + 1)]
    for truth in LABELS:
        total = sum(matrix[truth].values())
        recall = matrix[truth][truth] / total if total else float("nan")
        lines.append(f"| {truth:<{width}} | " + " | ".join(str(matrix[truth][c]) for c in LABELS)
                     + f" | {recall:.2f} |")
    precision = []
    for col in LABELS:
        decided = sum(matrix[t][col] for t in LABELS)
        precision.append(f"{matrix[col][col] / decided:.2f}" if decided else "-")
    lines.append("| **precision** | " + " | ".join(precision) + " | |")
    correct = sum(matrix[t][t] for t in LABELS)
    times.sort()
    lines += ["", f"accuracy {correct}/{len(clips)} = {correct / len(clips):.2f}; "
              f"time to decision median {statistics.median(times):.0f} ms, "
              f"p90 {times[int(0.9 * (len(times) - 1))]} ms; {revised} revised from person; "
              f"classifier cost {statistics.median(costs):.1f} µs per 20 ms frame (median over clips)"]
    lines.append("median time to decision by truth: " + ", ".join(
        f"{t} {statistics.median(v) / 1000:.1f} s" for t, v in by_label.items() if v))
    if wrong:
        lines += ["", "misclassified:", *wrong]
    return lines


def main() -> int:
    problem = missing_tools()
    if problem:
        print(problem)
        return 1
    clips = load_corpus()
    for transcripts in (True, False):
        print("\n".join(report(clips, transcripts=transcripts)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
