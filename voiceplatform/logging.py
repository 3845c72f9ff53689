"""Structured logs: one JSON object a line, extra fields kept as keys.

Callers pass identifiers (call public id, org slug) through ``extra=``; phone
numbers, transcripts, prompts and secrets never go into log records.
"""
from __future__ import annotations

import json
import logging
import logging.config
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from voiceplatform import redaction as pii

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            # exc_text, when set, is the traceback already scrubbed of secrets (see redact_record).
            payload["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload)


# --------------------------------------------------------------------------- secret redaction
#
# No log line may carry a secret, whoever wrote it: our code, httpx (which logs every
# request URL at INFO, and the Telegram Bot API puts the bot token in the path), uvicorn's
# access log (a media token in a WebSocket path, Meta's hub.verify_token in a query string),
# an SDK's DEBUG dump of headers. Two layers:
# - ``RedactSecretsFilter`` on every handler in settings.LOGGING scrubs the message,
#   arguments, exception text and ``extra`` fields on the way out;
# - ``install_record_redaction`` scrubs message, arguments and exception text when a record
#   is created, so handlers configured elsewhere (uvicorn's own dictConfig, test capture, an
#   error tracker) never see the secret either.
# Both recognise secrets by shape (below); a false positive costs a redacted word in a log.

REDACTED = "[redacted]"

# A header/field/parameter name that says its value is a secret.
# "tokens" (token counts: input_tokens=812) is usage, not a credential.
_SECRET_NAME = (r"[\w.-]*(?:authorization|token(?!s\b)|secret|signature|password|passwd|api[_-]?key|apikey|cookie|"
                r"credential|private[_-]?key)[\w.-]*")
_SECRET_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Telegram Bot API URLs: https://api.telegram.org/bot<id>:<secret>/<method>
    (re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"), rf"\1{REDACTED}"),
    # A bare Telegram bot token (8-10 digit bot id, 35-character secret).
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}"), REDACTED),
    # Media-stream paths carry a per-call token after the call id (also below a node
    # prefix, /ws/n/<node>/twilio/…, the scale-out addressing of voiceplatform.nodes).
    (re.compile(r"(/ws/(?:n/[a-z0-9][a-z0-9-]{0,39}/)?(?:twilio|plivo|web)/[0-9a-fA-F-]{8,64}/)[A-Za-z0-9_-]+"),
     rf"\1{REDACTED}"),
    # JSON Web Tokens (LiveKit join tokens and webhook signatures, OAuth id tokens), bare.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"), REDACTED),
    # Header, dict, JSON and tuple shapes: `X-Twilio-Signature: v`, "access_token": "v",
    # 'x-telegram-bot-token': 'v', (b'authorization', b'Bearer v'), `Authorization: Token v` (Deepgram).
    (re.compile(rf"(?i)(\b{_SECRET_NAME}(?:['\"]?\s*:|['\"]\s*,)\s*(?:b?['\"])?)(?:(?:bearer|basic|token)\s+)?"
                rf"(?!\[redacted\])[^'\"\s,;&}})\]]+"), rf"\1{REDACTED}"),
    # name=value in query strings, form bodies and key=value logs (access_token=, hub.verify_token=, api_key=).
    (re.compile(rf"(?i)(\b{_SECRET_NAME}=)(?!\[redacted\])[^&\s,;'\"<>]+"), rf"\1{REDACTED}"),
    # Capability URLs (hosted MCP servers, webhook relays) carry a long random path segment; ids
    # stay readable: a UUID is 36 characters, a uuid hex 32, so 40+ is a token, not an id.
    (re.compile(r"(?<=/)(?=[A-Za-z0-9_-]*[A-Za-z])(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{40,}(?=[/?#\s\"']|$)"),
     REDACTED),
    # Query parameters whose bare name is a credential (Gemini's ?key=, signed URLs' &sig=, OAuth's ?code=).
    (re.compile(r"(?i)([?&](?:key|sig|auth|code)=)(?!\[redacted\])[^&\s#'\"<>]+"), rf"\1{REDACTED}"),
    # Credentials after an HTTP auth scheme (as written in headers, so "a bearer token" in prose stays).
    (re.compile(r"\b(Bearer|Basic)(\s+)(?!\[redacted\])[A-Za-z0-9._~+/=:-]{4,}"), rf"\1\2{REDACTED}"),
    # Vendor and platform secrets recognisable by prefix.
    # webhook and HTTP-tool signing secrets, Shopify tokens
    (re.compile(r"\b(?:whsec|htsec|shpat|shpca|shppa|shpss)_[A-Za-z0-9_-]{8,}"), REDACTED),
    (re.compile(r"\bvp_[A-Za-z0-9_-]{16,}"), REDACTED),  # platform API keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\bya29\.[A-Za-z0-9._-]+"), REDACTED),  # Google access tokens
    (re.compile(r"(?<![\w/])1//[A-Za-z0-9_-]{8,}"), REDACTED),  # Google refresh tokens
    (re.compile(r"\bEAA[A-Za-z0-9]{20,}"), REDACTED),  # Meta (WhatsApp Cloud API) access tokens
    (re.compile(r"\bAIza[A-Za-z0-9_-]{30,}"), REDACTED),  # Google API keys
)

