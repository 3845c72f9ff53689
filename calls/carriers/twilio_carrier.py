"""Twilio, on the official ``twilio`` SDK (REST, TwiML, RequestValidator)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Dial, Gather, VoiceResponse

from calls.carriers.base import (
    UNANSWERED_END_REASONS,
    AnsweredBy,
    CallCost,
    CallStatus,
    Carrier,
    CarrierError,
    CarrierNumber,
    InboundCall,
    MachineResult,
    OutboundCallRequest,
    PlacedCall,
    StatusUpdate,
    StreamTarget,
    TransferLegRequest,
    WebhookParseError,
    WebhookRequest,
    form_single,
    validate_dtmf,
)
from voiceplatform import outbound

logger = logging.getLogger(__name__)
# The SDK logs every request URL and header set at INFO; URLs of list calls can carry
# phone numbers, which must not reach our logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

REST_TIMEOUT_S = 10.0

STATUS_MAP: dict[str, CallStatus] = {
    "queued": CallStatus.QUEUED,
    "initiated": CallStatus.QUEUED,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "answered": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "failed": CallStatus.FAILED,
    "no-answer": CallStatus.NO_ANSWER,
    "canceled": CallStatus.CANCELED,
}

# AnsweredBy values of (async) answering-machine detection.
AMD_MAP: dict[str, tuple[AnsweredBy, bool]] = {
    "human": (AnsweredBy.HUMAN, False),
    "machine_start": (AnsweredBy.MACHINE, False),
    "machine_end_beep": (AnsweredBy.MACHINE, True),
    "machine_end_silence": (AnsweredBy.MACHINE, True),
    "machine_end_other": (AnsweredBy.MACHINE, True),
    "fax": (AnsweredBy.MACHINE, True),
    "unknown": (AnsweredBy.UNKNOWN, False),
}


class _FormParams:
    """Adapter so RequestValidator sees every value of repeated form fields."""

    def __init__(self, form: Mapping[str, list[str]]) -> None:
        self._form = form

    def __iter__(self) -> Iterator[str]:
        return iter(self._form)

    def __bool__(self) -> bool:
        return bool(self._form)

    def getlist(self, name: str) -> list[str]:
        return list(self._form.get(name, []))


class RebasedTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types: its base is Any
    """Sends every Twilio domain's requests to another scheme+host, keeping the path.

    twilio-python has no base-URL option (hosts are hard-coded per domain), so this is
    the one door for Twilio-compatible endpoints and for the local fakes. The override is
    customer-supplied, so the session's adapter is the outbound guard's: the host is
    resolved once, refused if not public, and the connection goes to the checked address.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(pool_connections=True, **kwargs)
        adapter = outbound.GuardedRequestsAdapter(outbound.Policy(total_timeout_s=REST_TIMEOUT_S), rebase=base_url)
        assert self.session is not None
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)


def _map_error(exc: Exception, operation: str) -> CarrierError:
    if isinstance(exc, outbound.OutboundRefused):
        return CarrierError(f"Twilio {operation} refused: the base_url is not allowed ({exc.message})", retryable=False)
    if isinstance(exc, outbound.OutboundError):  # the override's server was too slow or answered too much
        return CarrierError(f"Twilio {operation} failed: {exc.message}", retryable=True)
    if isinstance(exc, TwilioRestException):
        retryable = exc.status >= 500 or exc.status == 429
        # exc.msg is Twilio's own explanation (no secrets); keep its error code for support.
        return CarrierError(
            f"Twilio {operation} failed (HTTP {exc.status}, code {exc.code}): {exc.msg}",
            retryable=retryable,
            status=exc.status,
            # 21220: "Call is not in-progress"; 404: no such (live) call.
            gone=exc.code == 21220 or exc.status == 404,
        )
    if isinstance(exc, requests.RequestException):
        return CarrierError(f"Twilio {operation} failed: carrier API unreachable ({type(exc).__name__})", retryable=True)
    return CarrierError(f"Twilio {operation} failed: {type(exc).__name__}", retryable=False)


