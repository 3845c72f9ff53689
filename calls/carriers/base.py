"""The carrier interface: what the platform needs from a telephony carrier.

One implementation per carrier (Twilio, Plivo) sits behind this small, synchronous
interface. It is synchronous because both official SDKs are (``requests`` under the
hood); async callers wrap calls in ``asgiref.sync.sync_to_async``.

Three kinds of work live here and nothing else:

* webhook trust and parsing — signature checks against the *public* URL the carrier
  called (``PUBLIC_BASE_URL`` + path + query, so a TLS-terminating proxy in front of
  Daphne does not break them), and normalising the carrier's form fields into
  :class:`InboundCall` / :class:`StatusUpdate` / :class:`MachineResult`;
* markup — the XML the carrier executes (open a bidirectional media stream, speak a
  rejection, leave a voicemail, dial a transfer target);
* REST — place, hang up, transfer, DTMF, SMS, list numbers, point numbers at us.

Credentials arrive as a plain mapping (decrypted by ``orgs.credentials``) and are never
logged or put into exception text. A credential may carry ``base_url`` to send REST
traffic to a carrier-compatible endpoint other than the vendor's public one (a regional
or self-hosted compatible API; the test fakes on 127.0.0.1 use the same door).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar
from urllib.parse import urlencode, urlsplit

# Paths of the webhook endpoints (see calls/webhook_urls.py, which routes exactly these).
# Kept here so the carrier code that hands URLs to the carrier and the URLconf that
# serves them cannot drift apart.
WEBHOOK_PATHS: dict[str, dict[str, str]] = {
    "twilio": {
        "voice": "/webhooks/twilio/voice",
        "status": "/webhooks/twilio/status",
        "amd": "/webhooks/twilio/amd",
        "transfer": "/webhooks/twilio/transfer",
    },
    "plivo": {
        "answer": "/webhooks/plivo/answer",
        "hangup": "/webhooks/plivo/hangup",
        "amd": "/webhooks/plivo/amd",
        "action": "/webhooks/plivo/action",
        "transfer": "/webhooks/plivo/transfer",
    },
}

# The media WebSocket path. It carries no secret: servers and proxies log request paths
# (uvicorn and Daphne at INFO), so the per-call token travels inside the stream, in the
# carrier's ``start`` message (Twilio <Parameter> → start.customParameters, Plivo
# extraHeaders → start.extra_headers), and the consumer authenticates on that message.
STREAM_PATH = "/ws/{carrier}/{call_id}"
# The same path addressed to one web process (voiceplatform.nodes): the reverse proxy
# routes /ws/n/<node>/... to the process that holds the call's prepared session.
NODE_STREAM_PREFIX = "/ws/n/{node}"


def node_stream_path(path: str, node: str) -> str:
    """``/ws/twilio/<id>`` → ``/ws/n/<node>/twilio/<id>`` (unchanged without a node)."""
    if not node:
        return path
    if not path.startswith("/ws/"):
        raise ValueError(f"not a stream path: {path!r}")
    return NODE_STREAM_PREFIX.format(node=node) + path[len("/ws"):]

POLITE_REJECTION = (
    "Sorry, this number is not in service right now. Please try again later. Goodbye."
)
TRANSFER_FAILED_MESSAGE = "Sorry, the transfer could not be completed. Goodbye."


class CallStatus(enum.StrEnum):
    """Our normalised call lifecycle; both carriers map onto it."""

    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.NO_ANSWER, CallStatus.FAILED, CallStatus.CANCELED}
)

# End reasons implied by a final status that is not a normal completion.
UNANSWERED_END_REASONS: dict[CallStatus, str] = {
    CallStatus.BUSY: "busy",
    CallStatus.NO_ANSWER: "no_answer",
    CallStatus.FAILED: "carrier_failed",
    CallStatus.CANCELED: "canceled",
}


class AnsweredBy(enum.StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


class CarrierError(Exception):
    """A carrier operation failed. ``retryable`` says whether trying again may help.

    The message never contains credentials or phone numbers: it is shown to API users
    and written to logs.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None,
                 gone: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        # The carrier says the call is no longer live (it ended meanwhile).
        self.gone = gone


class WebhookParseError(ValueError):
    """A webhook lacked a required field or carried a value we do not understand."""


