"""Turn an uploaded contact list into classified rows.

Every data row of the file comes out exactly once, as one of:

- ``valid``        — phone normalised to E.164, ready to dial;
- ``invalid``      — with the reason (bad number, overlong field, …);
- ``duplicate``    — same E.164 as an earlier valid row (``duplicate_of``);
- ``do_not_call``  — the number is on the org's do-not-call list.

so ``valid + invalid + duplicate + do_not_call == rows``. Blank lines are not
rows; they are counted separately (``blank_rows``).

Memory: rows stream through; what stays is one integer per distinct valid number
(for duplicate detection, ~100 bytes each) and, in a preview, the problems.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from batches.upload_reader import (
    FileFormat,
    RawRow,
    TableInfo,
    UploadError,
    json_scalar,
    open_table,
)
from voiceplatform.phones import PhoneNumberError, normalize_phone, normalize_region

__all__ = [
    "ColumnMapping",
    "ImportedRow",
    "ImportSummary",
    "Preview",
    "RowStatus",
    "UploadError",
    "chunked",
    "classify",
    "import_rows",
    "preview_upload",
    "rows_from_objects",
    "suggest_phone_column",
]

T = TypeVar("T")

# Header names people use for the phone column, compared after folding case and
# dropping spaces, dashes and underscores.
_PHONE_HEADERS = (
    "phone", "phonenumber", "phoneno", "number", "mobile", "mobilenumber", "mobilephone", "cell",
    "cellphone", "tel", "telephone", "msisdn", "to", "contactnumber", "whatsapp",
    "telefono", "teléfono", "téléphone", "telephone", "telefon", "telefonnummer", "handy",
    "celular", "móvil", "movil", "portable", "numero", "número", "cellulare",
)


class RowStatus(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    DO_NOT_CALL = "do_not_call"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which column holds the phone number and which columns become call
    variables. ``variables`` maps column name → variable name; ``None`` means
    every other column, under its own name."""

    phone: str
    variables: Mapping[str, str] | None = None

    def resolve(self, columns: Sequence[str]) -> ColumnMapping:
        """Match names against the file's header (exact, then ignoring case and
        surrounding spaces) and fail clearly on names the file does not have."""
        phone = _match_column(self.phone, columns, "phone")
        if self.variables is None:
            return ColumnMapping(phone, {c: c for c in columns if c != phone})
        resolved: dict[str, str] = {}
        for column, variable in self.variables.items():
            name = _match_column(column, columns, "variable")
            if not variable or not str(variable).strip():
                raise UploadError("bad_mapping", f"column '{name}' is mapped to an empty variable name")
            resolved[name] = str(variable).strip()
        names = list(resolved.values())
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UploadError("bad_mapping", f"variable name(s) {', '.join(dupes)} are used for more than one column")
        return ColumnMapping(phone, resolved)