class TwilioCarrier(Carrier):
    name: ClassVar[str] = "twilio"
    credential_fields: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token")

    def __init__(self, credentials: Mapping[str, str], *, public_base_url: str) -> None:
        super().__init__(credentials, public_base_url=public_base_url)
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            base = self._credentials.get("base_url")
            http = (
                RebasedTwilioHttpClient(base, timeout=REST_TIMEOUT_S)
                if base
                else TwilioHttpClient(timeout=REST_TIMEOUT_S)
            )
            self._client = Client(self._credentials["account_sid"], self._credentials["auth_token"], http_client=http)
        return self._client

    # --- webhooks -------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        validator = RequestValidator(self._credentials["auth_token"])
        # GET webhooks are signed over the URL alone: the parameters are in its query.
        params: _FormParams | dict[str, str] = _FormParams(request.form) if request.method.upper() == "POST" else {}
        return bool(validator.validate(self.public_url(request), params, signature))

    def parse_inbound(self, form: Mapping[str, list[str]]) -> InboundCall:
        return InboundCall(
            carrier_call_id=form_single(form, "CallSid"),
            from_=form_single(form, "From"),
            to=form_single(form, "To"),
            direction=form_single(form, "Direction", required=False) or "inbound",
        )

    def parse_status(self, form: Mapping[str, list[str]]) -> StatusUpdate:
        raw = form_single(form, "CallStatus")
        status = STATUS_MAP.get(raw)
        if status is None:
            raise WebhookParseError(f"unknown CallStatus {raw!r}")
        duration = form_single(form, "CallDuration", required=False)
        sequence = form_single(form, "SequenceNumber", required=False)
        answered_raw = form_single(form, "AnsweredBy", required=False)
        try:
            duration_s = int(duration) if duration else None
            seq = int(sequence) if sequence else None
        except ValueError as exc:
            raise WebhookParseError("CallDuration/SequenceNumber must be integers") from exc
        answered_by = AMD_MAP[answered_raw][0] if answered_raw in AMD_MAP else None
        end_reason = UNANSWERED_END_REASONS.get(status, "")
        return StatusUpdate(
            carrier_call_id=form_single(form, "CallSid"),
            status=status,
            duration_s=duration_s,
            answered_by=answered_by,
            end_reason=end_reason,
            sequence=seq,
        )

    def parse_machine_detection(self, form: Mapping[str, list[str]]) -> MachineResult:
        raw = form_single(form, "AnsweredBy")
        if raw not in AMD_MAP:
            raise WebhookParseError(f"unknown AnsweredBy {raw!r}")
        answered_by, ended = AMD_MAP[raw]
        return MachineResult(
            carrier_call_id=form_single(form, "CallSid"), answered_by=answered_by, message_ended=ended, raw=raw
        )

    # --- markup ---------------------------------------------------------------
    def _connect_stream(self, target: StreamTarget) -> Connect:
        connect = Connect()
        stream = connect.stream(url=self.stream_url(target), name="agent")
        # Twilio drops query strings on stream URLs; parameters arrive in
        # start.customParameters: the token travels only there (never in the URL).
        params = {"call_id": target.call_public_id, "token": target.token, **dict(target.parameters)}
        for key, value in params.items():
            stream.parameter(name=key, value=value)
        return connect

    def stream_markup(self, target: StreamTarget) -> str:
        response = VoiceResponse()
        if target.announcement:
            response.say(target.announcement)
        response.append(self._connect_stream(target))
        return str(response.to_xml())

    @classmethod
    def say_and_hangup_markup(cls, message: str) -> str:
        response = VoiceResponse()
        response.say(message)
        response.hangup()
        return str(response.to_xml())

    @classmethod
    def dial_markup(cls, to: str, caller_id: str) -> str:
        response = VoiceResponse()
        dial = Dial(caller_id=caller_id or None)
        if to.lower().startswith(("sip:", "sips:")):
            dial.sip(to)  # a transfer destination may be a SIP endpoint (agents.builtin_tools)
        else:
            dial.number(to)
        response.append(dial)
        return str(response.to_xml())

    # --- REST -----------------------------------------------------------------
    def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        status_url = self.webhook_url("status", call=request.call_public_id)
        kwargs: dict[str, Any] = {
            "to": request.to,
            "from_": request.from_,
            # Inline TwiML: the stream starts without a webhook round-trip on answer.
            "twiml": self.stream_markup(request.stream),
            "status_callback": status_url,
            "status_callback_method": "POST",
            "status_callback_event": ["initiated", "ringing", "answered", "completed"],
            "timeout": request.ring_timeout_s,
            "time_limit": request.time_limit_s,
        }
        if request.machine_detection:
            kwargs.update(
                machine_detection="DetectMessageEnd",
                async_amd="true",
                async_amd_status_callback=self.webhook_url("amd", call=request.call_public_id),
                async_amd_status_callback_method="POST",
            )
        try:
            call = self.client.calls.create(**kwargs)
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "place call") from exc
        status = STATUS_MAP.get(str(call.status or "queued"), CallStatus.QUEUED)
        logger.info("carrier.call_placed", extra={"carrier": self.name, "carrier_call_id": call.sid})
        return PlacedCall(carrier_call_id=call.sid, carrier_request_id=None, status=status)

    def _update(self, carrier_call_id: str, operation: str, **kwargs: Any) -> None:
        try:
            self.client.calls(carrier_call_id).update(**kwargs)
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, operation) from exc

    def hangup(self, carrier_call_id: str) -> None:
        self._update(carrier_call_id, "hang up", status="completed")

    def transfer(self, carrier_call_id: str, *, call_public_id: str, to: str, caller_id: str) -> None:
        # Replacing the live call's TwiML ends the <Connect><Stream> and dials the target.
        self._update(carrier_call_id, "transfer", twiml=self.dial_markup(to, caller_id))

    # --- warm transfer: a call leg whose TwiML whispers, then <Dial><Conference> ---------
    def dial_transfer_leg(self, request: TransferLegRequest) -> PlacedCall:
        try:
            call = self.client.calls.create(
                to=request.to,
                from_=request.from_,
                url=self.transfer_url(request.leg_public_id, "answer"),
                method="POST",
                status_callback=self.transfer_url(request.leg_public_id, "status"),
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                timeout=request.ring_timeout_s,
            )
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "dial transfer") from exc
        status = STATUS_MAP.get(str(call.status or "queued"), CallStatus.QUEUED)
        return PlacedCall(carrier_call_id=call.sid, carrier_request_id=None, status=status)

    def whisper_markup(self, text: str, *, leg_public_id: str, confirm: bool) -> str:
        response = VoiceResponse()
        join = self.transfer_url(leg_public_id, "join")
        if confirm:
            gather = Gather(num_digits=1, action=join, method="POST", timeout=8)
            gather.say(f"{text} Press 1 to take the call.")
            response.append(gather)
            response.say("No key was pressed. Goodbye.")
            response.hangup()
        else:
            response.say(text)
            response.redirect(join, method="POST")
        return str(response.to_xml())

    @classmethod
    def conference_markup(cls, conference: str) -> str:
        response = VoiceResponse()
        dial = Dial()
        dial.conference(conference, beep=False, start_conference_on_enter=True, end_conference_on_exit=True)
        response.append(dial)
        return str(response.to_xml())

    def move_to_conference(self, carrier_call_id: str, *, call_public_id: str, conference: str) -> None:
        # Replacing the TwiML ends <Connect><Stream> (the agent leaves) and dials the room.
        self._update(carrier_call_id, "bridge transfer", twiml=self.conference_markup(conference))

    def leave_message_and_hangup(self, carrier_call_id: str, *, call_public_id: str, message: str) -> None:
        self._update(carrier_call_id, "leave message", twiml=self.say_and_hangup_markup(message))

    def send_dtmf(self, carrier_call_id: str, digits: str, *, resume: StreamTarget | None) -> None:
        validate_dtmf(digits)
        # A bidirectional media stream cannot carry DTMF out, so the call's TwiML is
        # replaced by <Play digits> and, when asked, a fresh <Connect><Stream> to resume.
        response = VoiceResponse()
        response.play(digits=digits)
        if resume is not None:
            response.append(self._connect_stream(resume))
        self._update(carrier_call_id, "send DTMF", twiml=str(response.to_xml()))

    def send_sms(self, *, from_: str, to: str, text: str) -> str:
        if not text.strip():
            raise CarrierError("SMS text must not be empty")
        try:
            message = self.client.messages.create(from_=from_, to=to, body=text)
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "send SMS") from exc
        return str(message.sid)

    def fetch_cost(self, carrier_call_id: str) -> CallCost | None:
        try:
            call = self.client.calls(carrier_call_id).fetch()
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "fetch call") from exc
        if call.price in (None, ""):
            return None  # Twilio prices a call some time after it ends
        try:
            amount = abs(Decimal(str(call.price)))
        except InvalidOperation as exc:
            raise CarrierError(f"Twilio returned a price that is not a number: {call.price!r}") from exc
        return CallCost(amount=amount, currency=str(call.price_unit or "USD").upper()[:3])

    def list_numbers(self) -> list[CarrierNumber]:
        try:
            records: Iterable[Any] = self.client.incoming_phone_numbers.list()
            return [
                CarrierNumber(
                    e164=str(r.phone_number),
                    carrier_number_id=str(r.sid),
                    label=str(r.friendly_name or ""),
                    voice_url=str(r.voice_url or ""),
                )
                for r in records
            ]
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "list numbers") from exc

    def configure_number(self, number: CarrierNumber) -> CarrierNumber:
        voice_url = self.webhook_url("voice")
        try:
            r = self.client.incoming_phone_numbers(number.carrier_number_id).update(
                voice_url=voice_url,
                voice_method="POST",
                status_callback=self.webhook_url("status"),
                status_callback_method="POST",
            )
        except (TwilioException, requests.RequestException) as exc:
            raise _map_error(exc, "configure number") from exc
        return CarrierNumber(
            e164=str(r.phone_number or number.e164),
            carrier_number_id=str(r.sid or number.carrier_number_id),
            label=str(r.friendly_name or number.label),
            voice_url=str(r.voice_url or voice_url),
        )
