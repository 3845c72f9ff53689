"""Streaming readers for uploaded contact lists (CSV and JSON).

The reader turns bytes into ``RawRow`` records — row number plus column → text —
without holding the file in memory: bytes are read in fixed chunks, decoded
incrementally, split into records and handed on one at a time. Limits on row
and field length bound the memory a single malformed record can take.

Row numbers count data records from 1 (the CSV header is not a row; for JSON it
is the position of the object in the array / line stream).
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from voiceplatform.errors import ServiceError

CHUNK_BYTES = 64 * 1024
SNIFF_BYTES = 64 * 1024
# One record (all its physical lines) may not exceed this many characters. A
# longer record is almost always an unterminated quote swallowing the file.
MAX_ROW_CHARS = 64 * 1024
# One cell may not exceed this; such a row is invalid, the import continues.
MAX_FIELD_CHARS = 4 * 1024
MAX_COLUMNS = 200

FileFormat = Literal["csv", "json"]
DELIMITERS: tuple[str, ...] = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Bytes undefined in cp1252; a file containing them can only be Latin-1.
_CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")


class UploadError(ServiceError, ValueError):
    """The file as a whole cannot be imported. ``code`` is stable for API clients;
    the message says what is wrong and, where known, at which row."""

    def __init__(self, code: str, message: str, *, row: int | None = None) -> None:
        super().__init__(message, code=code)
        self.row = row


@dataclass(slots=True)
class RawRow:
    row_number: int
    values: dict[str, str]
    # Cell-level problems found while reading (too long, wrong type). They make
    # the row invalid without stopping the import.
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TableInfo:
    file_format: FileFormat
    encoding: str
    delimiter: str | None
    columns: list[str]
    blank_rows: int = 0

    @property
    def delimiter_name(self) -> str | None:
        return _DELIMITER_NAMES.get(self.delimiter) if self.delimiter else None


# --------------------------------------------------------------------------- bytes


def _read_prefix(stream: BinaryIO, size: int) -> bytes:
    """read() may return short counts on pipes; collect up to ``size`` bytes."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        if not isinstance(chunk, bytes | bytearray):
            raise UploadError("unreadable", "the upload must be read as bytes, not text")
        parts.append(bytes(chunk))
        got += len(chunk)
    return b"".join(parts)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _reject_binary(head: bytes) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise UploadError(
            "unreadable",
            "this is a zip archive (an Excel .xlsx or .ods workbook?); export the sheet as CSV and upload that",
        )
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UploadError("unreadable", "this is an old Excel .xls workbook; export the sheet as CSV and upload that")
    if head.startswith(b"%PDF"):
        raise UploadError("unreadable", "this is a PDF; upload a CSV or JSON file")
    if b"\x00" in head:
        raise UploadError("unreadable", "the file contains NUL bytes and does not look like text (CSV or JSON)")


def detect_encoding(stream: BinaryIO) -> tuple[str, bytes]:
    """Pick the text encoding and return it with the bytes already consumed.

    UTF-8 (with or without BOM) and UTF-16 with BOM are recognised; anything that
    is not valid UTF-8 is read as cp1252 (Excel's "CSV" on Western Windows) or,
    if it uses bytes cp1252 leaves undefined, Latin-1. On a seekable stream the
    whole file is checked for UTF-8 validity (chunked, constant memory) and the
    stream is rewound, so a stray Latin-1 byte near the end is not a crash
    mid-import; on a pipe only the first 64 KiB decide.
    """
    head = _read_prefix(stream, SNIFF_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", head
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", head
    _reject_binary(head)
    if _seekable(stream):
        start = stream.tell() - len(head)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        latin_only = False
        utf8 = True
        chunk = head
        while chunk:
            if utf8:
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError:
                    utf8 = False
            if _CP1252_UNDEFINED.search(chunk):
                latin_only = True
            if not utf8 and latin_only:
                break
            chunk = stream.read(CHUNK_BYTES)
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
        stream.seek(start)
        consumed = _read_prefix(stream, SNIFF_BYTES)
        if utf8:
            return "utf-8", consumed
        return ("latin-1" if latin_only else "cp1252"), consumed
    try:
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=False)
        return "utf-8", head
    except UnicodeDecodeError:
        return ("latin-1" if _CP1252_UNDEFINED.search(head) else "cp1252"), head


