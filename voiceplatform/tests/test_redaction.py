"""PII redaction (voiceplatform.redaction) over a multilingual fixture set."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from voiceplatform import redaction

CASES: list[dict[str, Any]] = json.loads((Path(__file__).parent / "fixtures" / "redaction_cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{c['country']}-{c['lang']}-{i}" for i, c in enumerate(CASES)])
def test_fixture_set(case: dict[str, Any]) -> None:
    assert redaction.redact(case["text"], country=case["country"]) == case["expected"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['country']}-{i}" for i, c in enumerate(CASES)])
def test_redacting_redacted_text_changes_nothing(case: dict[str, Any]) -> None:
    assert redaction.redact(case["expected"], country=case["country"]) == case["expected"]


def test_only_the_kinds_asked_for() -> None:
    text = "Card 4111 1111 1111 1111, mail a@b.example, phone +1 415 555 0132"
    assert redaction.redact(text, [redaction.EMAIL], "US") == "Card 4111 1111 1111 1111, mail [EMAIL], phone +1 415 555 0132"
    assert redaction.redact(text, [], "US") == text


def test_national_ids_follow_the_country() -> None:
    # A valid US SSN is only a national identifier for a US org.
    assert redaction.redact("id 536-22-1234", [redaction.NATIONAL_ID], "US") == "id [NATIONAL_ID]"
    assert redaction.redact("id 536-22-1234", [redaction.NATIONAL_ID], "FR") == "id 536-22-1234"
    assert set(redaction.NATIONAL_ID_COUNTRIES) >= {"US", "GB", "FR", "DE", "ES", "IT", "BR", "IN"}


def test_redact_data_walks_json() -> None:
    payload = {"call": {"from": "+14155550132", "n": 3}, "transcript": [{"text": "mail me at x@y.example"}],
               "ok": True}
    assert redaction.redact_data(payload, redaction.KINDS, "US") == {
        "call": {"from": "[PHONE]", "n": 3}, "transcript": [{"text": "mail me at [EMAIL]"}], "ok": True}


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown redaction kind 'ssn'"):
        redaction.clean_kinds(["ssn"])


def test_redactor_is_falsy_without_kinds() -> None:
    assert not redaction.Redactor()
    assert redaction.Redactor((redaction.CARD,)).text("4111111111111111") == "[CARD]"