@dataclass(frozen=True)
class StreamTarget:
    """Where the carrier should open the call's media WebSocket."""

    call_public_id: str
    token: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    node: str = ""  # the web process to reach ("" for any; see node_stream_path)
    #: spoken by the carrier before the stream opens (recording consent); "" for none
    announcement: str = ""


@dataclass(frozen=True)
class OutboundCallRequest:
    call_public_id: str
    to: str
    from_: str
    stream: StreamTarget
    ring_timeout_s: int = 45
    time_limit_s: int = 3600
    machine_detection: bool = True


@dataclass(frozen=True)
class TransferLegRequest:
    """Dial the human of a warm transfer. Its callbacks go to the ``transfer`` webhook
    with ``?leg=<leg public id>&step=answer|status`` (no number in any URL)."""

    leg_public_id: str
    to: str
    from_: str
    ring_timeout_s: int


@dataclass(frozen=True)
class PlacedCall:
    """What the carrier said when it accepted a dial request.

    Twilio returns the call id at once; Plivo returns a request id and reveals the
    call id (``CallUUID``) only on the first callback.
    """

    carrier_call_id: str | None
    carrier_request_id: str | None
    status: CallStatus


@dataclass(frozen=True)
class InboundCall:
    carrier_call_id: str
    from_: str
    to: str
    direction: str


@dataclass(frozen=True)
class StatusUpdate:
    carrier_call_id: str
    status: CallStatus
    duration_s: int | None = None
    answered_by: AnsweredBy | None = None
    end_reason: str = ""
    # Carrier ordering hint (Twilio SequenceNumber); None where the carrier sends none.
    sequence: int | None = None


@dataclass(frozen=True)
class MachineResult:
    carrier_call_id: str
    answered_by: AnsweredBy
    # True once the greeting is over (Twilio machine_end_*): the right moment to speak.
    message_ended: bool
    raw: str


@dataclass(frozen=True)
class CallCost:
    amount: Decimal  # what the carrier charged, positive
    currency: str


@dataclass(frozen=True)
class CarrierNumber:
    """A phone number owned by the carrier account."""

    e164: str
    carrier_number_id: str
    label: str
    voice_url: str


@dataclass(frozen=True)
class WebhookRequest:
    """The parts of an HTTP request a signature check needs, framework-free.

    ``path`` and ``query_string`` are what the carrier called; the public URL is rebuilt
    from ``public_base_url`` because behind a proxy the local Host/scheme differ.
    """

    method: str
    path: str
    query_string: str
    form: Mapping[str, list[str]]
    headers: Mapping[str, str]


def form_single(form: Mapping[str, list[str]], name: str, *, required: bool = True) -> str:
    values = form.get(name) or []
    if not values or values[0] == "":
        if required:
            raise WebhookParseError(f"missing required field {name!r}")
        return ""
    return values[0]


