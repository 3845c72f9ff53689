"""Which web process a call's media stream must reach, and whether this one takes calls.

Contract (README, "Deployment: several processes and machines"):

- Each web process of a scaled-out deployment has a ``NODE_ID`` (settings). The process
  that prepares a call's provider session while the phone rings (the answering webhook,
  or the API request that places the call) records itself as the call's node
  (``record_prepared``, in the shared cache, for ``PREPARED_NODE_TTL_S``), and every stream
  URL handed out for that call names it: ``/ws/n/<node>/twilio/<call>`` (``stream_node``).
  The reverse proxy routes ``/ws/n/<node>/`` to that process (deploy/nginx.conf) and
  everything else to any process. So the stream lands where its session waits, and no
  prepared session is orphaned in another process.
- A process prepares a session only if no other node has one for the call
  (``may_prepare``): an outbound call prepared by the API process keeps its node when the
  carrier's answer webhook reaches another one.
- A draining process (``calls.media.drain``) names itself in no new URL and prepares
  nothing; its new-call webhooks get 503 with Retry-After from ``DrainGate`` (which the
  proxy retries on another process).
- Without ``NODE_ID`` (one process: ``make run``, most tests) URLs are the plain
  ``/ws/...`` ones and every process prepares as before.

If the named node is gone (crashed, or restarted past its drain), the proxy falls back
to any other process (nginx ``backup`` servers), which prepares the session when the
stream connects; the watcher in ``calls.services.orphans`` closes a prepared session
within seconds when its stream was taken elsewhere or its call ended while ringing.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache

from calls.carriers.base import WEBHOOK_PATHS
from calls.media.drain import draining

PREPARED_NODE_TTL_S = 15 * 60
DRAIN_RETRY_AFTER_S = 5

_serving: contextvars.ContextVar[str] = contextvars.ContextVar("vp_serving_node", default="")


def this_node() -> str:
    """This process's node id; empty when it is not a node or is draining."""
    return "" if draining() else settings.NODE_ID


@contextlib.contextmanager
def serving(request: Any) -> Iterator[None]:
    """Within this block, stream URLs may name this process: the request is served by
    this process's ASGI server (its loop outlives the request and can hold a session)."""
    token = _serving.set(this_node() if hasattr(request, "scope") else "")
    try:
        yield
    finally:
        _serving.reset(token)


def _key(call_public_id: str) -> str:
    return f"calls:prepared-node:{call_public_id}"


def prepared_node(call_public_id: str) -> str:
    """The node that prepared the call's session, if any."""
    if not settings.NODE_ID:
        return ""
    return str(cache.get(_key(str(call_public_id))) or "")


def stream_node(call_public_id: str) -> str:
    """The node a stream URL for this call should name ("" for any)."""
    return prepared_node(call_public_id) or _serving.get()


def may_prepare(call_public_id: str) -> bool:
    """Whether this process may prepare the call's session now."""
    if draining():
        return False
    if not settings.NODE_ID:
        return True
    return prepared_node(call_public_id) in ("", settings.NODE_ID)


def record_prepared(call_public_id: str) -> None:
    """Remember that this process holds the call's prepared session."""
    if settings.NODE_ID:
        cache.set(_key(str(call_public_id)), settings.NODE_ID, PREPARED_NODE_TTL_S)


# The webhooks that start a call (and its stream) in the process that answers them.
NEW_CALL_PATHS = frozenset({WEBHOOK_PATHS["twilio"]["voice"], WEBHOOK_PATHS["plivo"]["answer"]})
DRAINING_BODY = b"This server is restarting; retry on another.\n"


def _starts_call(path: str) -> bool:
    # endswith: behind a proxy that mounts the app under a prefix the path carries it
    return any(path.endswith(p) for p in NEW_CALL_PATHS)


class DrainGate:
    """ASGI middleware: while the process drains, the call-starting webhooks get 503 with
    ``Retry-After`` right on the event loop, before Django (no thread, no database, nothing
    written), however busy the process is ending its calls. The proxy retries them on
    another process (deploy/nginx.conf)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and draining() and _starts_call(str(scope.get("path", ""))):
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"text/plain"), (b"retry-after", str(DRAIN_RETRY_AFTER_S).encode()),
                (b"x-node-draining", (settings.NODE_ID or "1").encode())]})
            await send({"type": "http.response.body", "body": DRAINING_BODY})
            return
        await self.app(scope, receive, send)
