"""Turn an uploaded file into plain text plus its heading structure.

`extract(data, filename=..., content_type=...)` returns an `ExtractedDocument`:
one canonical `text` string and a list of `Block`s (headings and paragraphs)
whose `start`/`end` are character offsets into that string. Chunk offsets are
expressed against this same text, so a search hit can always be shown in
context.

Every failure is an `ExtractionError` subclass with a stable `code`
(`unsupported_type`, `too_large`, `corrupt`, `encrypted`, `no_text`) and a
message that names the file and the reason; the ingestion task stores both on
the document so the dashboard can say exactly why a file was refused.

Files come from any editor of any organisation, so extraction is bounded
(`ExtractionLimits`): time linear in the input (no backtracking regex rescans a
line), and memory bounded by caps on what a file may expand into — DOCX parts
are inflated as a stream against a per-part and a total cap (a ZIP bomb stops at
the cap), PDFs have a page cap and the same two caps on what their text-bearing
streams (page contents, form XObjects) inflate to, counted before pypdf keeps any
of them, and every format a cap on the extracted text (a CSV repeats its header in
every row). Over a cap the error is `too_large`:
"<file>: file too large: <what>, limit <N> <unit>".
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any, Callable, Literal

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
MiB = 1024 * 1024


@dataclass(frozen=True)
class ExtractionLimits:
    """What one file may cost. The defaults suit a 25 MB upload limit."""

    max_bytes: int = DEFAULT_MAX_BYTES  # the file as stored
    max_archive_parts: int = 1_000  # DOCX: entries in the ZIP (a real document has tens)
    max_part_bytes: int = 64 * MiB  # DOCX: one entry once inflated; PDF: one content stream
    max_inflated_bytes: int = 128 * MiB  # DOCX: all entries once inflated; PDF: all content streams
    max_pages: int = 2_000  # PDF
    max_text_chars: int = 50_000_000  # the extracted text, any format

SourceType = Literal["txt", "md", "pdf", "html", "docx", "csv"]
SUPPORTED_TYPES: tuple[str, ...] = ("txt", "md", "pdf", "html", "docx", "csv")

_EXTENSION_TYPES: dict[str, str] = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".pdf": "pdf",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".csv": "csv",
}
_MIME_TYPES: dict[str, str] = {
    "text/plain": "txt",
    "text/markdown": "md",
    "text/x-markdown": "md",
    "application/pdf": "pdf",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/csv": "csv",
    "application/csv": "csv",
}


class ExtractionError(Exception):
    """A file could not be turned into text. `code` is stable and machine-readable."""

    code: str = "extraction_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedTypeError(ExtractionError):
    code = "unsupported_type"


class FileTooLargeError(ExtractionError):
    code = "too_large"


def too_large(name: str, what: str, limit: int, unit: str = "bytes") -> FileTooLargeError:
    """The one wording of every cap: "<file>: file too large: <what>, limit <N> <unit>"."""
    return FileTooLargeError(f"{name}: file too large: {what}, limit {limit:,} {unit}")


class CorruptFileError(ExtractionError):
    code = "corrupt"


class EncryptedFileError(ExtractionError):
    code = "encrypted"


class NoTextError(ExtractionError):
    code = "no_text"


@dataclass(frozen=True)
class Block:
    """A heading or a paragraph: `text[start:end]` of the document."""

    kind: Literal["heading", "paragraph"]
    start: int
    end: int
    level: int = 0  # heading depth 1..6; 0 for paragraphs
    page: int | None = None  # 1-based PDF page, where known


@dataclass
class ExtractedDocument:
    source_type: str
    text: str
    blocks: list[Block]
    title: str | None = None
    page_count: int | None = None

    def block_text(self, block: Block) -> str:
        return self.text[block.start : block.end]


@dataclass
class _Builder:
    """Accumulates blocks into one text; paragraphs are separated by a blank line."""

    name: str = "document"
    max_chars: int = ExtractionLimits.max_text_chars
    parts: list[str] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    length: int = 0

    def add(self, kind: Literal["heading", "paragraph"], text: str, level: int = 0,
            page: int | None = None) -> None:
        text = _normalise_ws(text)
        if not text:
            return
        if self.length + len(text) + 2 > self.max_chars:
            raise too_large(self.name, f"more than {self.max_chars:,} characters of text", self.max_chars,
                            "characters")
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        self.blocks.append(Block(kind=kind, start=start, end=self.length, level=level, page=page))

    def build(self, source_type: str, name: str, title: str | None = None,
              page_count: int | None = None) -> ExtractedDocument:
        text = "".join(self.parts)
        if not text.strip():
            raise NoTextError(f"{name}: the file contains no extractable text"
                              + (" (a scanned PDF needs OCR first)" if source_type == "pdf" else ""))
        return ExtractedDocument(source_type=source_type, text=text, blocks=self.blocks,
                                 title=title, page_count=page_count)


_INLINE_WS = re.compile(r"[ \t\f\v\u00a0]+")
_MANY_NEWLINES = re.compile(r"\n{2,}")


def _normalise_ws(text: str) -> str:
    # Keep single newlines (lines inside a paragraph, table rows) but collapse runs of
    # blanks; a blank line is our paragraph separator and must not appear inside a block.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [_INLINE_WS.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n", "\n".join(lines)).strip()


def detect_type(filename: str | None, content_type: str | None = None) -> str:
    """The source type from the file name, else the MIME type; UnsupportedTypeError if neither."""
    if filename:
        suffix = PurePosixPath(filename.lower()).suffix
        if suffix in _EXTENSION_TYPES:
            return _EXTENSION_TYPES[suffix]
    if content_type:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime in _MIME_TYPES:
            return _MIME_TYPES[mime]
    shown = filename or content_type or "the upload"
    raise UnsupportedTypeError(
        f"{shown}: unsupported file type; supported: {', '.join('.' + t for t in SUPPORTED_TYPES)}"
    )


def extract(data: bytes, *, filename: str | None = None, content_type: str | None = None,
            source_type: str | None = None, max_bytes: int | None = None,
            limits: ExtractionLimits | None = None) -> ExtractedDocument:
    """Extract text and structure from `data`. Raises an ExtractionError subclass on failure.

    Time is linear in `len(data)`; memory is bounded by `limits` (`max_bytes`, if
    given, overrides `limits.max_bytes`)."""
    limits = limits or ExtractionLimits()
    if max_bytes is not None:
        limits = replace(limits, max_bytes=max_bytes)
    name = filename or "document"
    if len(data) > limits.max_bytes:
        raise too_large(name, f"{len(data):,} bytes", limits.max_bytes)
    kind = source_type or detect_type(filename, content_type)
    if kind not in _EXTRACTORS:
        raise UnsupportedTypeError(f"{name}: unsupported source type {kind!r}")
    if not data:
        raise NoTextError(f"{name}: the file is empty")
    return _EXTRACTORS[kind](data, name, limits)


def extract_text(text: str, *, name: str = "pasted text",
                 limits: ExtractionLimits | None = None) -> ExtractedDocument:
    """Pasted text is treated like a Markdown file: headings are kept if present."""
    return _markdown_from_str(text, name, source_type="text", limits=limits or ExtractionLimits())


# --- plain text & markdown ------------------------------------------------------------

def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (with or without BOM) or UTF-16 with BOM; otherwise the best detected charset."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CorruptFileError(f"{name}: invalid UTF-16 text at byte {exc.start}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        if b"\x00" in data[:4096]:
            raise CorruptFileError(f"{name}: binary content, not text") from utf8_error
        from charset_normalizer import from_bytes  # only needed for legacy encodings

        matches = list(from_bytes(data))
        # Short Latin texts fit several code pages equally well; Windows-1252 is by far
        # the most common legacy encoding of uploaded files, so it wins any tie.
        best = next((m for m in matches if m.encoding == "cp1252"), matches[0] if matches else None)
        if best is None:
            raise CorruptFileError(
                f"{name}: text is not valid UTF-8 (byte {utf8_error.start}) and no other "
                "encoding fits"
            ) from utf8_error
        return str(best)


def _plain_text(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    text = decode_text(data, name)
    builder = _Builder(name, limits.max_text_chars)
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        builder.add("paragraph", para)
    return builder.build("txt", name)


# Markdown is parsed by hand-written scanners, not backtracking regexes: the regexes
# this replaced (`(.+?)[ \t#]*$`, `(\*|_)(?=\S)(.+?)(?<=\S)\1`, `\[([^\]]*)\]\(`) rescanned
# the rest of the line from every candidate position, so one 1 MB line of spaces, `[`
# or `_a ` held a worker for most of an hour. Each scanner below looks at every
# character a bounded number of times (knowledge/tests/test_hostile_ingest.py checks
# them against the old regexes as an oracle and on megabyte lines).
_ATX_OPEN = re.compile(r" {0,3}(#{1,6})([ \t]+)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_EMPHASIS_CHAR = re.compile(r"[*_`]")
_EMPHASIS_DELIMITERS = ("**", "__", "*", "_", "`")  # longest first, as CommonMark reads them


class _NextFinder:
    """The first occurrence of `needle` at or after a position, for positions asked in
    non-decreasing order. A found (or missing) occurrence answers every later question
    up to it, so all the questions together scan the text once."""

    def __init__(self, text: str, needle: str, *, after_non_space: bool = False) -> None:
        self.text = text
        self.needle = needle
        self.after_non_space = after_non_space  # the occurrence must follow a non-space
        self.found = -2  # -2: not searched yet, -1: none from the last position on

    def __call__(self, start: int) -> int:
        if self.found == -1 or self.found >= start:
            return self.found
        found = self.text.find(self.needle, start)
        while found > 0 and self.after_non_space and self.text[found - 1].isspace():
            found = self.text.find(self.needle, found + 1)
        self.found = found
        return found


def _atx_heading(line: str) -> tuple[int, str] | None:
    """`# Title ##` → (1, "Title"): the level and the text without the closing hashes."""
    opening = _ATX_OPEN.match(line)
    if opening is None:
        return None
    level = len(opening.group(1))
    body = opening.end()
    if body == len(line):
        # Only blanks after the hashes: the text is the last blank (an empty heading),
        # as long as one blank is left to separate it from the hashes.
        return (level, line[-1]) if len(opening.group(2)) > 1 else None
    end = max(len(line.rstrip(" \t#")), body + 1)
    return level, line[body:end]


def _strip_links(line: str) -> str:
    """`[text](target)` and `![alt](src)` → text / alt."""
    closing_bracket = _NextFinder(line, "]")
    closing_paren = _NextFinder(line, ")")
    out: list[str] = []
    emitted = scan = 0
    while (opening := line.find("[", scan)) != -1:
        start = opening - 1 if opening > scan and line[opening - 1] == "!" else opening
        label_end = closing_bracket(opening + 1)
        if label_end == -1:
            break  # no `]` left: no later `[` can start a link either
        if line.startswith("(", label_end + 1):
            target_end = closing_paren(label_end + 2)
            if target_end != -1:
                out.append(line[emitted:start])
                out.append(line[opening + 1:label_end])
                emitted = scan = target_end + 1
                continue
        scan = opening + 1
    out.append(line[emitted:])
    return "".join(out)


def _strip_emphasis(line: str) -> str:
    """`**bold**`, `__bold__`, `*em*`, `_em_`, `` `code` `` → their text. A delimiter
    opens before a non-blank and closes after one, at its first such occurrence."""
    closers = {d: _NextFinder(line, d, after_non_space=True) for d in _EMPHASIS_DELIMITERS}
    out: list[str] = []
    emitted = scan = 0
    while (found := _EMPHASIS_CHAR.search(line, scan)) is not None:
        at = found.start()
        for delimiter in _EMPHASIS_DELIMITERS:
            body = at + len(delimiter)
            if not line.startswith(delimiter, at) or body >= len(line) or line[body].isspace():
                continue
            close = closers[delimiter](body + 1)
            if close == -1:
                continue
            out.append(line[emitted:at])
            out.append(line[body:close])
            emitted = scan = close + len(delimiter)
            break
        else:
            scan = at + 1
    out.append(line[emitted:])
    return "".join(out)


def _strip_inline_md(line: str) -> str:
    # Link targets and emphasis markers are noise for both embedding and full-text search.
    # Inline markup never spans lines.
    return "\n".join(_strip_emphasis(_strip_links(part)) for part in line.split("\n"))


def _markdown(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    return _markdown_from_str(decode_text(data, name), name, source_type="md", limits=limits)


def _markdown_from_str(text: str, name: str, source_type: str, limits: ExtractionLimits) -> ExtractedDocument:
    builder = _Builder(name, limits.max_text_chars)
    paragraph: list[str] = []
    title: str | None = None
    in_fence = False

    def flush() -> None:
        if paragraph:
            builder.add("paragraph", "\n".join(paragraph))
            paragraph.clear()

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE.match(raw):
            # A code block stays one paragraph, fences dropped, so '#' comments in code
            # are never mistaken for headings.
            flush()
            in_fence = not in_fence
            continue
        if in_fence:
            paragraph.append(raw)
            continue
        heading = _atx_heading(raw)
        if heading:
            flush()
            level = heading[0]
            heading_text = _strip_inline_md(heading[1])
            builder.add("heading", heading_text, level=level)
            title = title or (heading_text if level == 1 else None)
            continue
        setext = _SETEXT_UNDERLINE.match(raw)
        if setext and len(paragraph) == 1:
            level = 1 if setext.group(1).startswith("=") else 2
            heading_text = _strip_inline_md(paragraph.pop())
            builder.add("heading", heading_text, level=level)
            title = title or (heading_text if level == 1 else None)
            continue
        if not raw.strip():
            flush()
            continue
        paragraph.append(_strip_inline_md(raw))
    flush()
    return builder.build(source_type, name, title=title)


# --- HTML --------------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "head", "iframe", "object"}
_BLOCK_TAGS = {
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "li", "ul",
    "ol", "dl", "dt", "dd", "table", "tr", "blockquote", "pre", "figure", "figcaption",
    "form", "fieldset", "address", "hr", "details", "summary", "body", "html",
}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_VOID_TAGS = {"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "embed",
              "source", "track", "wbr"}


class _HTMLText:
    """An lxml parser target: receives start/end/data events and builds the blocks.

    libxml2's HTML parser is used instead of `html.parser`, whose recovery from an
    unfinished tag rescans the rest of the input (`"<a" * n`: 80 KB took 12 s, so a
    1 MB page would hold a worker for half an hour); libxml2 reads the input once."""

    def __init__(self, builder: _Builder) -> None:
        self.builder = builder
        self.buffer: list[str] = []
        self.skip_depth = 0
        self.heading_level = 0
        self.in_title = False
        self.title_parts: list[str] = []

    def _flush(self) -> None:
        text = "".join(self.buffer)
        self.buffer.clear()
        if self.heading_level:
            self.builder.add("heading", text.replace("\n", " "), level=self.heading_level)
        else:
            self.builder.add("paragraph", text)

    def start(self, tag: str, attrs: object) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP_TAGS:
            if tag not in _VOID_TAGS:
                self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag in _HEADING_TAGS:
            self._flush()
            self.heading_level = _HEADING_TAGS[tag]
        elif tag in _BLOCK_TAGS:
            self._flush()
        elif tag == "br":
            self.buffer.append("\n")
        elif tag in ("td", "th"):
            self.buffer.append(" | " if self.buffer and self.buffer[-1] != "\n" else "")

    def end(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in _HEADING_TAGS:
            self._flush()
            self.heading_level = 0
        elif tag == "tr":
            self.buffer.append("\n")
        elif tag in _BLOCK_TAGS:
            self._flush()

    def data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.skip_depth:
            return
        # Source newlines inside HTML are layout, not structure.
        self.buffer.append(_ANY_WS.sub(" ", data))

    def close(self) -> None:
        self._flush()


_ANY_WS = re.compile(r"\s+")


def _html(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    from lxml import etree

    text = _decode_html(data, name)
    target = _HTMLText(_Builder(name, limits.max_text_chars))
    parser = etree.HTMLParser(target=target, recover=True, no_network=True, remove_comments=True,
                              remove_pis=True)
    try:
        parser.feed(text)
        parser.close()
    except ExtractionError:
        raise
    except (etree.LxmlError, ValueError) as exc:
        raise CorruptFileError(f"{name}: the HTML cannot be read ({exc})") from exc
    title = _normalise_ws("".join(target.title_parts)) or None
    return target.builder.build("html", name, title=title)


_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_\-]+)", re.I)


def _decode_html(data: bytes, name: str) -> str:
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        try:
            return data.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong <meta charset> is common; fall back to detection
    return decode_text(data, name)


# --- PDF ---------------------------------------------------------------------------------

def _pdf(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError, PdfStreamError

    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise CorruptFileError(f"{name}: not a PDF file (missing %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # An owner-password-only PDF opens with the empty user password; anything
            # else needs a password we do not have.
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, FileNotDecryptedError, PdfReadError) as exc:
                raise EncryptedFileError(f"{name}: the PDF is encrypted ({exc})") from exc
            if not opened:
                raise EncryptedFileError(f"{name}: the PDF is password-protected")
        builder = _Builder(name, limits.max_text_chars)
        pages = reader.pages
        page_count = len(pages)
        if page_count > limits.max_pages:
            raise too_large(name, f"{page_count:,} pages", limits.max_pages, "pages")
        _check_pdf_streams(pages, name, limits)
        for number, page in enumerate(pages, start=1):
            page_text = page.extract_text() or ""
            for para in re.split(r"\n\s*\n", page_text):
                builder.add("paragraph", para, page=number)
        title = None
        try:
            meta = reader.metadata
            title = (meta.title or None) if meta else None
        except (PdfReadError, KeyError, TypeError):
            title = None  # broken metadata must not fail an otherwise readable file
    except ExtractionError:
        raise
    except FileNotDecryptedError as exc:
        raise EncryptedFileError(f"{name}: the PDF is encrypted") from exc
    except LimitReachedError as exc:
        # pypdf's own caps (a stream inflating past 75 MB, a huge /ToUnicode map, ...).
        raise FileTooLargeError(f"{name}: file too large: {exc}") from exc
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, AssertionError, RecursionError, OSError) as exc:
        raise CorruptFileError(f"{name}: the PDF is damaged and cannot be read ({exc})") from exc
    return builder.build("pdf", name, title=title, page_count=page_count)


def _check_pdf_streams(pages: Any, name: str, limits: ExtractionLimits) -> None:
    """Refuse a PDF whose text-bearing streams inflate past the caps, before pypdf reads
    them for text: it caches each decoded stream (75 MB each at most, by its own cap), so
    a few hundred kilobytes of deflated blanks, one stream per page, would otherwise hold
    gigabytes. Page contents and the form XObjects they draw (recursively) are counted
    once each; Flate streams are inflated as a stream and never kept; images and fonts,
    which text extraction does not decode, are not counted."""
    from pypdf.errors import LimitReachedError, PdfReadError
    from pypdf.filters import decode_stream_data
    from pypdf.generic import ArrayObject, DictionaryObject, StreamObject

    seen: set[tuple[int, int] | int] = set()
    total = 0

    def count(item: Any) -> None:
        nonlocal total
        ref = getattr(item, "indirect_reference", None) or (item if hasattr(item, "idnum") else None)
        key = (ref.idnum, ref.generation) if ref is not None else id(item)
        if key in seen:
            return
        seen.add(key)
        stream = item.get_object()
        if isinstance(stream, ArrayObject):
            for part in stream:
                count(part)
            return
        if not isinstance(stream, StreamObject):
            return
        try:
            size = _inflated_size(stream, limits.max_part_bytes, decode_stream_data)
        except LimitReachedError:
            raise
        except (NotImplementedError, PdfReadError, ValueError, KeyError, TypeError, AttributeError):
            return  # not decodable here: text extraction treats it as it always has
        if size > limits.max_part_bytes:
            raise too_large(name, f"a PDF content stream inflates to more than {limits.max_part_bytes:,} bytes",
                            limits.max_part_bytes)
        total += size
        if total > limits.max_inflated_bytes:
            raise too_large(name, f"the PDF's content streams inflate to more than {limits.max_inflated_bytes:,} "
                                  f"bytes", limits.max_inflated_bytes)
        forms(stream.get("/Resources"))

    def forms(resources: Any) -> None:
        resources = resources.get_object() if resources is not None else None
        xobjects = resources.get("/XObject") if isinstance(resources, DictionaryObject) else None
        xobjects = xobjects.get_object() if xobjects is not None else None
        if isinstance(xobjects, DictionaryObject):
            for ref in xobjects.values():
                target = ref.get_object()
                if isinstance(target, StreamObject) and target.get("/Subtype") == "/Form":
                    count(ref)

    for page in pages:
        if "/Contents" in page:
            count(page.raw_get("/Contents"))
        forms(page.get("/Resources"))


def _inflated_size(stream: Any, cap: int, decode: Callable[[Any], bytes]) -> int:
    """Bytes ``stream`` decodes to, or ``cap + 1`` once past ``cap``. A plain Flate stream
    is inflated piece by piece and dropped; other filters decode through pypdf (capped by
    pypdf's own limits, a LimitReachedError)."""
    filters = stream.get("/Filter")
    if filters is None:
        return len(stream._data)
    only = filters[0] if hasattr(filters, "__len__") and not isinstance(filters, str) and len(filters) == 1 else filters
    if only == "/FlateDecode" and stream.get("/DecodeParms") is None:
        inflater = zlib.decompressobj()
        size, pending = 0, stream._data
        try:
            while pending and size <= cap:
                size += len(inflater.decompress(pending, 1024 * 1024))
                pending = inflater.unconsumed_tail
            if not pending and size <= cap:
                size += len(inflater.flush())
        except zlib.error:
            pass  # damaged past here: pypdf recovers what it can, at most what inflated so far
        return size
    return len(decode(stream))


# --- DOCX --------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^heading (\d)$", re.I)


def _check_archive(data: bytes, name: str, limits: ExtractionLimits) -> None:
    """Refuse a ZIP that would inflate past the caps, before python-docx reads any of
    it (it reads whole parts into memory). Declared sizes are checked first (cheap);
    then every part is inflated as a stream and counted, so an archive whose headers
    lie is stopped at the cap too, never inflated in full."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise CorruptFileError(f"{name}: the DOCX file is damaged ({exc})") from exc
    parts = archive.infolist()
    if len(parts) > limits.max_archive_parts:
        raise too_large(name, f"{len(parts):,} parts in the DOCX archive", limits.max_archive_parts, "parts")

    def part_label(info: zipfile.ZipInfo) -> str:
        return repr(info.filename[:100])

    declared = 0
    for info in parts:
        if info.file_size > limits.max_part_bytes:
            raise too_large(name, f"DOCX part {part_label(info)} inflates to {info.file_size:,} bytes",
                            limits.max_part_bytes)
        declared += info.file_size
    if declared > limits.max_inflated_bytes:
        raise too_large(name, f"DOCX parts inflate to {declared:,} bytes", limits.max_inflated_bytes)
    total = 0
    try:
        for info in parts:
            size = 0
            with archive.open(info) as member:
                while piece := member.read(256 * 1024):
                    size += len(piece)
                    total += len(piece)
                    if size > limits.max_part_bytes:
                        raise too_large(name, f"DOCX part {part_label(info)} inflates to more than "
                                              f"{limits.max_part_bytes:,} bytes", limits.max_part_bytes)
                    if total > limits.max_inflated_bytes:
                        raise too_large(name, f"DOCX parts inflate to more than {limits.max_inflated_bytes:,} bytes",
                                        limits.max_inflated_bytes)
    except ExtractionError:
        raise
    except RuntimeError as exc:  # an encrypted part
        raise EncryptedFileError(f"{name}: the DOCX file is encrypted ({exc})") from exc
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, ValueError, OSError) as exc:
        raise CorruptFileError(f"{name}: the DOCX file is damaged ({exc})") from exc


def _docx(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    if not data.startswith(b"PK"):
        raise CorruptFileError(f"{name}: not a DOCX file (not a ZIP container)")
    _check_archive(data, name, limits)
    try:
        import docx
        from docx.opc.exceptions import PackageNotFoundError

        try:
            document = docx.Document(io.BytesIO(data))
        except PackageNotFoundError as exc:
            raise CorruptFileError(f"{name}: not a Word document ({exc})") from exc
        builder = _Builder(name, limits.max_text_chars)
        title = document.core_properties.title or None
        body = document.element.body
        # Walk the body in order so tables stay where they were in the document.
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        for child in body.iterchildren():
            tag = child.tag.rsplit("}", 1)[-1]
            if tag == "p":
                para = Paragraph(child, document)
                style = (para.style.name if para.style is not None else "") or ""
                match = _HEADING_STYLE.match(style)
                if style.lower() == "title":
                    builder.add("heading", para.text, level=1)
                    title = title or para.text.strip() or None
                elif match:
                    builder.add("heading", para.text, level=min(int(match.group(1)), 6))
                else:
                    builder.add("paragraph", para.text)
            elif tag == "tbl":
                table = Table(child, document)
                rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
                builder.add("paragraph", "\n".join(rows))
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, AttributeError, OSError) as exc:
        raise CorruptFileError(f"{name}: the DOCX file is damaged ({exc})") from exc
    return builder.build("docx", name, title=title)


# --- CSV ---------------------------------------------------------------------------------

def _csv(data: bytes, name: str, limits: ExtractionLimits) -> ExtractedDocument:
    text = decode_text(data, name)
    sample = text[:8192]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    # The header is repeated in every row's text ("column: value"), so a CSV with long
    # column names and many short rows expands a lot: the text cap bounds it.
    builder = _Builder(name, limits.max_text_chars)
    try:
        header = next(reader, None)
        if header is None:
            raise NoTextError(f"{name}: the CSV file is empty")
        header = [h.strip() or f"column {i + 1}" for i, h in enumerate(header)]
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise CorruptFileError(
                    f"{name}: row {reader.line_num} has {len(row)} fields but the header has "
                    f"{len(header)}"
                )
            # "column: value" keeps each value next to its meaning for search.
            pairs = [f"{header[i]}: {cell.strip()}" for i, cell in enumerate(row) if cell.strip()]
            builder.add("paragraph", "; ".join(pairs))
    except csv.Error as exc:
        raise CorruptFileError(f"{name}: malformed CSV at line {reader.line_num}: {exc}") from exc
    if not builder.blocks:
        raise NoTextError(f"{name}: the CSV file has a header but no data rows")
    return builder.build("csv", name)


_EXTRACTORS: dict[str, Callable[[bytes, str, ExtractionLimits], ExtractedDocument]] = {
    "txt": _plain_text,
    "md": _markdown,
    "html": _html,
    "pdf": _pdf,
    "docx": _docx,
    "csv": _csv,
}
