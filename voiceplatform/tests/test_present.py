"""The formatting filters (voiceplatform.templatetags.present) and the guards that keep them complete."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.utils.html import format_html

from voiceplatform.templatetags import present as p

ROOT = Path(__file__).resolve().parents[2]


def render(source: str, **context: object) -> str:
    return Template(source).render(Context(context))


# --- state ---------------------------------------------------------------------------


def test_state_badge_has_label_and_tone() -> None:
    assert p.state("failed", "call") == '<span class="badge bad">Failed</span>'
    assert p.state("completed", "call") == '<span class="badge ok">Completed</span>'
    assert p.state("do_not_call", "entry") == '<span class="badge neutral">On the do-not-call list</span>'
    assert p.state_label("in_call", "entry") == "On a call"
    assert p.state_tone("in_call", "run") == "warn"


def test_state_is_a_builtin_and_accepts_enum_members() -> None:
    from batches.importing import RowStatus

    assert render('{{ s|state:"row" }}', s=RowStatus.DO_NOT_CALL) == (
        '<span class="badge neutral">On the do-not-call list</span>')


def test_state_unknown_code_is_readable_and_never_green() -> None:
    assert p.state_info("carrier_exploded", "call") == ("Carrier exploded", "neutral")
    assert p.state_info("upload_failed", "document") == ("Upload failed", "bad")
    assert p.state_info(None, "call") == ("—", "neutral")
    assert p.state_info("", "batch") == ("—", "neutral")


def test_state_unknown_domain_is_a_template_error() -> None:
    with pytest.raises(TemplateSyntaxError, match="unknown domain 'cal'"):
        p.state("failed", "cal")


def test_state_escapes_its_label() -> None:
    assert "<script>" not in p.state("<script>x</script>", "call")


def test_no_failure_is_green() -> None:
    for domain, table in p.state_domains().items():
        for value, (label, tone) in table.items():
            assert tone in p.TONES, (domain, value)
            if any(word in value for word in ("fail", "cancel", "invalid", "missed", "busy", "no_answer")):
                assert tone != "ok", (domain, value, label)


def _choice_values(model_label: str, field: str) -> set[str]:
    from django.apps import apps

    model = apps.get_model(model_label)
    return {str(v) for v, _ in model._meta.get_field(field).choices}


@pytest.mark.parametrize(("model", "field", "domain"), [
    ("calls.Call", "status", "call"),
    ("calls.Call", "analysis_status", "analysis"),
    ("calls.Call", "direction", "direction"),
    ("batches.Batch", "status", "batch"),
    ("batches.BatchEntry", "state", "entry"),
    ("batches.BatchEntry", "outcome", "outcome"),
    ("batches.ScheduledCallRun", "state", "run"),
    ("knowledge.DocumentVersion", "state", "document"),
    ("integrations.WebhookDelivery", "status", "delivery"),
    ("agents.Experiment", "state", "experiment"),
])
def test_every_state_choice_has_a_label(model: str, field: str, domain: str) -> None:
    """A new choice value must get a label and tone in its app's labels.py before it can ship."""
    missing = _choice_values(model, field) - set(p.state_domains()[domain])
    assert not missing, f"{model}.{field}: no label in the {domain!r} domain for {sorted(missing)}"


def test_every_import_row_status_has_a_label() -> None:
    from batches.importing import RowStatus

    assert {s.value for s in RowStatus} <= set(p.state_domains()["row"])


# --- reason --------------------------------------------------------------------------


def test_every_end_reason_the_code_writes_has_a_label() -> None:
    from calls.carriers.base import UNANSWERED_END_REASONS
    from calls.labels import END_REASON
    from calls.media import result

    session = {v for k, v in vars(result).items() if k.startswith("END_") and isinstance(v, str)}
    assert session | set(UNANSWERED_END_REASONS.values()) <= set(END_REASON)
    # Literal reasons the services write (end_reason="…", reason="…" on hang-ups and failures).
    written: set[str] = set()
    for path in (ROOT / "calls").rglob("*.py"):
        if "tests" in path.parts or "testing" in path.parts:
            continue
        text = path.read_text()
        written |= set(re.findall(r'end_reason\s*=\s*"([a-z_]+)"', text))
        written |= set(re.findall(r'(?:hangup_call|_fail_call)\([^)]*?"([a-z_]+)"', text))
    assert written, "the scan found no literal end reasons: has the code moved?"
    assert not written - set(END_REASON), sorted(written - set(END_REASON))


