"""Bad-input suite for contact-list uploads (pure Python, no database)."""

from __future__ import annotations

import codecs
import io
import json
import tracemalloc
from collections.abc import Iterator

import pytest

from batches.importing import (
    ColumnMapping,
    RowStatus,
    UploadError,
    chunked,
    classify,
    import_rows,
    preview_upload,
    rows_from_objects,
    suggest_phone_column,
)
from batches.upload_reader import MAX_FIELD_CHARS, MAX_ROW_CHARS, sniff_delimiter


def run(data: bytes, mapping: ColumnMapping | None = None, region: str | None = "US", dnc: set[str] | None = None, **kw: object):
    summary, rows = import_rows(io.BytesIO(data), mapping, default_region=region, do_not_call=dnc or set(), **kw)
    out = list(rows)
    assert summary.balanced
    assert summary.rows == len(out)
    return summary, out


class Pipe(io.RawIOBase):
    """A non-seekable byte stream (like a socket upload) that returns short reads."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self.data = data
        self.pos = 0
        self.step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        n = self.step if size < 0 else min(size, self.step)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk


# ---------------------------------------------------------------- encodings

NAMES = "phone,name\n+14155550123,Zoë Ñúñez\n+14155550124,François\n"


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (NAMES.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + NAMES.encode("utf-8"), "utf-8-sig"),
        (NAMES.encode("latin-1"), "cp1252"),
        (NAMES.encode("cp1252"), "cp1252"),
        (NAMES.encode("utf-16"), "utf-16"),
    ],
)
def test_encodings_are_detected_and_text_decoded(encoded: bytes, encoding: str) -> None:
    summary, rows = run(encoded)
    assert summary.encoding == encoding
    assert summary.columns == ["phone", "name"]
    assert [r.variables["name"] for r in rows] == ["Zoë Ñúñez", "François"]
    assert summary.valid == 2


def test_bytes_undefined_in_cp1252_fall_back_to_latin1() -> None:
    data = b"phone,name\n+14155550123,A\x81B\n"
    summary, rows = run(data)
    assert summary.encoding == "latin-1"
    assert rows[0].variables["name"] == "A\x81B"


def test_latin1_byte_after_first_64k_is_found_on_seekable_upload() -> None:
    lines = [f"+1415555{i:04d},plain" for i in range(1000, 9000)]
    data = ("phone,name\n" + "\n".join(lines) + "\n+14155550000,Jos\xe9\n").encode("latin-1")
    assert len(data) > 64 * 1024
    summary, rows = run(data)
    assert summary.encoding == "cp1252"
    assert rows[-1].variables["name"] == "José"


def test_invalid_utf8_late_in_a_pipe_is_a_clear_error() -> None:
    lines = [f"+1415555{i:04d},plain" for i in range(1000, 9000)]
    data = ("phone,name\n" + "\n".join(lines) + "\n+14155550000,Jos\xe9\n").encode("latin-1")
    summary, rows = import_rows(Pipe(data), default_region="US")
    with pytest.raises(UploadError) as exc:
        list(rows)
    assert exc.value.code == "encoding"
    assert "not valid utf-8" in exc.value.message and "UTF-8" in exc.value.message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-xlsx", "Excel .xlsx"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1old-xls", ".xls"),
        (b"%PDF-1.7\n", "PDF"),
        (b"phone\x00,name\n\x00\x01\x02", "NUL"),
    ],
)
def test_binary_files_are_unreadable_with_a_reason(data: bytes, needle: str) -> None:
    with pytest.raises(UploadError) as exc:
        run(data)
    assert exc.value.code == "unreadable"
    assert needle in exc.value.message


def test_text_stream_instead_of_bytes_is_rejected() -> None:
    with pytest.raises(UploadError, match="bytes"):
        import_rows(io.StringIO("phone\n+14155550123\n"), default_region="US")  # type: ignore[arg-type]


def test_read_failure_is_reported() -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    with pytest.raises(UploadError) as exc:
        import_rows(Broken(), default_region="US")
    assert exc.value.code == "unreadable" and "Input/output error" in exc.value.message


# ---------------------------------------------------------------- delimiters


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), (";", "semicolon"), ("\t", "tab")])
def test_delimiters_are_detected(delimiter: str, name: str) -> None:
    text = delimiter.join(["phone", "first name", "city"]) + "\r\n"
    text += delimiter.join(["+1 415 555 0123", "Ann", "Paris, France" if delimiter != "," else '"Paris, France"']) + "\r\n"
    summary, rows = run(text.encode())
    assert summary.delimiter == delimiter
    assert rows[0].variables == {"first name": "Ann", "city": "Paris, France"}
    assert rows[0].e164 == "+14155550123"


def test_semicolon_file_with_commas_inside_values_is_not_mistaken_for_csv() -> None:
    text = "name;phone;note\n" + "".join(f"Doe, J{i};+1415555{i:04d};a, b, c\n" for i in range(1000, 1020))
    assert sniff_delimiter(text) == ";"


def test_single_column_file() -> None:
    summary, rows = run(b"phone\n+14155550123\n4155550124\n")
    assert summary.valid == 2 and rows[1].e164 == "+14155550124"


def test_explicit_delimiter_overrides_and_bad_one_is_rejected() -> None:
    summary, _ = run(b"phone;name\n+14155550123;a\n", delimiter=";")
    assert summary.delimiter == ";"
    with pytest.raises(UploadError, match="comma, a semicolon or a tab"):
        run(b"phone|name\n", delimiter="|")


def test_quoted_newlines_and_crlf_split_across_chunks() -> None:
    note = "line one\r\nline two"
    body = "".join(f'+1415555{i:04d},"{note}"\r\n' for i in range(1000, 6000))
    summary, rows = run(("phone,note\r\n" + body).encode())
    assert summary.rows == 5000 and summary.valid == 5000
    assert all(r.variables["note"] == note for r in rows)


# ---------------------------------------------------------------- empty / header-only / columns


@pytest.mark.parametrize("data", [b"", b"   \n\r\n\t", codecs.BOM_UTF8, b"\n\n,,,\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(UploadError) as exc:
        run(data)
    assert exc.value.code == "empty_file"
    assert "empty" in exc.value.message


@pytest.mark.parametrize("data", [b"phone,name\n", b"phone,name", b"phone,name\r\n\r\n,\r\n"])
def test_header_only_file(data: bytes) -> None:
    with pytest.raises(UploadError) as exc:
        run(data)
    assert exc.value.code == "header_only"
    assert "no data rows" in exc.value.message


def test_empty_json_array() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"  [ ]  ", filename="list.json")
    assert exc.value.code == "no_rows"


def test_missing_phone_column_lists_the_columns() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"name,city\nAnn,Paris\n")
    assert exc.value.code == "missing_phone_column"
    assert "'name', 'city'" in exc.value.message


def test_headerless_file_gets_a_hint() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"+14155550123,Ann\n+14155550124,Bob\n")
    assert "header row" in exc.value.message


def test_mapped_column_not_in_file() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"tel,name\n+14155550123,Ann\n", ColumnMapping("Mobile"))
    assert exc.value.code == "missing_phone_column"
    assert "'Mobile'" in exc.value.message and "'tel', 'name'" in exc.value.message


def test_mapping_is_case_insensitive_and_renames_variables() -> None:
    mapping = ColumnMapping(" PHONE ", {"First Name": "first_name"})
    summary, rows = run(b"Phone,First Name,Secret\n+14155550123,Ann,x\n", mapping)
    assert summary.phone_column == "Phone"
    assert rows[0].variables == {"first_name": "Ann"}


def test_mapping_rejects_duplicate_variable_names() -> None:
    with pytest.raises(UploadError, match="first"):
        run(b"phone,a,b\n+14155550123,1,2\n", ColumnMapping("phone", {"a": "first", "b": "first"}))


def test_duplicate_header_names_are_an_error() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"phone,Name,name\n+14155550123,a,b\n")
    assert exc.value.code == "duplicate_column" and "columns 2 and 3" in exc.value.message


def test_blank_header_cells_get_positional_names() -> None:
    summary, rows = run(b"phone,,city\n+14155550123,x,Rome\n")
    assert summary.columns == ["phone", "column_2", "city"]
    assert rows[0].variables["column_2"] == "x"


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["Name", "Phone Number"], "Phone Number"),
        (["nom", "Téléphone"], "Téléphone"),
        (["MSISDN", "x"], "MSISDN"),
        (["name", "home_phone_2"], "home_phone_2"),
        (["name", "city"], None),
    ],
)
def test_phone_column_suggestion(columns: list[str], expected: str | None) -> None:
    assert suggest_phone_column(columns) == expected


# ---------------------------------------------------------------- rows: lengths and shapes


def test_overlong_field_makes_only_that_row_invalid() -> None:
    long_note = "x" * (MAX_FIELD_CHARS + 1)
    data = f"phone,note\n+14155550123,{long_note}\n+14155550124,ok\n".encode()
    summary, rows = run(data)
    assert (summary.invalid, summary.valid) == (1, 1)
    assert rows[0].row_number == 1
    assert "longer than" in rows[0].reason and "'note'" in rows[0].reason


def test_overlong_row_stops_with_its_row_number() -> None:
    data = b"phone,note\n+14155550123,a\n+14155550124," + b"y" * (MAX_ROW_CHARS + 10) + b"\n"
    _, rows = import_rows(io.BytesIO(data), default_region="US")
    first = next(rows)
    assert first.status is RowStatus.VALID
    with pytest.raises(UploadError) as exc:
        next(rows)
    assert exc.value.code == "row_too_long" and exc.value.row == 2
    assert "row 2" in exc.value.message


def test_unclosed_quote_is_caught_not_swallowing_memory() -> None:
    data = b'phone,note\n+14155550123,"never closed\n' + b"+14155550124,more\n" * 20000
    with pytest.raises(UploadError) as exc:
        run(data)
    assert "unclosed quote" in exc.value.message and exc.value.row == 1


def test_huge_header_line_is_an_error() -> None:
    with pytest.raises(UploadError) as exc:
        run(b"phone" + b"a" * (MAX_ROW_CHARS + 5))
    assert exc.value.code == "row_too_long"


def test_too_many_columns() -> None:
    header = ",".join(["phone"] + [f"c{i}" for i in range(300)])
    with pytest.raises(UploadError) as exc:
        run((header + "\n+14155550123\n").encode())
    assert exc.value.code == "too_many_columns"


def test_short_rows_are_padded_and_extra_fields_flagged() -> None:
    summary, rows = run(b"phone,name,city\n+14155550123,Ann\n+14155550124,Bob,Rome,EXTRA\n+14155550125,Cy,Oslo,,\n")
    assert rows[0].status is RowStatus.VALID and rows[0].variables == {"name": "Ann", "city": ""}
    assert rows[1].status is RowStatus.INVALID and "4 fields but the header has 3" in rows[1].reason
    assert rows[2].status is RowStatus.VALID  # trailing empty cells are export noise
    assert summary.rows == 3


def test_blank_lines_are_counted_not_lost() -> None:
    summary, rows = run(b"phone\n\n+14155550123\n,\n\n+14155550124\n")
    assert summary.rows == 2 and summary.blank_rows == 3
    assert [r.row_number for r in rows] == [1, 2]


# ---------------------------------------------------------------- classification


def test_every_row_is_classified_and_totals_add_up() -> None:
    data = (
        "phone,name\n"
        "+14155550123,valid\n"
        "not a number,invalid\n"
        "(415) 555-0123,duplicate of 1\n"
        "+14155550199,dnc\n"
        ",empty phone\n"
        "+14155550124,valid 2\n"
    ).encode()
    summary, rows = run(data, dnc={"+14155550199"})
    statuses = [r.status for r in rows]
    assert statuses == [
        RowStatus.VALID,
        RowStatus.INVALID,
        RowStatus.DUPLICATE,
        RowStatus.DO_NOT_CALL,
        RowStatus.INVALID,
        RowStatus.VALID,
    ]
    assert rows[2].duplicate_of == 1 and rows[2].reason == "same number as row 1"
    assert rows[4].reason == "phone number is empty"
    assert (summary.valid, summary.invalid, summary.duplicate, summary.do_not_call) == (2, 2, 1, 1)


def test_do_not_call_wins_over_duplicate() -> None:
    _, rows = run(b"phone\n+14155550199\n415-555-0199\n", dnc={"+14155550199"})
    assert [r.status for r in rows] == [RowStatus.DO_NOT_CALL, RowStatus.DO_NOT_CALL]


def test_do_not_call_accepts_any_container() -> None:
    class Lookup:
        def __init__(self) -> None:
            self.asked: list[str] = []

        def __contains__(self, item: object) -> bool:
            self.asked.append(str(item))
            return item == "+14155550124"

    lookup = Lookup()
    summary, rows = import_rows(io.BytesIO(b"phone\n+14155550123\n+14155550124\n"), default_region="US", do_not_call=lookup)
    assert [r.status for r in rows] == [RowStatus.VALID, RowStatus.DO_NOT_CALL]
    assert lookup.asked == ["+14155550123", "+14155550124"]


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 (415) 555-0123", "US", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415.555.0123", "US", "+14155550123"),
        ("415 555 0123", "US", "+14155550123"),
        ("1-415-555-0123", "US", "+14155550123"),
        ("14155550123", "US", "+14155550123"),
        ("011 44 20 7946 0958", "US", "+442079460958"),
        ("tel:+1-415-555-0123", "DE", "+14155550123"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("00 44 7911 123456", "FR", "+447911123456"),
        ("447911123456", "GB", "+447911123456"),
        ("0171 1234567", "DE", "+491711234567"),
        ("+49 (0)171 1234567", "US", "+491711234567"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", "US", "+33612345678"),
        ("0412 345 678", "AU", "+61412345678"),
        ("98765 43210", "IN", "+919876543210"),
        ("+91-98765-43210", "US", "+919876543210"),
        ("  +14155550123  ", None, "+14155550123"),
        ("+1\u00a0415\u00a0555\u00a00123", "US", "+14155550123"),
        ("＋１ ４１５ ５５５ ０１２３", "US", "+14155550123"),
    ],
)
def test_common_national_and_international_formats(raw: str, region: str | None, e164: str) -> None:
    data = ("phone\n" + f'"{raw}"' + "\n").encode()
    _, rows = run(data, region=region)
    assert rows[0].status is RowStatus.VALID, rows[0].reason
    assert rows[0].e164 == e164


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("", "US", "phone number is empty"),
        ("hello", "US", "not a phone number"),
        ("4.15555E+09", "US", "scientific notation"),
        ("415 555 0123", None, "no country code and no default country"),
        ("555-0123", "US", "local-only number"),
        ("+1 415 555", "US", "too short"),
        ("+1 415 555 0123 4567 89", "US", "too long"),
        ("+999 1234567", "US", "unknown or missing country code"),
        ("(415) 555-0123 x12", "US", "extension (12)"),
        ("+1 200 555 0123", "US", "not a valid number for"),
    ],
)
def test_invalid_numbers_say_why(raw: str, region: str | None, reason: str) -> None:
    _, rows = run(("phone,name\n" + f'"{raw}",Ann\n').encode(), region=region)
    assert rows[0].status is RowStatus.INVALID
    assert reason in rows[0].reason
    assert rows[0].raw_phone == raw


def test_bad_default_region_is_rejected() -> None:
    with pytest.raises(ValueError, match="'XX' is not a known country code"):
        run(b"phone\n+14155550123\n", region="XX")


def test_formula_cells_are_kept_verbatim_on_import() -> None:
    # Escaping is the report's job; the variable must reach the agent unchanged.
    _, rows = run(b'phone,name\n+14155550123,"=HYPERLINK(""http://x"",""y"")"\n')
    assert rows[0].variables["name"] == '=HYPERLINK("http://x","y")'


# ---------------------------------------------------------------- JSON


def test_json_array_with_numbers_nested_and_non_objects() -> None:
    items = [
        {"phone": "+14155550123", "name": "Ann", "vip": True, "age": 31, "score": 1.5},
        {"phone": 14155550124, "name": None},
        {"phone": "+14155550125", "tags": ["a"]},
        "just a string",
        {"name": "no phone"},
    ]
    summary, rows = run(json.dumps(items).encode(), filename="contacts.json")
    assert summary.file_format == "json" and summary.columns == ["phone", "name", "vip", "age", "score"]
    assert rows[0].variables == {"name": "Ann", "vip": "true", "age": "31", "score": "1.5"}
    assert rows[1].e164 == "+14155550124" and rows[1].variables["name"] == ""
    assert rows[2].status is RowStatus.INVALID and "nested list" in rows[2].reason
    assert rows[3].status is RowStatus.INVALID and "not an object" in rows[3].reason
    assert rows[4].status is RowStatus.INVALID and "no 'phone' field" in rows[4].reason
    assert summary.rows == 5


def test_json_lines_and_sniffed_without_extension() -> None:
    data = b'{"phone": "+14155550123"}\n{"phone": "+14155550124"}\n'
    summary, rows = run(data)
    assert summary.file_format == "json" and summary.valid == 2


def test_json_streams_across_chunk_boundaries_through_a_pipe() -> None:
    items = [{"phone": f"+1415555{i:04d}", "n": i} for i in range(1000, 9000)]
    data = json.dumps(items).encode()
    summary, rows = import_rows(Pipe(data, step=777), default_region="US", filename="x.json")
    out = list(rows)
    assert len(out) == 8000 and summary.valid == 8000
    assert out[-1].variables["n"] == "8999"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b'[{"phone": "+14155550123"} {"phone": "1"}]', "expected ','"),
        (b'[{"phone": "+14155550123"},', "not closed"),
        (b'[{"phone": "+14155550123"}, {"phone": ]', "item 2 is not valid JSON"),
        (b'"phone"', "array of objects"),
        (b'[1, 2]', "must be an object"),
        (b'[{"phone": "+14155550123"}] trailing', "after the end"),
    ],
)
def test_broken_json_names_the_item(data: bytes, needle: str) -> None:
    with pytest.raises(UploadError) as exc:
        run(data, filename="x.json")
    assert needle in exc.value.message


def test_json_body_rows_from_objects() -> None:
    columns, mapping, raw = rows_from_objects([{"Mobile": "+14155550123", "x": 1}, 7])
    assert columns == ["Mobile", "x"] and mapping.phone == "Mobile"
    rows = list(classify(raw, mapping, default_region="US"))
    assert rows[0].status is RowStatus.VALID and rows[0].variables == {"x": "1"}
    assert rows[1].status is RowStatus.INVALID
    with pytest.raises(UploadError, match="no rows"):
        rows_from_objects([])


# ---------------------------------------------------------------- preview, scale


def test_preview_has_first_rows_and_every_problem() -> None:
    lines = ["phone,name"] + [f"+1415555{i:04d},n{i}" if i % 100 else f"bad{i},n{i}" for i in range(1000, 6000)]
    preview = preview_upload(io.BytesIO("\n".join(lines).encode()), default_region="US", first_n=5)
    assert len(preview.first_rows) == 5
    assert preview.summary.invalid == 50 == len(preview.problems)
    assert all(p.status is RowStatus.INVALID and p.reason for p in preview.problems)
    assert preview.mapping.phone == "phone" and preview.mapping.variables == {"name": "name"}
    capped = preview_upload(io.BytesIO("\n".join(lines).encode()), default_region="US", max_problems=10)
    assert len(capped.problems) == 10 and capped.problems_not_shown == 40


def _big_csv(rows: int) -> Iterator[bytes]:
    yield b"phone,first_name,note\n"
    for i in range(rows):
        # 100k distinct valid US numbers: area codes 201.. with 7-digit subscriber parts.
        area = 201 + i // 9000
        yield f"+1{area}555{i % 9000 + 1000:04d},Name{i},note {i}\n".encode()


class Generated(io.RawIOBase):
    """Bytes produced on demand, so the test itself holds no copy of the file."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts = parts
        self.buf = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        pieces = [self.buf]
        have = len(self.buf)
        while have < max(size, 1):
            part = next(self.parts, None)
            if part is None:
                break
            pieces.append(part)
            have += len(part)
        data = b"".join(pieces)
        out, self.buf = data[:size], data[size:]
        return out


def test_100k_rows_stream_in_bounded_memory() -> None:
    # Memory check, not timing: the import must hold a chunk at a time plus
    # one integer per distinct number, not the file or the rows.
    tracemalloc.start()
    try:
        summary, rows = import_rows(Generated(_big_csv(100_000)), default_region="US")
        total = 0
        for chunk in chunked(rows, 2000):
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 100_000 == summary.rows
    assert summary.balanced
    # The file is ~4 MB and 100k ImportedRow objects would be >30 MB.
    assert peak < 25 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_chunked() -> None:
    assert [len(c) for c in chunked(range(5), 2)] == [2, 2, 1]
    with pytest.raises(ValueError):
        list(chunked([], 0))
