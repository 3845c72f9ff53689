"""Built-in tools an agent may be given, as JSON-schema function specs.

These are the specs the bridges hand to the model (``SessionConfig.tools``).
Executing them is the call session's job (``calls/``; ``search_knowledge`` is
answered by ``knowledge/``); the names here are the contract between the two.

The schema the model is given is the *only* description of a tool's arguments:
the call session validates every tool call against it (``calls.media.tools``)
before a handler runs, and handlers read exactly the properties declared here.
``agent_tool_specs`` shapes the per-agent specs: ``transfer_call`` names the
agent's configured destinations as an enum (the model picks by name and never
supplies a number), and is not offered at all when none are configured;
``send_sms`` texts the other party of the call unless the agent lists further
named recipients, which then become an optional ``to`` enum.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agents.agent_settings import AgentSettings

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
SEND_DTMF = "send_dtmf"
SEARCH_KNOWLEDGE = "search_knowledge"
SEND_SMS = "send_sms"
COLLECT_SENSITIVE_INPUT = "collect_sensitive_input"

# Non-blank: a search or a text of only spaces is a model mistake, not a request.
_NOT_BLANK = r"\S"

BUILTIN_TOOLS: dict[str, dict[str, Any]] = {
    END_CALL: {
        "name": END_CALL,
        "description": "Hang up the call. Use after saying goodbye, or when the caller asks to end the call.",
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "maxLength": 200, "description": "Why the call is ending, in a few words."},
            },
            "required": [],
            "additionalProperties": False,
        },
    },
    TRANSFER_CALL: {
        "name": TRANSFER_CALL,
        "description": "Transfer the caller to one of this agent's transfer destinations. Tell the caller first.",
        "parameters": {
            "type": "object",
            "properties": {
                # agent_tool_specs turns this into an enum of the agent's destination names.
                "destination": {"type": "string", "description": "The name of a configured transfer destination."},
                "reason": {"type": "string", "maxLength": 500,
                           "description": "Short summary for whoever takes the call."},
            },
            "required": ["destination"],
            "additionalProperties": False,
        },
    },
    SEND_DTMF: {
        "name": SEND_DTMF,
        "description": "Press keypad keys on the call, e.g. to navigate a phone menu.",
        "parameters": {
            "type": "object",
            "properties": {
                "digits": {
                    "type": "string",
                    "pattern": "^[0-9*#wW]+$",
                    "minLength": 1,
                    "maxLength": 32,
                    "description": "Keys to press: 0-9, * and #; w waits half a second.",
                },
            },
            "required": ["digits"],
            "additionalProperties": False,
        },
    },
    SEARCH_KNOWLEDGE: {
        "name": SEARCH_KNOWLEDGE,
        "description": "Search the agent's knowledge bases for facts needed to answer the caller.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "pattern": _NOT_BLANK, "maxLength": 1000,
                          "description": "What to look up, as a short question or keywords."},
                "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 4},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    },
    COLLECT_SENSITIVE_INPUT: {
        "name": COLLECT_SENSITIVE_INPUT,
        "description": "Call right before asking the caller to type a card number, PIN or other sensitive number "
                       "on the keypad. Their next keypad entry reaches you but is never stored, and the call "
                       "recording is muted on the caller's side until they finish it.",
        "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
    },
    SEND_SMS: {
        "name": SEND_SMS,
        "description": "Send a text message to the caller's phone (e.g. a link or a confirmation number).",
        "parameters": {
            "type": "object",
            "properties": {
                "body": {"type": "string", "pattern": _NOT_BLANK, "maxLength": 1600,
                         "description": "The message text."},
            },
            "required": ["body"],
            "additionalProperties": False,
        },
    },
}

BUILTIN_TOOL_CHOICES: list[tuple[str, str]] = [
    (END_CALL, "End the call"),
    (TRANSFER_CALL, "Transfer the call (to the agent's transfer destinations)"),
    (SEND_DTMF, "Send DTMF digits"),
    (SEARCH_KNOWLEDGE, "Search knowledge bases"),
    (SEND_SMS, "Send an SMS to the caller (or the agent's SMS recipients)"),
    (COLLECT_SENSITIVE_INPUT, "Collect sensitive keypad input (not stored, recording paused)"),
]


def tool_specs(names: list[str]) -> list[dict[str, Any]]:
    """Deep copies of the base specs for ``names`` (unknown names raise ``KeyError`` naming them)."""
    unknown = [n for n in names if n not in BUILTIN_TOOLS]
    if unknown:
        raise KeyError(f"unknown built-in tool(s): {', '.join(unknown)}")
    return [copy.deepcopy(BUILTIN_TOOLS[n]) for n in names]


def _listing(entries: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{e['label']}" + (f" ({e['description']})" if e.get("description") else "") for e in entries)


def agent_tool_specs(config: AgentSettings | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The built-in specs an agent's settings (``version.settings``, or a draft snapshot or
    version config, parsed here) offer the model.

    ``transfer_call`` is left out when the agent has no transfer destinations; its
    ``destination`` is an enum of their labels. ``send_sms`` gains an optional ``to``
    enum when the agent lists SMS recipients besides the caller.
    """
    settings = config if isinstance(config, AgentSettings) else AgentSettings.parse(config)
    names = [n for n in settings.builtin_tools if n in BUILTIN_TOOLS]
    destinations = [d for d in settings.transfer_destinations if d.get("label")]
    recipients = [d for d in settings.sms_recipients if d.get("label")]
    specs: list[dict[str, Any]] = []
    for spec in tool_specs(names):
        props = spec["parameters"]["properties"]
        if spec["name"] == TRANSFER_CALL:
            if not destinations:
                continue
            props["destination"]["enum"] = [d["label"] for d in destinations]
            props["destination"]["description"] = f"Who to transfer to: {_listing(destinations)}."
        elif spec["name"] == SEND_SMS and recipients:
            props["to"] = {"type": "string", "enum": [d["label"] for d in recipients],
                           "description": f"Leave out to text the caller; or one of: {_listing(recipients)}."}
            spec["description"] = "Send a text message to the caller's phone, or to one of the named recipients."
        specs.append(spec)
    return specs