class Carrier(abc.ABC):
    """One carrier account. Instances are cheap; build one per operation."""

    name: ClassVar[str]
    # Keys that must be present in the credential mapping.
    credential_fields: ClassVar[tuple[str, ...]]

    def __init__(self, credentials: Mapping[str, str], *, public_base_url: str) -> None:
        missing = [k for k in self.credential_fields if not credentials.get(k)]
        if missing:
            raise CarrierError(f"{self.name} credential is missing field(s): {', '.join(missing)}")
        self._credentials = dict(credentials)
        base = public_base_url.rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CarrierError(f"PUBLIC_BASE_URL must be an absolute http(s) URL, got {public_base_url!r}")
        self.public_base_url = base

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} public_base_url={self.public_base_url!r}>"

    # --- URLs -----------------------------------------------------------------
    def webhook_url(self, kind: str, **query: str) -> str:
        path = WEBHOOK_PATHS[self.name][kind]
        url = self.public_base_url + path
        return f"{url}?{urlencode(sorted(query.items()))}" if query else url

    def stream_url(self, target: StreamTarget) -> str:
        parts = urlsplit(self.public_base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = node_stream_path(STREAM_PATH.format(carrier=self.name, call_id=target.call_public_id), target.node)
        return f"{scheme}://{parts.netloc}{parts.path}{path}"

    def public_url(self, request: WebhookRequest) -> str:
        parts = urlsplit(self.public_base_url)
        url = f"{parts.scheme}://{parts.netloc}{parts.path}{request.path}"
        return f"{url}?{request.query_string}" if request.query_string else url

    # --- webhooks -------------------------------------------------------------
    @abc.abstractmethod
    def verify_webhook(self, request: WebhookRequest) -> bool:
        """True only if the request carries a valid signature for our public URL."""

    @abc.abstractmethod
    def parse_inbound(self, form: Mapping[str, list[str]]) -> InboundCall: ...

    @abc.abstractmethod
    def parse_status(self, form: Mapping[str, list[str]]) -> StatusUpdate: ...

    @abc.abstractmethod
    def parse_machine_detection(self, form: Mapping[str, list[str]]) -> MachineResult: ...

    # --- markup ---------------------------------------------------------------
    @abc.abstractmethod
    def stream_markup(self, target: StreamTarget) -> str: ...

    # Markup that needs no credentials is a classmethod: an unknown number must still
    # get its polite rejection although no org (and so no credential) is known.
    @classmethod
    @abc.abstractmethod
    def say_and_hangup_markup(cls, message: str) -> str: ...

    @classmethod
    def reject_markup(cls) -> str:
        return cls.say_and_hangup_markup(POLITE_REJECTION)

    @classmethod
    @abc.abstractmethod
    def dial_markup(cls, to: str, caller_id: str) -> str: ...

    # --- REST -----------------------------------------------------------------
    @abc.abstractmethod
    def place_call(self, request: OutboundCallRequest) -> PlacedCall: ...

    @abc.abstractmethod
    def hangup(self, carrier_call_id: str) -> None: ...

    def cancel_request(self, carrier_request_id: str) -> None:
        """Cancel a dial the carrier has not yet turned into a call (Plivo only)."""
        raise CarrierError(f"{self.name} calls always have a call id; hang up with it instead")

    @abc.abstractmethod
    def transfer(self, carrier_call_id: str, *, call_public_id: str, to: str, caller_id: str) -> None:
        """Cold transfer: the live call leaves our stream and dials ``to``."""

    # --- warm transfer (calls.services.transfer) --------------------------------
    def transfer_url(self, leg_public_id: str, step: str) -> str:
        return self.webhook_url("transfer", leg=leg_public_id, step=step)

    @abc.abstractmethod
    def dial_transfer_leg(self, request: TransferLegRequest) -> PlacedCall:
        """Dial the human; on answer the carrier fetches ``step=answer`` (the whisper)."""

    @abc.abstractmethod
    def whisper_markup(self, text: str, *, leg_public_id: str, confirm: bool) -> str:
        """What the human hears on answer: ``text``, then (after pressing 1 when
        ``confirm``) the carrier fetches ``step=join``."""

    @classmethod
    @abc.abstractmethod
    def conference_markup(cls, conference: str) -> str:
        """Join the transfer's conference; whoever leaves ends it (no one is left alone in it)."""

    @abc.abstractmethod
    def move_to_conference(self, carrier_call_id: str, *, call_public_id: str, conference: str) -> None:
        """Take the caller off the agent's media stream and into ``conference``."""

    @abc.abstractmethod
    def leave_message_and_hangup(self, carrier_call_id: str, *, call_public_id: str, message: str) -> None:
        """Replace the live call's markup: speak ``message`` (voicemail), then hang up."""

    @abc.abstractmethod
    def send_dtmf(self, carrier_call_id: str, digits: str, *, resume: StreamTarget | None) -> None:
        """Play DTMF tones to the caller's leg. ``resume`` re-opens the media stream
        where the carrier can only send digits by replacing the call's markup."""

    @abc.abstractmethod
    def send_sms(self, *, from_: str, to: str, text: str) -> str:
        """Send a text message; returns the carrier's message id."""

    @abc.abstractmethod
    def fetch_cost(self, carrier_call_id: str) -> CallCost | None:
        """What the carrier billed for a finished call; None while it has not priced it yet."""

    @abc.abstractmethod
    def list_numbers(self) -> list[CarrierNumber]: ...

    @abc.abstractmethod
    def configure_number(self, number: CarrierNumber) -> CarrierNumber:
        """Point the number's voice webhooks at this platform; returns the new state."""


DTMF_ALLOWED = frozenset("0123456789*#wW")


def validate_dtmf(digits: str) -> str:
    if not digits or any(ch not in DTMF_ALLOWED for ch in digits):
        raise CarrierError("DTMF digits must be non-empty and use only 0-9, *, # and w (pause)")
    if len(digits) > 64:
        raise CarrierError("DTMF digits are limited to 64 characters")
    return digits
