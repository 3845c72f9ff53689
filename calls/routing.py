"""WebSocket URL patterns for media streams (included by voiceplatform/asgi.py).

The path names the call and nothing else: the stream token comes in the stream's
`start` message (see calls.consumers), because request paths end up in access logs.
A trailing path segment (where the token used to be) is matched only so the
consumer can refuse it with a clear 403 instead of a routing error that would
log the path.
"""

from __future__ import annotations

from typing import Any

from django.urls import re_path

from calls.consumers import PlivoMediaConsumer, TwilioMediaConsumer, WebMediaConsumer

_CALL = r"(?P<call_id>[0-9a-fA-F-]{8,64})"
_EXTRA = r"(?:/(?P<extra>[^/?#]+))?"
# /ws/n/<node>/...: the same streams addressed to one web process (voiceplatform.nodes);
# the proxy routes on the node, the process itself serves any of its streams.
_NODE = r"(?:n/(?P<node>[a-z0-9][a-z0-9-]{0,39})/)?"


def media_urlpatterns(**initkwargs: Any) -> list[Any]:
    """The media routes; `initkwargs` inject dependencies (tests, benchmark)."""
    return [
        re_path(rf"^ws/{_NODE}twilio/{_CALL}{_EXTRA}/?$", TwilioMediaConsumer.as_asgi(**initkwargs)),
        re_path(rf"^ws/{_NODE}plivo/{_CALL}{_EXTRA}/?$", PlivoMediaConsumer.as_asgi(**initkwargs)),
        re_path(rf"^ws/{_NODE}web/{_CALL}{_EXTRA}/?$", WebMediaConsumer.as_asgi(**initkwargs)),
    ]


websocket_urlpatterns = media_urlpatterns()