# -- destinations: named numbers / SIP URIs configured on the agent -------------------

MAX_DESTINATIONS = 20
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.'&/-]{0,39}$")
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"
#: sip:user@host[:port][;param=value…] — the user part is required (carriers dial a user at a host).
SIP_URI = re.compile(rf"^sips?:[A-Za-z0-9._~!$&'()*+,=%-]{{1,64}}@{_HOST}(?::\d{{1,5}})?(?:;[A-Za-z0-9._~=-]+)*$")
SIP_URI_MAX_LENGTH = 255


def is_sip_uri(value: str) -> bool:
    return len(value) <= SIP_URI_MAX_LENGTH and bool(SIP_URI.fullmatch(value))


def normalize_target(raw: str, *, allow_sip: bool, default_region: str | None = None) -> str:
    """E.164 form of a phone number, or a SIP URI as given (lower-case scheme).

    Raises ``ValueError`` with the reason (for the caller to put under its field name).
    """
    from voiceplatform.phones import PhoneNumberError, normalize_phone

    text = str(raw or "").strip()
    if text[:4].lower() in ("sip:", "sips"):
        if not allow_sip:
            raise ValueError("must be a phone number in E.164 form (+<country code><number>); SIP URIs cannot receive SMS")
        scheme, _, rest = text.partition(":")
        uri = f"{scheme.lower()}:{rest}"
        if not is_sip_uri(uri):
            raise ValueError(f"“{text[:80]}” is not a SIP URI of the form sip:user@host[:port]")
        return uri
    try:
        return normalize_phone(text, default_region).e164
    except PhoneNumberError as exc:
        what = "an E.164 phone number or a SIP URI (sip:user@host)" if allow_sip else "an E.164 phone number"
        raise ValueError(f"“{text[:40]}” must be {what}: {exc.reason}") from None


