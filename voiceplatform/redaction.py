"""PII redaction: personal data in text replaced by typed placeholders.

Contract: :func:`redact` returns the text with every detected phone number, e-mail address,
payment card number, IBAN, national identifier (for the given country, where a rule exists)
and date of birth replaced by ``[PHONE]``, ``[EMAIL]``, ``[CARD]``, ``[IBAN]``,
``[NATIONAL_ID]`` or ``[DATE_OF_BIRTH]``; the rest of the text is left exactly as it was.
:func:`redact_data` does the same to every string inside a JSON-like value (webhook payloads,
analysis results). Pure Python, no Django and no I/O, so any layer may use it (the call
session's keypad path, the calls app's persistence, outgoing webhooks, the logging filter).

Why these detectors: numbers are found by ``phonenumbers`` (Google's libphonenumber metadata,
which knows every country's numbering plan: "020 7946 0018" is a London number for a GB org,
"+49 30 901820" is one anywhere). Everything else is a regular expression that proposes
candidates and a validator from ``python-stdnum`` that must accept them: Luhn for cards,
ISO 13616 mod-97 for IBANs, each country's own check-digit rule for its national identifiers
(US SSN, UK NHS, French NIR, Spanish DNI/NIE, Italian codice fiscale, Dutch BSN, Brazilian
CPF, Indian Aadhaar, Mexican CURP...). A check digit keeps false positives down: an order
number or a price is not redacted because it merely has 16 digits. stdnum is maintained,
pure Python and has validators for ~90 countries. Presidio (Microsoft's detector) was
rejected because its recognisers need spaCy language models downloaded at run time, which a
self-hosted install cannot assume; its pattern recognisers are the same regex-plus-checksum
idea as here. Dates of birth have no checksum: a date is redacted when a "birth" word in one
of the supported languages (en, es, fr, de, it, pt, nl) stands shortly before it, so
appointment dates stay readable.

Overlaps are resolved by detector order (e-mail, IBAN, card, national id, date of birth,
phone): the first detector to claim a character wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

PHONE = "phone"
EMAIL = "email"
CARD = "card"
IBAN = "iban"
NATIONAL_ID = "national_id"
DATE_OF_BIRTH = "date_of_birth"

#: Every kind, in the order detectors claim text.
KINDS: tuple[str, ...] = (EMAIL, IBAN, CARD, NATIONAL_ID, DATE_OF_BIRTH, PHONE)
KIND_LABELS: dict[str, str] = {
    PHONE: "Phone numbers", EMAIL: "E-mail addresses", CARD: "Card numbers", IBAN: "IBANs",
    NATIONAL_ID: "National identifiers", DATE_OF_BIRTH: "Dates of birth",
}
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind.upper()}]" for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    kind: str


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?![\w-])", re.UNICODE)
# 13-19 digits, optionally grouped by single spaces or dashes (as cards are printed and read).
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_DIGITS = re.compile(r"\D")


def _emails(text: str, country: str) -> Iterator[tuple[int, int]]:
    for match in _EMAIL.finditer(text):
        yield match.span()


def _cards(text: str, country: str) -> Iterator[tuple[int, int]]:
    for match in _CARD.finditer(text):
        if luhn.is_valid(_DIGITS.sub("", match.group())):
            yield match.span()


def _ibans(text: str, country: str) -> Iterator[tuple[int, int]]:
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The regex is greedy: a trailing word glued on by a space ("... 3000 thanks") is
        # trimmed back group by group until the checksum holds.
        parts = candidate.split(" ")
        while parts:
            joined = " ".join(parts)
            if stdnum_iban.is_valid(joined):
                yield match.start(), match.start() + len(joined)
                break
            parts.pop()


# National identifiers by the org's default country: a candidate pattern and the stdnum
# module that validates it. Separators are spaces, dots, dashes or slashes.
_SEP = r"[ ./-]?"
_NATIONAL_RULES: dict[str, tuple[str, str]] = {
    "US": (rf"\d{{3}}{_SEP}\d{{2}}{_SEP}\d{{4}}", "stdnum.us.ssn"),
    "GB": (rf"\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{4}}", "stdnum.gb.nhs"),
    "FR": (rf"[12]{_SEP}\d{{2}}{_SEP}\d{{2}}{_SEP}(?:\d{{2}}|2[AB]){_SEP}\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{2}}", "stdnum.fr.nir"),
    "ES": (r"(?:[XYZ]-?\d{7}|\d{8})-?[A-Za-z]", "stdnum.es.nif"),
    "IT": (r"[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z]", "stdnum.it.codicefiscale"),
    "NL": (rf"\d{{4}}{_SEP}\d{{2}}{_SEP}\d{{3}}", "stdnum.nl.bsn"),
    "DE": (rf"\d{{2}}{_SEP}\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{3}}", "stdnum.de.idnr"),
    "BR": (rf"\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{2}}", "stdnum.br.cpf"),
    "IN": (rf"\d{{4}}{_SEP}\d{{4}}{_SEP}\d{{4}}", "stdnum.in_.aadhaar"),
    "MX": (r"[A-Za-z]{4}\d{6}[HMhm][A-Za-z]{5}[A-Za-z0-9]\d", "stdnum.mx.curp"),
    "CA": (rf"\d{{3}}{_SEP}\d{{3}}{_SEP}\d{{3}}", "stdnum.ca.sin"),
    "SE": (r"(?:\d{2})?\d{6}[-+]?\d{4}", "stdnum.se.personnummer"),
    "PL": (r"\d{11}", "stdnum.pl.pesel"),
    "PT": (rf"\d{{8}}{_SEP}\d{_SEP}[A-Za-z]{{2}}\d", "stdnum.pt.cc"),
    "BE": (rf"\d{{2}}{_SEP}\d{{2}}{_SEP}\d{{2}}{_SEP}\d{{3}}{_SEP}\d{{2}}", "stdnum.be.nn"),
    "ZA": (r"\d{13}", "stdnum.za.idnr"),
}
#: Countries whose national identifier is redacted (the org's default country picks one).
NATIONAL_ID_COUNTRIES: tuple[str, ...] = tuple(sorted(_NATIONAL_RULES))
_compiled_rules: dict[str, tuple[re.Pattern[str], Callable[[str], bool]]] = {}


def _national_rule(country: str) -> tuple[re.Pattern[str], Callable[[str], bool]] | None:
    if country not in _NATIONAL_RULES:
        return None
    if country not in _compiled_rules:
        import importlib

        pattern, module_name = _NATIONAL_RULES[country]
        module = importlib.import_module(module_name)
        _compiled_rules[country] = (re.compile(rf"(?<![\w]){pattern}(?![\w])"), module.is_valid)
    return _compiled_rules[country]


def _national_ids(text: str, country: str) -> Iterator[tuple[int, int]]:
    rule = _national_rule(country.upper())
    if rule is None:
        return
    pattern, is_valid = rule
    for match in pattern.finditer(text):
        if is_valid(match.group()):
            yield match.span()


_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|"
    "enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre|"
    "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre|"
    "januar|februar|märz|maerz|juni|juli|oktober|dezember|"
    "gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|"
    "janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|dezembro|"
    "januari|februari|maart|mei|augustus"
)
_DATE = (
    r"(?:\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"  # 14/03/1985, 03-14-85, 14.3.1985
    r"|\d{4}-\d{2}-\d{2}"  # 1985-03-14
    rf"|\d{{1,2}}(?:st|nd|rd|th|er|º|°)?\.?\s+(?:de\s+|of\s+)?(?:{_MONTHS})\.?,?\s+(?:de\s+)?\d{{4}}"  # 14 March 1985
    rf"|(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"  # March 14, 1985
)
_BIRTH_WORDS = (
    r"born|birth|birthday|dob|d\.o\.b\.?|nacido|nacida|nací|naci|nacimiento|cumpleaños|"
    r"né|née|ne le|naissance|geboren|geburtsdatum|geburtstag|nato|nata|nascita|"
    r"nasci|nascido|nascida|geboortedatum"
)
# Only a few words between the birth word and the date, never across a comma or a
# placeholder: "born on [DATE_OF_BIRTH], appointment on 12/05" keeps the appointment (so
# redacting redacted text changes nothing).
_DOB = re.compile(rf"(?:{_BIRTH_WORDS})\b[^\n.?!,;\[\]]{{0,25}}?({_DATE})", re.IGNORECASE | re.UNICODE)


def _dates_of_birth(text: str, country: str) -> Iterator[tuple[int, int]]:
    for match in _DOB.finditer(text):
        yield match.span(1)


def _phones(text: str, country: str) -> Iterator[tuple[int, int]]:
    region = country.upper() if country else None
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
        yield match.start, match.end


_DETECTORS: dict[str, Callable[[str, str], Iterable[tuple[int, int]]]] = {
    EMAIL: _emails, IBAN: _ibans, CARD: _cards, NATIONAL_ID: _national_ids,
    DATE_OF_BIRTH: _dates_of_birth, PHONE: _phones,
}


def clean_kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    """``kinds`` in detector order; raises ValueError naming an unknown kind."""
    wanted = set(kinds)
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise ValueError(f"unknown redaction kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    return tuple(kind for kind in KINDS if kind in wanted)


def find(text: str, kinds: Iterable[str] = KINDS, country: str = "") -> list[Span]:
    """The non-overlapping spans of personal data in ``text``, in text order."""
    if not text:
        return []
    taken: list[Span] = []
    for kind in clean_kinds(kinds):
        for start, end in _DETECTORS[kind](text, country):
            if all(end <= span.start or start >= span.end for span in taken):
                taken.append(Span(start, end, kind))
    return sorted(taken, key=lambda span: span.start)


def redact(text: str, kinds: Iterable[str] = KINDS, country: str = "") -> str:
    """``text`` with each span :func:`find` reports replaced by its kind's placeholder."""
    spans = find(text, kinds, country)
    if not spans:
        return text
    out: list[str] = []
    position = 0
    for span in spans:
        out.append(text[position:span.start])
        out.append(PLACEHOLDERS[span.kind])
        position = span.end
    out.append(text[position:])
    return "".join(out)


def redact_data(value: Any, kinds: Iterable[str] = KINDS, country: str = "") -> Any:
    """A copy of a JSON-like ``value`` with every string in it (dict values, list items,
    not dict keys) redacted."""
    kinds = clean_kinds(kinds)
    if not kinds:
        return value
    if isinstance(value, str):
        return redact(value, kinds, country)
    if isinstance(value, dict):
        return {key: redact_data(item, kinds, country) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(item, kinds, country) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Redactor:
    """What one agent redacts (``kinds``) for one org (``country``: its default country)."""

    kinds: tuple[str, ...] = ()
    country: str = ""

    def __bool__(self) -> bool:
        return bool(self.kinds)

    def text(self, text: str) -> str:
        return redact(text, self.kinds, self.country) if self.kinds else text

    def data(self, value: Any) -> Any:
        return redact_data(value, self.kinds, self.country) if self.kinds else value