_SECRET_FIELD = re.compile(_SECRET_NAME, re.IGNORECASE)


# Personal data that slips into a log line anyway (a library's message, an exception that
# quotes its input) becomes a typed placeholder (voiceplatform.redaction): international
# phone numbers, e-mail addresses and Luhn-valid card numbers. IBANs and national ids are
# left to the stored-data redaction: their shapes collide with hex ids in log lines.
_MAYBE_CARD = re.compile(r"\d(?:[ -]?\d){12}")
_MAYBE_PHONE = re.compile(r"\+\s?\d")


def _pii_kinds(text: str) -> tuple[str, ...]:
    """The detectors worth running on ``text`` (cheap pre-checks: most log lines need none)."""
    return tuple(kind for kind, present in (
        (pii.EMAIL, "@" in text), (pii.CARD, _MAYBE_CARD.search(text)), (pii.PHONE, _MAYBE_PHONE.search(text)),
    ) if present)


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[redacted]`` and personal data
    (phone numbers, e-mail addresses, card numbers) by its placeholder."""
    for pattern, replacement in _SECRET_SHAPES:
        text = pattern.sub(replacement, text)
    kinds = _pii_kinds(text)
    if kinds:
        text = pii.redact(text, kinds)
    return text


def _redact_arg(value: Any) -> Any:
    # Numbers stay numbers (a %d placeholder needs one); anything else that prints a secret
    # becomes the redacted text (httpx passes URL objects).
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break logging
        return value
    cleaned = redact(text)
    return value if cleaned == text else cleaned


def redact_record(record: logging.LogRecord, *, include_extra: bool) -> None:
    """Scrub ``record`` in place: message, arguments, exception and stack text (and ``extra`` fields).

    Arguments are scrubbed one by one and the template kept, so formatters that read
    ``record.args`` (uvicorn's access formatter unpacks them) still work; only when the
    joined message still shows a secret (it sits in the template, or spans arguments: "bot%s"
    % token) is the record collapsed to its scrubbed text.
    """
    args = record.args
    if isinstance(args, tuple):
        record.args = tuple(_redact_arg(a) for a in args)
    elif isinstance(args, Mapping):
        record.args = {k: _redact_arg(v) for k, v in args.items()}
    try:
        rendered = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record: scrub the template, leave the error to the handler
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        rendered = None
    if rendered is not None:
        cleaned = redact(rendered)
        if cleaned != rendered:
            record.msg, record.args = cleaned, ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    if include_extra:
        for key, value in list(vars(record).items()):
            if key in _STANDARD or key.startswith("_"):
                continue
            try:
                if _SECRET_FIELD.fullmatch(key) and value not in (None, ""):
                    setattr(record, key, REDACTED)
                elif isinstance(value, str):
                    setattr(record, key, redact(value))
            except ReferenceError:
                # websockets puts a weak proxy of its connection in ``extra``; once the
                # connection is gone it cannot even be type-checked (and holds no text).
                setattr(record, key, None)


class RedactSecretsFilter(logging.Filter):
    """Handler filter: scrubs secrets out of every record a handler writes (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, include_extra=True)
        return True


_INSTALLED_FACTORY: Callable[..., logging.LogRecord] | None = None


def install_record_redaction() -> None:
    """Scrub every log record as it is created, in this process, whatever handler receives it. Idempotent."""
    global _INSTALLED_FACTORY
    current = logging.getLogRecordFactory()
    if current is _INSTALLED_FACTORY:
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        redact_record(record, include_extra=False)
        return record

    _INSTALLED_FACTORY = factory
    logging.setLogRecordFactory(factory)


def configure_logging(config: dict[str, Any]) -> None:
    """settings.LOGGING_CONFIG: the dictConfig of settings.LOGGING, plus redaction at record creation."""
    logging.config.dictConfig(config)
    install_record_redaction()
