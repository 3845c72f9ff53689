"""Plivo, on the official ``plivo`` SDK (REST, Plivo XML, signature V3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import plivo
import requests
from plivo import plivoxml
from plivo.exceptions import PlivoRestError, PlivoServerError, ResourceNotFoundError
from plivo.exceptions import ValidationError as PlivoValidationError
from plivo.utils import validate_v3_signature

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

REST_TIMEOUT_S = 10
# Name of the Plivo Application this platform creates to route a number's calls to us.
APPLICATION_NAME = "voiceplatform"

STATUS_MAP: dict[str, CallStatus] = {
    "queued": CallStatus.QUEUED,
    "ringing": CallStatus.RINGING,
    "early-media": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "failed": CallStatus.FAILED,
    "timeout": CallStatus.NO_ANSWER,
    "no-answer": CallStatus.NO_ANSWER,
    "cancel": CallStatus.CANCELED,
    "canceled": CallStatus.CANCELED,
    "cancelled": CallStatus.CANCELED,
}


def _map_error(exc: Exception, operation: str) -> CarrierError:
    if isinstance(exc, outbound.OutboundRefused):
        return CarrierError(f"Plivo {operation} refused: the base_url is not allowed ({exc.message})", retryable=False)
    if isinstance(exc, outbound.OutboundError):  # the override's server was too slow or answered too much
        return CarrierError(f"Plivo {operation} failed: {exc.message}", retryable=True)
    if isinstance(exc, PlivoServerError):
        return CarrierError(f"Plivo {operation} failed: server error", retryable=True, status=500)
    if isinstance(exc, ResourceNotFoundError):
        # Plivo answers 404 for a call that has already ended.
        return CarrierError(f"Plivo {operation} failed: {exc}", retryable=False, status=404, gone=True)
    if isinstance(exc, PlivoRestError):
        # Plivo's error text names the bad parameter; it carries no credentials.
        return CarrierError(f"Plivo {operation} failed: {exc}", retryable=False)
    if isinstance(exc, requests.RequestException):
        return CarrierError(f"Plivo {operation} failed: carrier API unreachable ({type(exc).__name__})", retryable=True)
    return CarrierError(f"Plivo {operation} failed: {type(exc).__name__}", retryable=False)


_PLIVO_ERRORS = (PlivoRestError, PlivoValidationError, requests.RequestException)


class PlivoCarrier(Carrier):
    name: ClassVar[str] = "plivo"
    credential_fields: ClassVar[tuple[str, ...]] = ("auth_id", "auth_token")

    def __init__(self, credentials: Mapping[str, str], *, public_base_url: str) -> None:
        super().__init__(credentials, public_base_url=public_base_url)
        self._client: plivo.RestClient | None = None

    @property
    def client(self) -> plivo.RestClient:
        if self._client is None:
            try:
                client = plivo.RestClient(
                    self._credentials["auth_id"], self._credentials["auth_token"], timeout=REST_TIMEOUT_S
                )
            except PlivoRestError as exc:
                raise CarrierError("Plivo credential rejected: auth_id must be 20 characters starting MA or SA") from exc
            base = self._credentials.get("base_url")
            if base:
                # The plivo SDK re-reads its module-level base URIs on every request, so the
                # override is an adapter on this client's own sessions (no global patching).
                # It is the outbound guard's: customer-supplied, so resolved once, refused if
                # not public, and connected to the checked address.
                adapter = outbound.GuardedRequestsAdapter(outbound.Policy(total_timeout_s=REST_TIMEOUT_S),
                                                          rebase=base)
                client.session.mount("https://", adapter)
                client.multipart_session.mount("https://", adapter)
            self._client = client
        return self._client

    # --- webhooks -------------------------------------------------------------
    def verify_webhook(self, request: WebhookRequest) -> bool:
        signature = request.headers.get("X-Plivo-Signature-V3", "")
        nonce = request.headers.get("X-Plivo-Signature-V3-Nonce", "")
        if not signature or not nonce:
            return False
        # Plivo sends single-valued fields; the SDK wants a flat dict (and mutates it on GET).
        params = {k: v[0] for k, v in request.form.items() if v}
        try:
            return bool(
                validate_v3_signature(
                    request.method.upper(),
                    self.public_url(request),
                    nonce,
                    self._credentials["auth_token"],
                    signature,
                    params,
                )
            )
        except (PlivoValidationError, TypeError, ValueError):
            return False

    def parse_inbound(self, form: Mapping[str, list[str]]) -> InboundCall:
        return InboundCall(
            carrier_call_id=form_single(form, "CallUUID"),
            from_=_e164(form_single(form, "From")),
            to=_e164(form_single(form, "To")),
            direction=form_single(form, "Direction", required=False) or "inbound",
        )

    def parse_status(self, form: Mapping[str, list[str]]) -> StatusUpdate:
        raw = form_single(form, "CallStatus")
        status = STATUS_MAP.get(raw)
        if status is None:
            raise WebhookParseError(f"unknown CallStatus {raw!r}")
        duration = form_single(form, "Duration", required=False)
        try:
            duration_s = int(duration) if duration else None
        except ValueError as exc:
            raise WebhookParseError("Duration must be an integer") from exc
        cause = form_single(form, "HangupCause", required=False)
        machine = form_single(form, "Machine", required=False).lower()
        answered_by = {"true": AnsweredBy.MACHINE, "false": AnsweredBy.HUMAN}.get(machine)
        end_reason = UNANSWERED_END_REASONS.get(status, "")
        if status is CallStatus.COMPLETED and cause:
            end_reason = cause.lower()[:64]
        return StatusUpdate(
            carrier_call_id=form_single(form, "CallUUID"),
            status=status,
            duration_s=duration_s,
            answered_by=answered_by,
            end_reason=end_reason,
        )

    def parse_machine_detection(self, form: Mapping[str, list[str]]) -> MachineResult:
        raw = form_single(form, "Machine").lower()
        if raw not in ("true", "false"):
            raise WebhookParseError(f"unknown Machine value {raw!r}")
        answered_by = AnsweredBy.MACHINE if raw == "true" else AnsweredBy.HUMAN
        # Plivo reports the verdict once; it has no separate "greeting ended" signal.
        return MachineResult(
            carrier_call_id=form_single(form, "CallUUID"),
            answered_by=answered_by,
            message_ended=answered_by is AnsweredBy.MACHINE,
            raw=raw,
        )

    # --- markup ---------------------------------------------------------------
    def stream_markup(self, target: StreamTarget) -> str:
        # extraHeaders allows letters and digits only, so the UUID travels without dashes.
        headers = {"callid": target.call_public_id.replace("-", ""), "token": target.token}
        headers.update({k: v for k, v in target.parameters.items() if k.isalnum() and v.isalnum()})
        element = plivoxml.StreamElement(
            self.stream_url(target),
            bidirectional=True,
            keepCallAlive=True,
            audioTrack="inbound",
            contentType="audio/x-mulaw;rate=8000",
            extraHeaders=",".join(f"{k}={v}" for k, v in headers.items()),
        )
        response = plivoxml.ResponseElement()
        if target.announcement:
            response.add_speak(target.announcement)
        return str(response.add(element).to_string())

    @classmethod
    def say_and_hangup_markup(cls, message: str) -> str:
        response = plivoxml.ResponseElement()
        response.add_speak(message)
        response.add_hangup()
        return str(response.to_string())

    @classmethod
    def dial_markup(cls, to: str, caller_id: str) -> str:
        response = plivoxml.ResponseElement()
        dial = plivoxml.DialElement(caller_id=caller_id or None)
        if to.lower().startswith(("sip:", "sips:")):
            dial.add(plivoxml.UserElement(to))  # a transfer destination may be a SIP endpoint
        else:
            dial.add(plivoxml.NumberElement(to.lstrip("+")))
        response.add(dial)
        return str(response.to_string())

    # --- REST -----------------------------------------------------------------
    def place_call(self, request: OutboundCallRequest) -> PlacedCall:
        call_id = request.call_public_id
        kwargs: dict[str, Any] = {
            "from_": request.from_.lstrip("+"),
            "to_": request.to.lstrip("+"),
            "answer_url": self.webhook_url("answer", call=call_id),
            "answer_method": "POST",
            "hangup_url": self.webhook_url("hangup", call=call_id),
            "hangup_method": "POST",
            "ring_url": self.webhook_url("hangup", call=call_id),
            "ring_method": "POST",
            "ring_timeout": request.ring_timeout_s,
            "time_limit": request.time_limit_s,
        }
        if request.machine_detection:
            kwargs.update(
                machine_detection="true",
                machine_detection_url=self.webhook_url("amd", call=call_id),
                machine_detection_method="POST",
            )
        try:
            response = self.client.calls.create(**kwargs)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "place call") from exc
        request_uuid = getattr(response, "request_uuid", None)
        if not request_uuid:
            raise CarrierError("Plivo place call failed: response had no request_uuid")
        logger.info("carrier.call_placed", extra={"carrier": self.name, "carrier_request_id": request_uuid})
        return PlacedCall(carrier_call_id=None, carrier_request_id=str(request_uuid), status=CallStatus.QUEUED)

    def hangup(self, carrier_call_id: str) -> None:
        try:
            self.client.calls.delete(carrier_call_id)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "hang up") from exc

    def cancel_request(self, carrier_request_id: str) -> None:
        try:
            self.client.calls.cancel(carrier_request_id)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "cancel call") from exc

    def _redirect(self, carrier_call_id: str, *, call_public_id: str, action: str) -> None:
        # Plivo transfers by fetching new XML from a URL; our action endpoint renders
        # it from the call's stored state, so no phone number travels in the URL.
        try:
            self.client.calls.update(
                carrier_call_id,
                legs="aleg",
                aleg_url=self.webhook_url("action", call=call_public_id, action=action),
                aleg_method="POST",
            )
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, action) from exc

    def transfer(self, carrier_call_id: str, *, call_public_id: str, to: str, caller_id: str) -> None:
        self._redirect(carrier_call_id, call_public_id=call_public_id, action="transfer")

    # --- warm transfer: a call whose answer XML whispers, then <Conference> -------------
    def dial_transfer_leg(self, request: TransferLegRequest) -> PlacedCall:
        status_url = self.transfer_url(request.leg_public_id, "status")
        to = request.to if request.to.lower().startswith(("sip:", "sips:")) else request.to.lstrip("+")
        try:
            response = self.client.calls.create(
                from_=request.from_.lstrip("+"), to_=to,
                answer_url=self.transfer_url(request.leg_public_id, "answer"), answer_method="POST",
                hangup_url=status_url, hangup_method="POST", ring_url=status_url, ring_method="POST",
                ring_timeout=request.ring_timeout_s,
            )
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "dial transfer") from exc
        request_uuid = getattr(response, "request_uuid", None)
        if not request_uuid:
            raise CarrierError("Plivo dial transfer failed: response had no request_uuid")
        return PlacedCall(carrier_call_id=None, carrier_request_id=str(request_uuid), status=CallStatus.QUEUED)

    def whisper_markup(self, text: str, *, leg_public_id: str, confirm: bool) -> str:
        response = plivoxml.ResponseElement()
        join = self.transfer_url(leg_public_id, "join")
        if confirm:
            digits = plivoxml.GetDigitsElement(action=join, method="POST", num_digits=1, timeout=8)
            digits.add_speak(f"{text} Press 1 to take the call.")
            response.add(digits)
            response.add_speak("No key was pressed. Goodbye.")
            response.add_hangup()
        else:
            response.add_speak(text)
            response.add_redirect(join, method="POST")
        return str(response.to_string())

    @classmethod
    def conference_markup(cls, conference: str) -> str:
        response = plivoxml.ResponseElement()
        response.add_conference(conference, start_conference_on_enter=True, end_conference_on_exit=True,
                                enter_sound="", exit_sound="")
        return str(response.to_string())

    def move_to_conference(self, carrier_call_id: str, *, call_public_id: str, conference: str) -> None:
        # The action endpoint answers the call's bridged leg's <Conference> (nothing in the URL).
        self._redirect(carrier_call_id, call_public_id=call_public_id, action="warm")

    def leave_message_and_hangup(self, carrier_call_id: str, *, call_public_id: str, message: str) -> None:
        # The action endpoint speaks the call's stored ``pending_message``.
        self._redirect(carrier_call_id, call_public_id=call_public_id, action="message")

    def send_dtmf(self, carrier_call_id: str, digits: str, *, resume: StreamTarget | None) -> None:
        validate_dtmf(digits)
        # Plivo plays digits beside a live stream; nothing to resume.
        try:
            self.client.calls.send_digits(carrier_call_id, digits, leg="aleg")
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "send DTMF") from exc

    def send_sms(self, *, from_: str, to: str, text: str) -> str:
        if not text.strip():
            raise CarrierError("SMS text must not be empty")
        try:
            response = self.client.messages.create(src=from_.lstrip("+"), dst=to.lstrip("+"), text=text)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "send SMS") from exc
        uuids = getattr(response, "message_uuid", None) or []
        if not uuids:
            raise CarrierError("Plivo send SMS failed: response had no message_uuid")
        return str(uuids[0])

    def fetch_cost(self, carrier_call_id: str) -> CallCost | None:
        try:
            call = self.client.calls.get(carrier_call_id)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "fetch call") from exc
        amount = getattr(call, "total_amount", None)
        if amount in (None, ""):
            return None
        try:
            return CallCost(amount=abs(Decimal(str(amount))), currency="USD")  # Plivo bills in USD
        except InvalidOperation as exc:
            raise CarrierError(f"Plivo returned an amount that is not a number: {amount!r}") from exc

    def list_numbers(self) -> list[CarrierNumber]:
        numbers: list[CarrierNumber] = []
        offset = 0
        try:
            while True:
                page = self.client.numbers.list(limit=20, offset=offset)
                objects = list(page)
                for obj in objects:
                    number = str(obj.number)
                    numbers.append(
                        CarrierNumber(
                            e164=_e164(number),
                            carrier_number_id=number,
                            label=str(getattr(obj, "alias", "") or ""),
                            voice_url=str(getattr(obj, "application", "") or ""),
                        )
                    )
                meta = getattr(page, "meta", None)
                if not objects or meta is None or not getattr(meta, "next", None):
                    break
                offset += len(objects)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "list numbers") from exc
        return numbers

    def _ensure_application(self) -> str:
        answer_url = self.webhook_url("answer")
        hangup_url = self.webhook_url("hangup")
        apps = self.client.applications.list(app_name=APPLICATION_NAME)
        for app in apps:
            if getattr(app, "app_name", "") == APPLICATION_NAME:
                app_id = str(app.app_id)
                # Keep it pointed at the current public URL (the base URL may have moved).
                self.client.applications.update(app_id, answer_url=answer_url, hangup_url=hangup_url)
                return app_id
        created = self.client.applications.create(APPLICATION_NAME, answer_url=answer_url, hangup_url=hangup_url)
        return str(created.app_id)

    def configure_number(self, number: CarrierNumber) -> CarrierNumber:
        try:
            app_id = self._ensure_application()
            self.client.numbers.update(number.carrier_number_id, app_id=app_id)
        except _PLIVO_ERRORS as exc:
            raise _map_error(exc, "configure number") from exc
        return CarrierNumber(
            e164=number.e164,
            carrier_number_id=number.carrier_number_id,
            label=number.label,
            voice_url=self.webhook_url("answer"),
        )


def _e164(number: str) -> str:
    """Plivo writes numbers without the leading '+'; we store E.164."""
    number = number.strip()
    if number.startswith("+"):
        return number
    return f"+{number}" if number.isdigit() else number
