#!/usr/bin/env python
"""Extraction time against input size for hostile inputs (issue 11: worker exhaustion).

    .venv/bin/python bench/extraction_bench.py                 # 64 KB .. 4 MB, every shape
    .venv/bin/python bench/extraction_bench.py --max-kb 1024 --shapes md-heading-blanks,html-unfinished-tags

Each shape is an input that made the old extraction rescan the rest of a line (or of
the document) from every position, so its time grew with the square of the size:
a 24 KB line took 1.7 s, a 1 MB line most of an hour. For each shape and size the
script runs the production code (`knowledge.extraction.extract`, and
`knowledge.chunking.split_sentences` for the sentence shapes — the chunker runs on
every extracted text) and prints seconds and microseconds per KB. Linear growth
shows as a flat µs/KB column; the last column is the ratio to the previous size's
time (≈2 for linear when the size doubles, ≈4 for quadratic).

No Django, database or network: extraction and chunking are pure.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge import chunking  # noqa: E402
from knowledge.extraction import extract  # noqa: E402

# name -> (file name, n bytes -> input); each was quadratic on the old code.
SHAPES: dict[str, tuple[str, Callable[[int], str]]] = {
    "md-heading-blanks": ("x.md", lambda n: "# a" + " " * n + "b"),  # `(.+?)[ \t#]*$`
    "md-unclosed-underscore": ("x.md", lambda n: "_a " * (n // 3)),  # `(_)(?=\S)(.+?)(?<=\S)\1`
    "md-unclosed-star": ("x.md", lambda n: "**a " * (n // 4)),
    "md-unclosed-brackets": ("x.md", lambda n: "[" * n),  # `\[([^\]]*)\]`
    "html-unfinished-tags": ("x.html", lambda n: "<p>x</p>" + "<a" * (n // 2)),  # html.parser
    "html-unfinished-end-tags": ("x.html", lambda n: "<p>x</p>" + "</" * (n // 2)),
    "sentences-long-paragraph": ("", lambda n: "ab. Cd " * (n // 7)),  # prefix rescan per boundary
    "sentences-run-of-dots": ("", lambda n: "." * n),  # `[.!?]+` restarted inside the run
}


def run(shape: str, size: int) -> float:
    filename, make = SHAPES[shape]
    text = make(size)
    started = time.perf_counter()
    if filename:
        extract(text.encode(), filename=filename)
    else:
        chunking.split_sentences(text)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--min-kb", type=int, default=64)
    parser.add_argument("--max-kb", type=int, default=4096)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    print(f"{'shape':<28}{'size':>10}{'seconds':>10}{'µs/KB':>10}{'×prev':>8}")
    for shape in args.shapes.split(","):
        previous = None
        kb = args.min_kb
        while kb <= args.max_kb:
            seconds = run(shape, kb * 1024)
            ratio = f"{seconds / previous:8.1f}" if previous and previous > 0.001 else f"{'':>8}"
            print(f"{shape:<28}{kb:>8}KB{seconds:>10.3f}{seconds * 1e6 / kb:>10.0f}{ratio}", flush=True)
            previous = seconds
            kb *= 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