def _match_column(wanted: str, columns: Sequence[str], role: str) -> str:
    if wanted in columns:
        return wanted
    folded = [c for c in columns if c.strip().casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    shown = ", ".join(f"'{c}'" for c in columns[:30])
    code = "missing_phone_column" if role == "phone" else "bad_mapping"
    raise UploadError(code, f"the {role} column '{wanted}' is not in the file; the columns are {shown}")


def _fold_header(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch not in " _-.#")


def suggest_phone_column(columns: Sequence[str]) -> str | None:
    """The column that looks like the phone number, or None if none does."""
    folded = {_fold_header(c): c for c in columns}
    for alias in _PHONE_HEADERS:
        if alias in folded:
            return folded[alias]
    for column in columns:
        key = _fold_header(column)
        if "phone" in key or "mobile" in key:
            return column
    return None


def _missing_phone_column(columns: Sequence[str]) -> UploadError:
    shown = ", ".join(f"'{c}'" for c in columns[:30])
    hint = ""
    first = columns[0] if columns else ""
    if sum(ch.isdigit() for ch in first) >= 7:
        hint = " The first line looks like a phone number: the file needs a header row (for example 'phone')."
    return UploadError(
        "missing_phone_column",
        f"no phone column found; the columns are {shown}. Choose which column holds the phone number.{hint}",
    )


@dataclass(slots=True)
class ImportedRow:
    row_number: int
    raw_phone: str
    status: RowStatus
    e164: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    duplicate_of: int | None = None


@dataclass(slots=True)
class ImportSummary:
    file_format: str = ""
    encoding: str = ""
    delimiter: str | None = None
    columns: list[str] = field(default_factory=list)
    phone_column: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicate: int = 0
    do_not_call: int = 0
    blank_rows: int = 0

    def count(self, status: RowStatus) -> None:
        self.rows += 1
        if status is RowStatus.VALID:
            self.valid += 1
        elif status is RowStatus.INVALID:
            self.invalid += 1
        elif status is RowStatus.DUPLICATE:
            self.duplicate += 1
        else:
            self.do_not_call += 1

    @property
    def balanced(self) -> bool:
        return self.valid + self.invalid + self.duplicate + self.do_not_call == self.rows

    def as_dict(self) -> dict[str, object]:
        return {
            "format": self.file_format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "columns": list(self.columns),
            "phone_column": self.phone_column,
            "variables": dict(self.variables),
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "do_not_call": self.do_not_call,
            "blank_rows": self.blank_rows,
        }


def classify(
    rows: Iterable[RawRow],
    mapping: ColumnMapping,
    *,
    default_region: str | None,
    do_not_call: Container[str] = frozenset(),
    summary: ImportSummary | None = None,
) -> Iterator[ImportedRow]:
    """Validate each row and yield it with its status. ``mapping`` must already
    be resolved against the columns. ``do_not_call`` holds E.164 strings; any
    container works (a set, or an object doing a lookup)."""
    region = normalize_region(default_region)
    seen: dict[int, int] = {}
    phone_column = mapping.phone
    variables = mapping.variables or {}
    for raw in rows:
        raw_phone = raw.values.get(phone_column, "")
        out = ImportedRow(
            row_number=raw.row_number,
            raw_phone=raw_phone,
            status=RowStatus.INVALID,
            variables={var: raw.values.get(col, "") for col, var in variables.items()},
        )
        if raw.problems:
            out.reason = "; ".join(raw.problems)
        elif phone_column not in raw.values:
            out.reason = f"no '{phone_column}' field"
        else:
            try:
                number = normalize_phone(raw_phone, region)
            except PhoneNumberError as exc:
                out.reason = exc.reason
            else:
                out.e164 = number.e164
                if number.e164 in do_not_call:
                    out.status = RowStatus.DO_NOT_CALL
                    out.reason = "on the do-not-call list"
                else:
                    key = int(number.e164[1:])
                    first = seen.get(key)
                    if first is None:
                        seen[key] = raw.row_number
                        out.status = RowStatus.VALID
                    else:
                        out.status = RowStatus.DUPLICATE
                        out.duplicate_of = first
                        out.reason = f"same number as row {first}"
        if summary is not None:
            summary.count(out.status)
        yield out


def _open_and_map(
    stream: BinaryIO,
    mapping: ColumnMapping | None,
    *,
    filename: str | None,
    file_format: FileFormat | None,
    delimiter: str | None,
) -> tuple[TableInfo, ColumnMapping, Iterator[RawRow]]:
    info, rows = open_table(stream, filename=filename, file_format=file_format, delimiter=delimiter)
    if mapping is None:
        guessed = suggest_phone_column(info.columns)
        if guessed is None:
            raise _missing_phone_column(info.columns)
        mapping = ColumnMapping(guessed)
    resolved = mapping.resolve(info.columns)
    # Pull the first row now so a header-only file fails before anything is
    # written, with its own message.
    first = next(rows, None)
    if first is None:
        if info.file_format == "csv":
            raise UploadError("header_only", "the file has a header row but no data rows")
        raise UploadError("no_rows", "the file contains no rows")
    return info, resolved, itertools.chain([first], rows)


def import_rows(
    stream: BinaryIO,
    mapping: ColumnMapping | None = None,
    *,
    default_region: str | None,
    do_not_call: Container[str] = frozenset(),
    filename: str | None = None,
    file_format: FileFormat | None = None,
    delimiter: str | None = None,
) -> tuple[ImportSummary, Iterator[ImportedRow]]:
    """Open, map and classify an upload lazily.

    Header-level problems raise UploadError immediately; the returned summary
    fills in as the iterator is consumed (totals are final once it is exhausted).
    """
    info, resolved, rows = _open_and_map(
        stream, mapping, filename=filename, file_format=file_format, delimiter=delimiter
    )
    summary = ImportSummary(
        file_format=info.file_format,
        encoding=info.encoding,
        delimiter=info.delimiter,
        columns=list(info.columns),
        phone_column=resolved.phone,
        variables=dict(resolved.variables or {}),
    )

    def run() -> Iterator[ImportedRow]:
        yield from classify(
            rows, resolved, default_region=default_region, do_not_call=do_not_call, summary=summary
        )
        summary.blank_rows = info.blank_rows

    return summary, run()


def rows_from_objects(
    items: Iterable[object], mapping: ColumnMapping | None = None
) -> tuple[list[str], ColumnMapping, Iterator[RawRow]]:
    """Rows from already-parsed JSON (an API request body): same checks as a
    file, without the decoding step. Columns come from the first object."""
    iterator = iter(items)
    first = next(iterator, None)
    if first is None:
        raise UploadError("no_rows", "the request contains no rows")
    if not isinstance(first, dict):
        raise UploadError("unreadable", "each row must be an object such as {\"phone\": \"+14155550123\"}", row=1)
    columns = [str(k) for k in first]
    if mapping is None:
        guessed = suggest_phone_column(columns)
        if guessed is None:
            raise _missing_phone_column(columns)
        mapping = ColumnMapping(guessed)
    resolved = mapping.resolve(columns)

    def convert() -> Iterator[RawRow]:
        for number, item in enumerate(itertools.chain([first], iterator), start=1):
            row = RawRow(number, {})
            if not isinstance(item, dict):
                row.problems.append(f"is a JSON {type(item).__name__}, not an object")
            else:
                for key, value in item.items():
                    row.values[str(key)] = json_scalar(str(key), value, row)
            yield row

    return columns, resolved, convert()


@dataclass(slots=True)
class Preview:
    summary: ImportSummary
    mapping: ColumnMapping
    first_rows: list[ImportedRow]
    problems: list[ImportedRow]
    # Problems beyond ``max_problems`` are counted here, never dropped unseen.
    problems_not_shown: int = 0


def preview_upload(
    stream: BinaryIO,
    mapping: ColumnMapping | None = None,
    *,
    default_region: str | None,
    do_not_call: Container[str] = frozenset(),
    filename: str | None = None,
    file_format: FileFormat | None = None,
    delimiter: str | None = None,
    first_n: int = 20,
    max_problems: int | None = None,
) -> Preview:
    """Read the whole upload once: the first ``first_n`` rows, every invalid,
    duplicate or do-not-call row (up to ``max_problems`` if given, the rest
    counted) and the final totals. Nothing is written anywhere."""
    summary, rows = import_rows(
        stream,
        mapping,
        default_region=default_region,
        do_not_call=do_not_call,
        filename=filename,
        file_format=file_format,
        delimiter=delimiter,
    )
    first_rows: list[ImportedRow] = []
    problems: list[ImportedRow] = []
    hidden = 0
    for row in rows:
        if len(first_rows) < first_n:
            first_rows.append(row)
        if row.status is not RowStatus.VALID:
            if max_problems is None or len(problems) < max_problems:
                problems.append(row)
            else:
                hidden += 1
    resolved = ColumnMapping(summary.phone_column, summary.variables)
    return Preview(summary, resolved, first_rows, problems, hidden)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Fixed-size lists for bulk_create, so an import holds one chunk at a time."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