def test_reason_labels_known_codes_and_keeps_free_text() -> None:
    assert p.reason("caller_hangup") == "Caller hung up"
    assert p.reason("do_not_call") == "Do not call"
    assert p.reason("NORMAL_CLEARING") == "Call ended normally"
    assert p.reason("user_busy") == "User busy"
    assert p.reason("the number is on the do-not-call list") == "the number is on the do-not-call list"
    assert p.reason(None) == "—"
    assert p.reason("  ") == "—"


# --- duration --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (24576, "ms", "24.6 s"),
    (12300, "ms", "12.3 s"),
    (12000, "ms", "12 s"),
    (0, "s", "0 s"),
    (0, "ms", "0 s"),
    (59.96, "s", "1 min 00 s"),
    (245, "s", "4 min 05 s"),
    (3720, "s", "1 h 02 min"),
    (3599.6, "s", "1 h 00 min"),
    (90061, "s", "25 h 01 min"),
    (-5, "s", "-5 s"),
    (-245000, "ms", "-4 min 05 s"),
    (Decimal("1.25"), "s", "1.3 s"),
    ("17", "s", "17 s"),
    (None, "s", "—"),
    ("", "s", "—"),
    ("soon", "s", "—"),
    (float("nan"), "s", "—"),
    (True, "s", "—"),
])
def test_duration(value: object, unit: str, expected: str) -> None:
    assert p.duration(value, unit) == expected


def test_duration_rejects_an_unknown_unit() -> None:
    with pytest.raises(TemplateSyntaxError, match="unit must be"):
        p.duration(5, "h")


# --- money ---------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "currency", "expected"), [
    (Decimal("0E-8"), "USD", "$0.00"),
    (Decimal("0.00000"), "USD", "$0.00"),
    (0, "", "$0.00"),
    (Decimal("0.0012"), "USD", "$0.0012"),
    (Decimal("0.00120"), "USD", "$0.0012"),
    (Decimal("1.5"), "USD", "$1.50"),
    (Decimal("1234.5"), "EUR", "€1,234.50"),
    (Decimal("2.5E-7"), "USD", "$0.00000025"),
    (Decimal("1E-12"), "USD", "$0.00000000"),
    (Decimal("-0.25"), "GBP", "-£0.25"),
    (Decimal("12.5"), "chf", "12.50 CHF"),
    ("0.0070", "USD", "$0.007"),
    (None, "USD", "—"),
    ("", "USD", "—"),
    ("n/a", "USD", "—"),
    (Decimal("NaN"), "USD", "—"),
    (Decimal("1E+3"), None, "$1,000.00"),
])
def test_money(value: object, currency: object, expected: str) -> None:
    assert p.money(value, currency) == expected


def test_money_never_prints_exponent_notation() -> None:
    for exp in range(-12, 6):
        text = p.money(Decimal(f"3E{exp}"), "USD")
        assert "E" not in text and "e" not in text, text


# --- plural --------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "words", "expected"), [
    (1, "call", "1 call"),
    (3, "call", "3 calls"),
    (0, "call", "0 calls"),
    (-1, "call", "-1 call"),
    ("2", "row", "2 rows"),
    (1, "entry,entries", "1 entry"),
    (5, "entry,entries", "5 entries"),
    ([1, 2], "item", "2 items"),
    ([], "item", "0 items"),
    (None, "call", "—"),
])
def test_plural(value: object, words: str, expected: str) -> None:
    assert p.plural(value, words) == expected


# --- cron ---------------------------------------------------------------------------


def test_cron_human() -> None:
    assert p.cron_human("30 9 * * 1-5") == "At 09:30, Monday through Friday"
    assert p.cron_human("0 */2 * * *") == "Every 2 hours"
    assert p.cron_human("") == ""
    assert p.cron_human(None) == ""
    assert p.cron_human("61 25 * * *") == "Not a valid cron expression"
    assert p.cron_human("not a cron") == "Not a valid cron expression"


# --- e164 / when --------------------------------------------------------------------


