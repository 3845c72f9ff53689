"""ASGI entry: Django HTTP plus Channels WebSockets.

Each app's ``routing.py`` exports ``websocket_urlpatterns``. Carrier media streams
authenticate per call (an unguessable token in the URL) since carriers send no
cookies; browser-facing routes wrap themselves in
``voiceplatform.asgi.browser_socket`` (session auth + same-origin check).
"""
from __future__ import annotations

import importlib
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.SERVE_STATIC:
    # One process serves everything for `make run` and small deployments; a CDN or
    # reverse proxy in front can take over /static/ with SERVE_STATIC=false.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from voiceplatform.nodes import DrainGate  # noqa: E402
from voiceplatform.uploads import UploadLimitASGI  # noqa: E402

# Request bodies over UPLOAD_MAX_BYTES are refused here, before Django reads them.
django_asgi_app = UploadLimitASGI(django_asgi_app)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

SOCKET_APPS = ("calls", "batches", "knowledge", "integrations", "agents", "orgs")


def browser_socket(consumer_app):
    """Wrap a browser WebSocket consumer: same-origin only, with the user's session."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(consumer_app))


def _websocket_patterns() -> list:
    patterns: list = []
    for app in SOCKET_APPS:
        module = f"{app}.routing"
        try:
            routing = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        patterns.extend(getattr(routing, "websocket_urlpatterns", []))
    return patterns


application = ProtocolTypeRouter(
    {
        # A draining process turns call-starting webhooks away before Django (nodes.DrainGate).
        "http": DrainGate(django_asgi_app),
        "websocket": URLRouter(_websocket_patterns()),
    }
)

if settings.KNOWLEDGE_WARM_LOCAL_MODEL:
    # The first knowledge search would otherwise wait ~8 s for the model (issue 13): load it now, off
    # the request path, in a daemon thread.
    from knowledge.embeddings.local import warm_in_background  # noqa: E402

    warm_in_background("web")
