"""WebSocket URL patterns for media streams (included by voiceplatform/asgi.py).

The token sits in the path because Twilio strips query strings from
`<Stream url>` (see calls.carriers.base.STREAM_PATH); `?token=` is accepted too
for clients that prefer it (the browser).
"""

from __future__ import annotations

from typing import Any

from django.urls import re_path

from calls.consumers import PlivoMediaConsumer, TwilioMediaConsumer, WebMediaConsumer

_CALL = r"(?P<call_id>[0-9a-fA-F-]{8,64})"
_TOKEN = r"(?:/(?P<token>[A-Za-z0-9_-]{16,128}))?"


def media_urlpatterns(**initkwargs: Any) -> list[Any]:
    """The media routes; `initkwargs` inject dependencies (tests, benchmark)."""
    return [
        re_path(rf"^ws/twilio/{_CALL}{_TOKEN}/?$", TwilioMediaConsumer.as_asgi(**initkwargs)),
        re_path(rf"^ws/plivo/{_CALL}{_TOKEN}/?$", PlivoMediaConsumer.as_asgi(**initkwargs)),
        re_path(rf"^ws/web/{_CALL}{_TOKEN}/?$", WebMediaConsumer.as_asgi(**initkwargs)),
    ]


websocket_urlpatterns = media_urlpatterns()