def _text_chunks(stream: BinaryIO, encoding: str, head: bytes) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    chunk = head
    while True:
        final = not chunk
        try:
            text = decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            raise UploadError(
                "encoding",
                f"the file is not valid {encoding} text near byte {offset + exc.start}; "
                "save it as UTF-8 and upload it again",
            ) from None
        if text:
            yield text
        if final:
            return
        offset += len(chunk)
        chunk = stream.read(CHUNK_BYTES)


def _first_text(chunks: Iterator[str]) -> tuple[str, Iterator[str]]:
    """Peek at decoded text up to the sniff size; return it and the rest."""
    buf: list[str] = []
    size = 0
    for text in chunks:
        buf.append(text)
        size += len(text)
        if size >= SNIFF_BYTES:
            break
    head = "".join(buf)
    return head, chunks


# ------------------------------------------------------------------------- records


_LINE_END = re.compile(r"\r\n|\n|\r")


def _physical_lines(head: str, chunks: Iterator[str], budget: list[int]) -> Iterator[str]:
    """Split text into lines keeping their endings (what csv.reader needs to
    see quoted newlines). ``budget[0]`` counts characters of the current record;
    the consumer resets it after each record so an endless record is caught
    before it eats memory. Searching only for line ends keeps this linear even
    on a file with no newline at all."""
    buf = head
    exhausted = False
    while True:
        pos = 0
        for match in _LINE_END.finditer(buf):
            # A trailing "\r" may be the first half of "\r\n" split by the chunk.
            if match.group() == "\r" and match.end() == len(buf) and not exhausted:
                break
            line = buf[pos : match.end()]
            pos = match.end()
            budget[0] += len(line)
            if budget[0] > MAX_ROW_CHARS:
                raise UploadError("row_too_long", f"a row is longer than {MAX_ROW_CHARS} characters")
            yield line
        rest = buf[pos:]
        if len(rest) + budget[0] > MAX_ROW_CHARS:
            raise UploadError("row_too_long", f"a row is longer than {MAX_ROW_CHARS} characters")
        if exhausted:
            if rest:
                yield rest
            return
        nxt = next(chunks, None)
        if nxt is None:
            exhausted = True
            buf = rest
        else:
            buf = rest + nxt