TRANSFER_MODES = ("cold", "warm")
WARM_TIMEOUT_RANGE_S = (10, 120)
DEFAULT_WARM_TIMEOUT_S = 30
WHISPER_MAX_LENGTH = 300
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
#: what a whisper template may name ({caller}: the caller's number read out; {reason}: why, from the agent)
WHISPER_FIELDS = frozenset({"caller", "reason", "destination", "summary"})
_WHISPER_FIELD = re.compile(r"{([^{}]*)}")


def _clean_hours(value: Any, where: str, errors: list[str]) -> dict[str, Any] | None:
    """``{"days": ["mon", …], "start": "HH:MM", "end": "HH:MM"}`` in the org's timezone; an
    end before the start spans midnight."""
    if value in (None, "", {}):
        return None
    if not isinstance(value, dict) or set(value) - {"days", "start", "end"}:
        errors.append(f'{where}: hours must be an object with "days", "start" and "end".')
        return None
    days = value.get("days") or list(WEEKDAYS)
    if not isinstance(days, list) or not days or any(str(d).lower()[:3] not in WEEKDAYS for d in days):
        errors.append(f"{where}: hours days must be a list of weekdays ({', '.join(WEEKDAYS)}).")
        return None
    start, end = str(value.get("start") or ""), str(value.get("end") or "")
    if not _CLOCK.fullmatch(start) or not _CLOCK.fullmatch(end) or start == end:
        errors.append(f"{where}: hours start and end must be different 24-hour times such as 09:00 and 17:30.")
        return None
    ordered = [d for d in WEEKDAYS if d in {str(x).lower()[:3] for x in days}]
    return {"days": ordered, "start": start, "end": end}


