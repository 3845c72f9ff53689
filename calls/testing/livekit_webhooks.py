"""LiveKit's webhook deliveries, built and signed as a LiveKit server does.

LiveKit POSTs a ``WebhookEvent`` as protobuf JSON (``Content-Type:
application/webhook+json``) with an ``Authorization`` header holding a JWT signed
with the API key and secret (issuer = key, HS256) whose ``sha256`` claim is the
base64 SHA-256 of the exact body (livekit-server ``pkg/webhook``: ``notifier.go``).
Tests use these to post real deliveries to the platform's endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

from google.protobuf.json_format import MessageToJson
from livekit import api
from livekit.protocol import models, webhook

STANDARD = models.ParticipantInfo.STANDARD
SIP = models.ParticipantInfo.SIP
AGENT = models.ParticipantInfo.AGENT


def event(kind: str, room: str, *, room_sid: str = "RM_fake", identity: str = "", participant_kind: int = STANDARD,
          attributes: dict[str, str] | None = None, metadata: str = "", event_id: str = "",
          created_at: float | None = None) -> webhook.WebhookEvent:
    message = webhook.WebhookEvent(
        event=kind, id=event_id or f"EV_{uuid.uuid4().hex[:12]}",
        created_at=int(time.time() if created_at is None else created_at),
        room=models.Room(sid=room_sid, name=room),
    )
    if identity:
        message.participant.CopyFrom(models.ParticipantInfo(
            sid=f"PA_{identity}", identity=identity, kind=participant_kind,  # type: ignore[arg-type]
            attributes=attributes or {}, metadata=metadata, state=models.ParticipantInfo.ACTIVE))
    return message


def signed(message: Any, api_key: str, api_secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers LiveKit sends for ``message`` (a WebhookEvent)."""
    body = MessageToJson(message, indent=0).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = api.AccessToken(api_key, api_secret).with_sha256(digest).to_jwt()
    return body, {"Content-Type": "application/webhook+json", "Authorization": token}
