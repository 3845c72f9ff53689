"""Phone-number normalisation for every app that takes a number from a person: calls
(numbers, outbound), agents (transfer destinations), batch imports, the do-not-call
list and scheduled calls.

Everything that stores a number stores it as E.164; everything that rejects one
says why in words a campaign manager can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers.phonenumberutil import ValidationResult

# Spreadsheets turn long digit strings into floats ("4.15555E+09"); the digits
# are gone by then, so the only useful answer is how to fix the export.
_SCIENTIFIC = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$")

_PARSE_REASONS: dict[int, str] = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown or missing country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_REASONS: dict[int, str] = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
}


class PhoneNumberError(ValueError):
    """A value that cannot be dialled; ``reason`` is short and user-facing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    e164: str


def normalize_region(region: str | None) -> str | None:
    """Upper-case ISO 3166 alpha-2 region or None; raises on unknown codes."""
    if region is None or region == "":
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise PhoneNumberError(f"'{region}' is not a known country code (use ISO codes such as US, GB, DE)")
    return code


def _is_valid(parsed: phonenumbers.PhoneNumber, default_region: str | None) -> bool:
    """is_valid_number, with a shortcut: most rows are in the default country,
    and checking that one region first skips phonenumbers' walk over every
    region sharing the country code (25 for +1) — the most expensive step of a
    100k-row import. Valid for a region with this country code means valid."""
    if default_region and phonenumbers.country_code_for_region(default_region) == parsed.country_code:
        if phonenumbers.is_valid_number_for_region(parsed, default_region):
            return True
    return phonenumbers.is_valid_number(parsed)


def normalize_phone(raw: str, default_region: str | None) -> NormalizedNumber:
    """Parse ``raw`` as written by a person (national or international format)
    and return its E.164 form, or raise PhoneNumberError with the reason.

    ``default_region`` is the country assumed for numbers written without a
    country code (the org's default country).
    """
    text = raw.strip()
    if not text:
        raise PhoneNumberError("phone number is empty")
    if _SCIENTIFIC.match(text):
        raise PhoneNumberError(
            "looks like a number a spreadsheet converted to scientific notation "
            f"('{text[:30]}'); format the phone column as text and export again"
        )
    try:
        parsed = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and default_region is None:
            reason = "no country code and no default country set; write it as +<country code>…"
        raise PhoneNumberError(reason) from None
    if parsed.extension:
        # An extension needs DTMF after answer; dropping it silently would
        # reach the wrong person, so the row is rejected instead.
        raise PhoneNumberError(f"has an extension ({parsed.extension}) which cannot be dialled automatically")
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible not in (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        raise PhoneNumberError(_POSSIBLE_REASONS.get(possible, "not a possible phone number"))
    if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise PhoneNumberError("local-only number: add the area code")
    if not _is_valid(parsed, default_region):
        country = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        where = f" for {country}" if country and country != "ZZ" else ""
        raise PhoneNumberError(f"not a valid number{where}")
    return NormalizedNumber(e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164))


def is_e164(value: str) -> bool:
    """Cheap structural check for values that are already normalised."""
    return bool(re.fullmatch(r"\+[1-9]\d{6,14}", value))