def test_e164_display() -> None:
    assert p.e164_text("+14155550100") == "+1 415-555-0100"
    assert p.e164_text("+442071838750") == "+44 20 7183 8750"
    assert p.e164_text("web") == "web"
    assert p.e164_text("+1") == "+1"
    assert p.e164_text(None) == "—"
    assert p.e164("+14155550100") == '<span class="e164" title="+14155550100">+1 415-555-0100</span>'
    assert p.e164('<b>"x"</b>') == ('<span class="e164" title="&lt;b&gt;&quot;x&quot;&lt;/b&gt;">'
                                    '&lt;b&gt;&quot;x&quot;&lt;/b&gt;</span>')
    assert p.e164("") == "—"


def test_when_uses_the_given_timezone_across_dst() -> None:
    before = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # 01:30 CET
    after = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)  # 03:30 CEST: 02:xx never happens
    assert p.when(before, "Europe/Berlin") == "2026-03-29 01:30 CET"
    assert p.when(after, "Europe/Berlin") == "2026-03-29 03:30 CEST"
    autumn = dt.datetime(2026, 11, 1, 5, 30, tzinfo=dt.UTC)
    assert p.when(autumn, "America/New_York") == "2026-11-01 01:30 EDT"
    assert p.when(autumn + dt.timedelta(hours=1), "America/New_York") == "2026-11-01 01:30 EST"


def test_when_edges() -> None:
    moment = dt.datetime(2026, 12, 5, 15, 0, tzinfo=dt.UTC)
    assert p.when(None, "Europe/Berlin") == "—"
    assert p.when(moment, "") == "2026-12-05 15:00 UTC"  # settings.TIME_ZONE
    assert p.when(moment, "Mars/Olympus") == "2026-12-05 15:00 UTC"
    assert p.when(dt.datetime(2026, 12, 5, 15, 0), "Asia/Kolkata") == "2026-12-05 20:30 IST"
    assert render("{{ t|when:tz }}", t=moment, tz="Asia/Tokyo") == "2026-12-06 00:00 JST"


# --- fix_links ----------------------------------------------------------------


def test_fix_links_turns_setting_paths_into_links_and_escapes_the_rest() -> None:
    html = p.fix_links("No twilio <b>credential</b>; add it under Settings → Credentials.")
    assert html == ('No twilio &lt;b&gt;credential&lt;/b&gt;; add it under '
                    '<a href="/settings/credentials/">Settings → Credentials</a>.')
    assert 'href="/settings/credentials/"' in p.fix_links("add it under Settings → Provider credentials.")
    assert 'href="/settings/api-keys/"' in p.fix_links("see Settings -> API keys")
    assert p.fix_links(None) == ""
    built = format_html('<a href="{}">Fix it</a> under Settings → Credentials', "/x/")
    assert p.fix_links(built) == built  # already HTML: left alone
    assert p.fix_links("nothing to link") == "nothing to link"


# --- templates use the layer ----------------------------------------------------------

RAW_STATE = re.compile(
    r"\{\{\s*[\w.]+\.(status|state|end_reason|analysis_status|outcome)(\.value)?\s*\}\}"
    r"|get_(status|state|analysis_status|outcome)_display"
    r"|\{\{\s*[\w.]*(duration_ms|duration_s|_cost|total)\s*(\|floatformat[^}]*)?\}\}"
    r'|class="badge \{%'  # a badge whose tone a template works out by hand
    r"|\(s\)"  # "call(s)": use |plural
    r"|\}\} (calls|rows|numbers|documents|chunks|attempts|entries)\b(?!/)")  # "1 calls": use |plural


def test_templates_print_no_raw_state_reason_duration_or_cost() -> None:
    """States, reasons, durations and costs go through the filters (where a regexp can tell)."""
    offenders = []
    for path in ROOT.glob("*/templates/**/*.html"):
        if ".venv" in path.parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if RAW_STATE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:120]}")
    assert not offenders, "\n".join(offenders)


def test_timeline_event_kinds_and_details_read_as_words() -> None:
    assert p.event_kind("session.hangup") == '<span class="event-kind" title="session.hangup">Session hangup</span>'
    assert p.event_kind("") == p.EMPTY
    assert p.details({"reason": "caller_hangup", "connect_ms": 0.1}) == "Reason: Caller hung up · Connect ms: 0.1"
    assert p.details({"end_reason": "some_new_code"}) == "End reason: Some new code"
    assert p.details({}) == "" and p.details(None) == ""
    # free text is kept as written, and escaped by the template (the filter returns plain text)
    assert p.details({"error": "<b>x</b>"}) == "Error: <b>x</b>"
