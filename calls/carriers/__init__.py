"""Carrier adapters behind one interface, looked up by name.

``get_carrier("twilio", credentials, public_base_url=...)`` returns a ready adapter.
"""

from __future__ import annotations

from collections.abc import Mapping

from calls.carriers.base import (
    FINAL_STATUSES,
    STREAM_PATH,
    WEBHOOK_PATHS,
    AnsweredBy,
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
    WebhookParseError,
    WebhookRequest,
)
from calls.carriers.plivo_carrier import PlivoCarrier
from calls.carriers.twilio_carrier import TwilioCarrier

CARRIERS: dict[str, type[Carrier]] = {
    TwilioCarrier.name: TwilioCarrier,
    PlivoCarrier.name: PlivoCarrier,
}

CARRIER_CHOICES: list[tuple[str, str]] = [("twilio", "Twilio"), ("plivo", "Plivo")]


def get_carrier(name: str, credentials: Mapping[str, str], *, public_base_url: str) -> Carrier:
    try:
        cls = CARRIERS[name]
    except KeyError:
        raise CarrierError(f"unknown carrier {name!r}; expected one of: {', '.join(sorted(CARRIERS))}") from None
    return cls(credentials, public_base_url=public_base_url)


__all__ = [
    "CARRIERS",
    "CARRIER_CHOICES",
    "FINAL_STATUSES",
    "STREAM_PATH",
    "WEBHOOK_PATHS",
    "AnsweredBy",
    "CallStatus",
    "Carrier",
    "CarrierError",
    "CarrierNumber",
    "InboundCall",
    "MachineResult",
    "OutboundCallRequest",
    "PlacedCall",
    "PlivoCarrier",
    "StatusUpdate",
    "StreamTarget",
    "TwilioCarrier",
    "WebhookParseError",
    "WebhookRequest",
    "get_carrier",
]
