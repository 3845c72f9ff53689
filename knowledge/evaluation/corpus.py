"""The retrieval evaluation corpus: the Debian Reference, read from Debian's packages.

Contract: `load_corpus(lang, chapters)` returns one `CorpusDocument` per numbered
section ("2.1. Debian package management prerequisites") of the chosen chapters, as
the HTML fragment the package ships (so ingestion goes through the production HTML
extractor), and `load_questions(lang)` the committed question set for that language.
A question names the section that answers it ("2.5.10"); a search result answers it
when it comes from that section's document and its heading path contains that
section's number. Section numbers are the same in every translation, which is what
lets one set of answer keys serve English, Spanish and German.

Why this corpus: it is real documentation with the shape customers upload (long
manuals, big catch-all sections beside small specific ones), it is installed from
Debian (`debian-reference-en/-es/-de`, `make browser` installs them) so nothing is
downloaded at run time, and it exists in three languages with identical structure.
The Python language reference is deliberately not used: it is kept for evaluation
outside this repository.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS_DIR = Path("/usr/share/debian-reference")
QUESTIONS_DIR = Path(__file__).resolve().parent / "questions"
LANGUAGES = ("en", "es", "de")
# Chapters 2-5: package management, system initialisation, authentication, network setup.
DEFAULT_CHAPTERS = (2, 3, 4, 5)

_H2 = re.compile(r'<div class="section">\s*<div class="titlepage">\s*<div>\s*<div>\s*<h2 class="title"')
_H2_TITLE = re.compile(r"<h2 class=\"title\">(.*?)</h2>", re.S)
_TAG = re.compile(r"<[^>]+>")
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)+)\.")


class CorpusMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class CorpusDocument:
    section: str  # "2.1"
    title: str  # "2.1. Debian package management prerequisites"
    html: bytes


@dataclass(frozen=True)
class Question:
    question: str
    section: str  # the answering section, e.g. "2.5.10"
    style: str = "caller"  # "caller": as a person asks; "model": as an LLM writes a tool query
    # Other sections that answer the question just as well (the manual says it twice); kept rare.
    also: tuple[str, ...] = ()
    id: int = 0  # 1-based position in its file (load_questions sets it); fixes the tuning/held-out split

    @property
    def held_out(self) -> bool:
        """Even ids: the half that search tuning never looked at (BENCH.md reports both halves)."""
        return self.id % 2 == 0

    @property
    def document(self) -> str:
        return ".".join(self.section.split(".")[:2])


def section_number(heading: str) -> str | None:
    match = _NUMBER.match(heading)
    return match.group(1) if match else None


def answers(question: Question, document_title: str, heading: str) -> bool:
    """True when a hit (its document's title and its chunk's heading path) is the passage the question was written
    from."""
    numbers = [section_number(part) or "" for part in heading.split(" > ")]
    for wanted in (question.section, *question.also):
        if section_number(document_title) != ".".join(wanted.split(".")[:2]):
            continue
        if any(n == wanted or n.startswith(wanted + ".") for n in numbers):
            return True
    return False


def _unescape(text: str) -> str:
    import html

    return html.unescape(_TAG.sub("", text)).strip()


def load_corpus(lang: str, chapters: tuple[int, ...] = DEFAULT_CHAPTERS,
                only: frozenset[str] | None = None) -> list[CorpusDocument]:
    """The chapters' numbered sections as documents; `only` keeps just those section numbers ("4.1")."""
    if lang not in LANGUAGES:
        raise ValueError(f"no corpus for language {lang!r}; available: {', '.join(LANGUAGES)}")
    documents: list[CorpusDocument] = []
    for chapter in chapters:
        path = CORPUS_DIR / f"ch{chapter:02d}.{lang}.html"
        if not path.is_file():
            raise CorpusMissingError(f"{path} is missing: install debian-reference-{lang} (make browser)")
        page = path.read_text(encoding="utf-8")
        starts = [m.start() for m in _H2.finditer(page)]
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else page.find('<div class="navfooter">', start)
            fragment = page[start:end if end > 0 else len(page)]
            title_match = _H2_TITLE.search(fragment)
            if title_match is None:
                continue
            title = " ".join(_unescape(title_match.group(1)).split())
            number = section_number(title)
            if number is None or (only is not None and number not in only):
                continue
            html = f"<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>{fragment}</body></html>"
            documents.append(CorpusDocument(section=number, title=title, html=html.encode("utf-8")))
    return documents


def load_questions(lang: str, style: str | None = None) -> list[Question]:
    data = json.loads((QUESTIONS_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    questions = [Question(**{**item, "also": tuple(item.get("also", ())), "id": position})
                 for position, item in enumerate(data, start=1)]
    return [q for q in questions if style is None or q.style == style]


def corpus_available(langs: tuple[str, ...] = LANGUAGES) -> bool:
    return all((CORPUS_DIR / f"ch02.{lang}.html").is_file() for lang in langs)
