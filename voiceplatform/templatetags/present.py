"""The dashboard's one formatting layer: states, reasons, durations, money, plurals, cron, numbers, times.

Loaded as a template builtin (``TEMPLATES[0]["OPTIONS"]["builtins"]``), so every template can write
``{{ call.status|state:"call" }}`` without ``{% load %}``. Contract of every filter here:

- it never raises on odd input (None, "", a wrong type): pages must render; what it cannot read it
  shows as ``—`` or as the text it was given, never as an internal repr (no ``0E-8``, no ``None``);
- it returns plain text, escaped by the template as usual, except ``state`` (a badge) and
  ``fix_links`` (text with links), which build their HTML from escaped parts.

State labels and badge tones live next to each app's choices (``calls.labels``, ``batches.labels``,
``knowledge.labels``, ``integrations.labels``); a guard test checks every choice has one.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping, Sized
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeData, SafeString, mark_safe

register = template.Library()

EMPTY = "—"
TONES = ("ok", "warn", "bad", "neutral")


@cache
def state_domains() -> dict[str, Mapping[str, tuple[str, str]]]:
    """Domain name → {stored value: (label, tone)}. Imported lazily: the labels import app models."""
    from agents import labels as agent_labels
    from batches import labels as batch_labels
    from calls import labels as call_labels
    from integrations import labels as integration_labels
    from knowledge import labels as knowledge_labels
    from simulations import labels as simulation_labels

    return {
        "call": call_labels.CALL_STATUS,
        "analysis": call_labels.ANALYSIS_STATUS,
        "direction": call_labels.DIRECTION,
        "transfer": call_labels.TRANSFER_LEG_STATE,
        "answer": call_labels.ANSWER_OUTCOME,
        "recording": call_labels.RECORDING_MODE,
        "batch": batch_labels.BATCH_STATUS,
        "entry": batch_labels.ENTRY_STATE,
        "outcome": batch_labels.OUTCOME,
        "run": batch_labels.RUN_STATE,
        "row": batch_labels.ROW_STATUS,
        "document": knowledge_labels.INGEST_STATE,
        "delivery": integration_labels.DELIVERY_STATUS,
        "experiment": agent_labels.EXPERIMENT_STATE,
        "simulation": simulation_labels.RUN_STATUS,
    }


def humanize_code(value: str) -> str:
    """``do_not_call`` → ``Do not call``: the last resort for a code without a label (free text passes through)."""
    text = str(value).strip()
    if not text or " " in text or not re.fullmatch(r"[A-Za-z0-9_.\-]+", text):
        return text
    words = re.sub(r"[_.\-]+", " ", text).strip().lower()
    return words[:1].upper() + words[1:]


def state_info(value: Any, domain: str = "") -> tuple[str, str]:
    """(label, tone) of a stored state ``value`` in ``domain`` (``call``, ``batch``, ``entry``…)."""
    raw = getattr(value, "value", value)  # enum members (RowStatus) as well as plain strings
    raw = "" if raw is None else str(raw)
    table = state_domains().get(domain)
    if table is None and domain:
        raise template.TemplateSyntaxError(f"state: unknown domain {domain!r}; one of {sorted(state_domains())}")
    if table is not None and raw in table:
        return table[raw]
    if not raw:
        return EMPTY, "neutral"
    # Unknown code: readable words, and a tone that does not claim success.
    tone = "bad" if any(w in raw for w in ("fail", "error", "invalid")) else "neutral"
    return humanize_code(raw), tone


@register.filter
def state(value: Any, domain: str = "") -> SafeString:
    """A state as a badge: ``{{ call.status|state:"call" }}`` → ``<span class="badge bad">Failed</span>``."""
    label, tone = state_info(value, domain)
    return format_html('<span class="badge {}">{}</span>', tone, label)


@register.filter
def state_label(value: Any, domain: str = "") -> str:
    """Only the human words of a state (for text, titles and options)."""
    return state_info(value, domain)[0]


@register.filter
def state_tone(value: Any, domain: str = "") -> str:
    """Only the badge tone of a state: ok, warn, bad or neutral (for CSS classes)."""
    return state_info(value, domain)[1]


@cache
def _reasons() -> dict[str, str]:
    from calls.labels import END_REASON

    return dict(END_REASON)


@register.filter
def reason(value: Any) -> str:
    """Why something ended or was refused: known codes get their label, other codes readable words,
    free text is kept as written. ``caller_hangup`` → ``Caller hung up``; None/"" → ``—``."""
    if value is None:
        return EMPTY
    text = str(value).strip()
    if not text:
        return EMPTY
    return _reasons().get(text) or _reasons().get(text.lower()) or humanize_code(text)


@register.filter
def event_kind(value: Any) -> SafeString:
    """A timeline event's kind in words, the stored code on hover (for searching the logs):
    ``session.hangup`` → ``<span title="session.hangup">Session hangup</span>``."""
    code = str(value or "").strip()
    if not code:
        return mark_safe(EMPTY)
    return format_html('<span class="event-kind" title="{}">{}</span>', code, humanize_code(code))


@register.filter
def details(data: Any) -> str:
    """A timeline event's data as ``Key: value`` pairs, separated by `` · ``: keys in words, any
    ``*reason`` value through ``reason`` (``caller_hangup`` → ``Caller hung up``)."""
    if not isinstance(data, dict) or not data:
        return ""
    parts = []
    for key, value in data.items():
        shown = reason(value) if str(key).endswith("reason") and isinstance(value, str) else value
        parts.append(f"{humanize_code(str(key))}: {shown}")
    return " · ".join(parts)


@register.filter
def duration(value: Any, unit: str = "s") -> str:
    """A length of time for people: ``{{ ms|duration:"ms" }}`` / ``{{ seconds|duration }}``.

    Under a minute: ``12.3 s`` (one decimal only when it is not zero); then ``4 min 05 s``; from an
    hour ``1 h 02 min``. Negative values keep their sign; None or unreadable input is ``—``.
    """
    if value is None or value == "" or isinstance(value, bool):
        return EMPTY
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return EMPTY
    if not amount.is_finite():
        return EMPTY
    if unit == "ms":
        amount = amount / 1000
    elif unit != "s":
        raise template.TemplateSyntaxError(f"duration: unit must be 's' or 'ms', not {unit!r}")
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    tenths = int((amount * 10).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    if tenths < 600:
        whole, frac = divmod(tenths, 10)
        return f"{sign}{whole}.{frac} s" if frac else f"{sign}{whole} s"
    seconds = int(amount.quantize(Decimal(1), rounding="ROUND_HALF_UP"))
    if seconds < 3600:
        minutes, secs = divmod(seconds, 60)
        return f"{sign}{minutes} min {secs:02d} s"
    minutes = seconds // 60  # under an hour's precision, seconds do not matter
    hours, mins = divmod(minutes, 60)
    return f"{sign}{hours} h {mins:02d} min"


CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$", "INR": "₹", "JPY": "¥"}


@register.filter
def money(value: Any, currency: Any = "USD") -> str:
    """An amount in plain decimal notation: ``Decimal('0E-8')`` → ``$0.00``, ``0.0012`` → ``$0.0012``.

    At least two decimals, more only as far as the amount needs them (up to eight: per-token prices).
    Known currencies get their symbol (USD, EUR, GBP…), others a code suffix (``12.50 CHF``); an empty
    currency means USD. None or unreadable input is ``—``.
    """
    if value is None or value == "" or isinstance(value, bool):
        return EMPTY
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return EMPTY
    if not amount.is_finite():
        return EMPTY
    code = (str(currency or "") or "USD").upper()
    if amount == 0:
        amount = Decimal(0)
    exponent = amount.normalize().as_tuple().exponent
    places = min(8, max(2, -exponent if isinstance(exponent, int) else 2))
    text = f"{abs(amount):,.{places}f}"
    sign = "-" if amount < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"


@register.filter
def plural(value: Any, words: str) -> str:
    """``{{ n|plural:"call" }}`` → ``1 call`` / ``3 calls``; irregular: ``plural:"entry,entries"``.

    A list or queryset counts its items. None is ``—``.
    """
    if value is None or isinstance(value, bool):
        return EMPTY
    if isinstance(value, Sized) and not isinstance(value, str):
        count: Any = len(value)
    else:
        try:
            count = int(value) if Decimal(str(value)) == int(Decimal(str(value))) else Decimal(str(value))
        except (InvalidOperation, ValueError):
            return str(value)
    singular, _, many = words.partition(",")
    many = many or f"{singular}s"
    return f"{count} {singular if count in (1, -1) else many}"


@register.filter
def cron_human(value: Any) -> str:
    """A cron expression in words: ``30 9 * * 1-5`` → ``At 09:30, Monday through Friday``.

    Empty input is ``""``; an expression cron-descriptor cannot read is ``Not a valid cron expression``.
    """
    from cron_descriptor import Options, get_description  # type: ignore[import-untyped]

    from batches.schedule_rules import ScheduleError, validate_cron

    text = str(value or "").strip()
    if not text:
        return ""
    try:
        # The same check schedules are saved with: cron-descriptor alone would describe "61 25 * * *".
        expression = validate_cron(text).expression
    except ScheduleError:
        return "Not a valid cron expression"
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return str(get_description(expression, options))
    except Exception:  # cron-descriptor raises several unrelated types (FormatException, ValueError…)
        return "Not a valid cron expression"


def e164_text(value: Any) -> str:
    """A phone number grouped for reading: ``+14155550100`` → ``+1 415-555-0100``; anything else unchanged."""
    import phonenumbers

    text = str(value or "").strip()
    if not text:
        return EMPTY
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text
    if not phonenumbers.is_possible_number(parsed):
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@register.filter
def e164(value: Any) -> SafeString:
    """A phone number for reading, the stored E.164 form on hover (and for search and copy):
    ``<span class="e164" title="+14155550100">+1 415-555-0100</span>``. Empty is ``—``."""
    text = str(value or "").strip()
    if not text:
        return mark_safe(EMPTY)
    return format_html('<span class="e164" title="{}">{}</span>', text, e164_text(text))


@register.filter
def when(value: Any, tz: Any = "") -> str:
    """A moment in the given IANA timezone (the org's: ``{{ call.created_at|when:current_org.timezone }}``),
    as ``2026-03-29 03:30 CEST``. Without a timezone, the active one. None is ``—``; a naive datetime is
    taken as UTC; an unknown timezone name falls back to UTC rather than failing the page."""
    if value is None or value == "":
        return EMPTY
    if not isinstance(value, dt.datetime):
        return str(value)
    local = _local(value, tz)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _local(value: dt.datetime, tz: Any) -> dt.datetime:
    zone: dt.tzinfo
    try:
        zone = zoneinfo.ZoneInfo(str(tz)) if tz else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    moment = value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone)


@register.filter
def clock(value: Any, tz: Any = "") -> str:
    """The time of day to the second in the given timezone (``09:30:05 CET``), for timelines of one call."""
    if not isinstance(value, dt.datetime):
        return EMPTY if value in (None, "") else str(value)
    local = _local(value, tz)
    return f"{local:%H:%M:%S} {local.tzname()}"


# Setting paths messages name in plain text → the URL name of the page (issue 13, point 8).
FIX_LINKS: dict[str, str] = {
    "Settings → Provider credentials": "orgs:credentials",
    "Settings → Credentials": "orgs:credentials",
    "Settings → API keys": "orgs:api-keys",
    "Settings → Members": "orgs:members",
    "Settings → Organisation": "orgs:settings",
    "Phone numbers page": "calls:numbers",
    "do-not-call list page": "batches:do-not-call",
}
_FIX_RE = re.compile("|".join(re.escape(k).replace("→", "(?:→|->)") for k in sorted(FIX_LINKS, key=len, reverse=True)))


def _link_target(phrase: str) -> str | None:
    key = phrase.replace("->", "→")
    try:
        return reverse(FIX_LINKS[key])
    except (KeyError, NoReverseMatch):
        return None


@register.filter(is_safe=True)
def fix_links(value: Any) -> SafeString:
    """A message with the setting paths it names turned into links to those pages:
    ``add it under Settings → Credentials.`` links ``Settings → Credentials`` to the credentials page.
    The rest of the text is escaped (the message may carry vendor text); text already marked safe
    (a message built with its own links) is returned as it is."""
    if isinstance(value, SafeData):
        return mark_safe(str(value))
    text = "" if value is None else str(value)
    out: list[str] = []
    last = 0
    for match in _FIX_RE.finditer(text):
        url = _link_target(match.group(0))
        if url is None:
            continue
        out.append(escape(text[last:match.start()]))
        out.append(format_html('<a href="{}">{}</a>', url, match.group(0)))
        last = match.end()
    out.append(escape(text[last:]))
    return mark_safe("".join(out))