def _clean_transfer_options(entry: Mapping[str, Any], where: str, errors: list[str]) -> dict[str, Any]:
    """The warm-transfer keys of a transfer destination (absent keys take their defaults)."""
    mode = str(entry.get("mode") or "cold")
    if mode not in TRANSFER_MODES:
        errors.append(f"{where}: mode “{mode[:20]}” must be cold or warm.")
    low, high = WARM_TIMEOUT_RANGE_S
    timeout = entry.get("timeout_s", DEFAULT_WARM_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not low <= timeout <= high:
        errors.append(f"{where}: timeout_s must be a whole number of seconds from {low} to {high}.")
        timeout = DEFAULT_WARM_TIMEOUT_S
    whisper = str(entry.get("whisper") or "").strip()
    if len(whisper) > WHISPER_MAX_LENGTH:
        errors.append(f"{where}: whisper is longer than {WHISPER_MAX_LENGTH} characters.")
    unknown = sorted({f for f in _WHISPER_FIELD.findall(whisper) if f not in WHISPER_FIELDS})
    if unknown:
        errors.append(f"{where}: whisper names unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; "
                      f"use {', '.join('{' + f + '}' for f in sorted(WHISPER_FIELDS))}.")
    confirm = entry.get("confirm", False)
    if not isinstance(confirm, bool):
        errors.append(f"{where}: confirm must be true or false.")
    options: dict[str, Any] = {"mode": mode, "timeout_s": timeout, "whisper": whisper, "confirm": confirm is True}
    hours = _clean_hours(entry.get("hours"), where, errors)
    if hours is not None:
        options["hours"] = hours
    return options


_TRANSFER_KEYS = {"mode", "timeout_s", "whisper", "confirm", "hours"}
_DEFAULTS: dict[str, Any] = {"mode": "cold", "timeout_s": DEFAULT_WARM_TIMEOUT_S, "whisper": "", "confirm": False}


def clean_destinations(value: Any, *, allow_sip: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """(normalised entries, error messages) for a list of ``{label, number, description}``.

    Labels are unique (ignoring case) because the model picks a destination by label;
    numbers are normalised to E.164, SIP URIs checked for shape. Transfer destinations
    (``allow_sip``) also take ``mode`` (cold | warm), ``timeout_s`` (how long a warm
    transfer waits for the human), ``whisper`` (what the human hears first, a template),
    ``confirm`` (the human presses 1 to take the call) and ``hours``.
    """
    if value in (None, ""):
        return [], []
    if not isinstance(value, list):
        return [], ['Must be a list of {"label", "number", "description"} objects.']
    if len(value) > MAX_DESTINATIONS:
        return [], [f"At most {MAX_DESTINATIONS} entries."]
    cleaned: list[dict[str, Any]] = []
    errors: list[str] = []
    seen: set[str] = set()
    allowed = {"label", "number", "description"} | (_TRANSFER_KEYS if allow_sip else set())
    for index, entry in enumerate(value, start=1):
        where = f"Entry {index}"
        if not isinstance(entry, dict):
            errors.append(f'{where}: must be an object with "label" and "number".')
            continue
        unknown = sorted(set(entry) - allowed)
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; use {', '.join(sorted(allowed))}.")
        label = str(entry.get("label") or "").strip()
        if not _LABEL.fullmatch(label):
            errors.append(f"{where}: label “{label[:60]}” must be 1-40 letters, digits, spaces or _ . ' & / - "
                          "(starting with a letter or digit).")
        elif label.casefold() in seen:
            errors.append(f"{where}: label “{label}” is used twice.")
        seen.add(label.casefold())
        description = str(entry.get("description") or "").strip()
        if len(description) > 200:
            errors.append(f"{where}: description is longer than 200 characters.")
        # Stored compact: only what differs from the defaults, so a plain cold destination keeps
        # its original shape (and versions published before these options compare equal).
        options = ({k: v for k, v in _clean_transfer_options(entry, where, errors).items() if v != _DEFAULTS.get(k)}
                   if allow_sip else {})
        try:
            number = normalize_target(str(entry.get("number") or ""), allow_sip=allow_sip)
        except ValueError as exc:
            errors.append(f"{where}: number {exc}.")
            continue
        cleaned.append({"label": label, "number": number, "description": description, **options})
    return cleaned, errors


def destination_options(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A stored transfer destination's warm-transfer options, defaults filled in (entries
    saved before these options existed have none)."""
    return _clean_transfer_options(entry, "", [])


def open_now(entry: Mapping[str, Any], tz_name: str, now: Any) -> bool:
    """Whether the destination takes calls at ``now`` (an aware datetime) in ``tz_name``."""
    from zoneinfo import ZoneInfo

    hours = entry.get("hours")
    if not isinstance(hours, Mapping):
        return True
    local = now.astimezone(ZoneInfo(tz_name or "UTC"))
    clock = local.strftime("%H:%M")
    today, yesterday = WEEKDAYS[local.weekday()], WEEKDAYS[(local.weekday() - 1) % 7]
    days, start, end = list(hours.get("days") or WEEKDAYS), str(hours["start"]), str(hours["end"])
    if start < end:
        return today in days and start <= clock < end
    # spans midnight: open from start on a listed day until end the next morning
    return (today in days and clock >= start) or (yesterday in days and clock < end)


def hours_text(entry: Mapping[str, Any], tz_name: str) -> str:
    """“mon–fri 09:00–17:00 Europe/London”, for the model and people."""
    hours = entry.get("hours")
    if not isinstance(hours, Mapping):
        return "always"
    days = list(hours.get("days") or WEEKDAYS)
    span = f"{days[0]}–{days[-1]}" if days == list(WEEKDAYS[WEEKDAYS.index(days[0]):][:len(days)]) and len(days) > 2 \
        else ", ".join(days)
    return f"{span} {hours['start']}–{hours['end']} {tz_name or 'UTC'}"


def find_destination(entries: Any, label: str) -> Mapping[str, Any] | None:
    """The configured entry called ``label`` (ignoring case and surrounding spaces), if any."""
    wanted = str(label or "").strip().casefold()
    for entry in entries or []:
        if isinstance(entry, Mapping) and str(entry.get("label") or "").strip().casefold() == wanted and wanted:
            return entry
    return None
