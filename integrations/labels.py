"""What the dashboard shows for a webhook delivery's status: a human label and a badge tone.

Kept next to ``integrations.models.DeliveryStatus``: ``voiceplatform/tests/test_present.py``
fails when a status has no entry here.
"""

from __future__ import annotations

from integrations.models import DeliveryStatus

DELIVERY_STATUS: dict[str, tuple[str, str]] = {
    DeliveryStatus.PENDING: ("Pending", "neutral"),
    DeliveryStatus.SENDING: ("Sending", "warn"),
    DeliveryStatus.RETRYING: ("Retrying", "warn"),
    DeliveryStatus.SUCCEEDED: ("Succeeded", "ok"),
    DeliveryStatus.FAILED: ("Failed (gave up)", "bad"),
    DeliveryStatus.CANCELLED: ("Cancelled (endpoint disabled)", "bad"),
}