def sniff_delimiter(sample: str) -> str:
    """Choose comma, semicolon or tab: the candidate that splits the header into
    the most columns and splits the following lines consistently."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(sample) >= SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of a truncated sample may be partial
    if not lines:
        return ","
    best = ","
    best_score = (-1.0, 0)
    for candidate in DELIMITERS:
        try:
            counts = [len(r) for r in csv.reader(lines, delimiter=candidate)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        header = counts[0]
        consistent = sum(1 for c in counts[1:] if c == header) / max(1, len(counts) - 1)
        score = (consistent, header)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _unique_columns(header: list[str]) -> list[str]:
    columns: list[str] = []
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        clean = name.strip()
        if not clean:
            clean = f"column_{index}"
        key = clean.casefold()
        if key in seen:
            raise UploadError(
                "duplicate_column",
                f"column '{clean}' appears twice in the header (columns {seen[key]} and {index}); rename one",
            )
        seen[key] = index
        columns.append(clean)
    return columns


def _check_field_lengths(row: RawRow) -> None:
    for name, value in row.values.items():
        if len(value) > MAX_FIELD_CHARS:
            row.problems.append(f"field '{name}' is longer than {MAX_FIELD_CHARS} characters")
            row.values[name] = value[:MAX_FIELD_CHARS]


def _csv_rows(
    head: str, chunks: Iterator[str], delimiter: str, info: TableInfo
) -> tuple[list[str], Iterator[RawRow]]:
    budget = [0]
    reader = csv.reader(_physical_lines(head, chunks, budget), delimiter=delimiter, strict=False)
    # csv's own per-field cap is process-global; ours (MAX_ROW_CHARS) is
    # enforced on the lines before csv sees them, so csv's default never trips.
    header: list[str] | None = None
    record = 0
    try:
        for header_candidate in reader:
            budget[0] = 0
            if any(cell.strip() for cell in header_candidate):
                header = header_candidate
                break
    except csv.Error as exc:
        raise UploadError("unreadable", f"the header row cannot be read as CSV: {exc}") from None
    except UploadError as exc:
        if exc.code != "row_too_long":
            raise
        raise UploadError(exc.code, "the header row is longer than the limit; is this really a CSV file?") from None
    if header is None:
        raise UploadError("empty_file", "the file is empty")
    if len(header) > MAX_COLUMNS:
        raise UploadError("too_many_columns", f"the header has {len(header)} columns; at most {MAX_COLUMNS} are allowed")
    if header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    columns = _unique_columns(header)

    def rows() -> Iterator[RawRow]:
        nonlocal record
        width = len(columns)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise UploadError("unreadable", f"row {record + 1} cannot be read as CSV: {exc}", row=record + 1) from None
            except UploadError as exc:
                if exc.code != "row_too_long":
                    raise UploadError(exc.code, f"{exc.message} (row {record + 1})", row=record + 1) from None
                raise UploadError(
                    exc.code,
                    f"row {record + 1} is longer than {MAX_ROW_CHARS} characters "
                    "(an unclosed quote can make the rest of the file one row)",
                    row=record + 1,
                ) from None
            budget[0] = 0
            if not any(cell.strip() for cell in cells):
                # Blank lines and ",,," lines are not contacts; they are counted
                # in TableInfo.blank_rows so the totals still add up.
                info.blank_rows += 1
                continue
            record += 1
            row = RawRow(record, {})
            extra = cells[width:]
            if any(cell.strip() for cell in extra):
                row.problems.append(f"has {len(cells)} fields but the header has {width}")
            for name, cell in zip(columns, cells, strict=False):  # a short row leaves columns unset
                row.values[name] = cell
            _check_field_lengths(row)
            yield row

    return columns, rows()


def json_scalar(name: str, value: object, row: RawRow) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # Phone numbers stored as JSON numbers come back as 14155550123.0.
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, str):
        return value
    row.problems.append(f"field '{name}' is a nested {type(value).__name__}; only text, numbers and booleans are allowed")
    return ""


def _json_values(head: str, chunks: Iterator[str]) -> Iterator[object]:
    """Yield top-level values of a JSON array or of JSON Lines, one at a time."""
    decoder = json.JSONDecoder()
    buf = head.lstrip("\ufeff")
    exhausted = False
    pos = 0
    index = 0

    def more() -> bool:
        nonlocal buf, pos, exhausted
        if exhausted:
            return False
        nxt = next(chunks, None)
        if nxt is None:
            exhausted = True
            return False
        buf = buf[pos:] + nxt
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not more():
                return

    skip_ws()
    if pos >= len(buf):
        raise UploadError("empty_file", "the file is empty")
    array = buf[pos] == "["
    if array:
        pos += 1
    elif buf[pos] != "{":
        raise UploadError("unreadable", "a JSON upload must be an array of objects or one object per line (JSON Lines)")
    first = True
    while True:
        skip_ws()
        if pos >= len(buf):
            if array:
                raise UploadError("unreadable", f"the JSON array is not closed after item {index}", row=index or None)
            return
        if array and buf[pos] == "]":
            pos += 1
            skip_ws()
            if pos < len(buf):
                raise UploadError("unreadable", "unexpected data after the end of the JSON array")
            return
        if array and not first:
            if buf[pos] != ",":
                raise UploadError("unreadable", f"expected ',' after item {index} of the JSON array", row=index)
            pos += 1
            skip_ws()
            if pos >= len(buf):
                raise UploadError("unreadable", f"the JSON array is not closed after item {index}", row=index)
        first = False
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_ROW_CHARS:
                    raise UploadError(
                        "row_too_long", f"item {index + 1} is longer than {MAX_ROW_CHARS} characters", row=index + 1
                    ) from None
                if more():
                    continue
                raise UploadError("unreadable", f"item {index + 1} is not valid JSON: {exc.msg}", row=index + 1) from None
            # A number at the very end of the buffer may continue in the next chunk.
            if end == len(buf) and more():
                continue
            break
        if end - pos > MAX_ROW_CHARS:
            raise UploadError("row_too_long", f"item {index + 1} is longer than {MAX_ROW_CHARS} characters", row=index + 1)
        pos = end
        index += 1
        yield value


def _json_rows(head: str, chunks: Iterator[str], info: TableInfo) -> tuple[list[str], Iterator[RawRow]]:
    values = _json_values(head, chunks)
    first = next(values, None)
    if first is None:
        raise UploadError("no_rows", "the JSON file contains no rows")
    if not isinstance(first, dict):
        raise UploadError(
            "unreadable", "each JSON item must be an object such as {\"phone\": \"+14155550123\", \"name\": \"Ann\"}", row=1
        )
    columns = [str(k) for k in first]
    if len(columns) > MAX_COLUMNS:
        raise UploadError("too_many_columns", f"row 1 has {len(columns)} fields; at most {MAX_COLUMNS} are allowed", row=1)

    def convert(number: int, item: object) -> RawRow:
        row = RawRow(number, {})
        if not isinstance(item, dict):
            row.problems.append(f"is a JSON {type(item).__name__}, not an object")
            return row
        if len(item) > MAX_COLUMNS:
            row.problems.append(f"has {len(item)} fields; at most {MAX_COLUMNS} are allowed")
            return row
        for key, value in item.items():
            name = str(key)
            row.values[name] = json_scalar(name, value, row)
        _check_field_lengths(row)
        return row

    def rows() -> Iterator[RawRow]:
        yield convert(1, first)
        for number, item in enumerate(values, start=2):
            yield convert(number, item)

    return columns, rows()


def guess_format(filename: str | None, head: str) -> FileFormat:
    name = (filename or "").lower()
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "json"
    if name.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    stripped = head.lstrip("\ufeff \t\r\n")
    return "json" if stripped[:1] in ("[", "{") else "csv"


def open_table(
    stream: BinaryIO,
    *,
    filename: str | None = None,
    file_format: FileFormat | None = None,
    delimiter: str | None = None,
) -> tuple[TableInfo, Iterator[RawRow]]:
    """Open an upload and return its description and a lazy iterator of rows.

    Raises UploadError for problems with the file as a whole: unreadable or
    binary, empty, no header, duplicate header names, too many columns; and —
    while iterating — a record longer than MAX_ROW_CHARS or a decoding failure
    on a non-seekable stream.
    """
    if delimiter is not None and delimiter not in DELIMITERS:
        raise UploadError("bad_delimiter", "the delimiter must be a comma, a semicolon or a tab")
    try:
        encoding, raw_head = detect_encoding(stream)
    except OSError as exc:
        raise UploadError("unreadable", f"the file could not be read: {exc.strerror or exc}") from None
    chunks = _text_chunks(stream, encoding, raw_head)
    head, chunks = _first_text(chunks)
    if not head.strip(" \t\r\n\ufeff"):
        raise UploadError("empty_file", "the file is empty")
    fmt = file_format or guess_format(filename, head)
    if fmt == "json":
        info = TableInfo("json", encoding, None, [])
        columns, rows = _json_rows(head, chunks, info)
    else:
        chosen = delimiter or sniff_delimiter(head.lstrip("\ufeff"))
        info = TableInfo("csv", encoding, chosen, [])
        columns, rows = _csv_rows(head.lstrip("\ufeff"), chunks, chosen, info)
    info.columns = columns
    return info, rows
