"""Root URLs.

Each app plugs in by having these modules (no edit here needed):
- ``<app>/urls.py``: dashboard pages; paths carry their own prefix (``agents/…``)
  and the module sets ``app_name = "<app>"``.
- ``<app>/api/urls.py``: API routes, mounted under ``/api/v1/``.
- ``<app>/webhook_urls.py``: carrier/third-party callbacks, mounted under ``/webhooks/``.
Areas whose app has no pages yet fall through to a page that says what will live there.
"""
from __future__ import annotations

import importlib

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from voiceplatform import views
from voiceplatform.metrics import metrics_view

APPS = ("orgs", "agents", "calls", "batches", "knowledge", "integrations", "analytics", "simulations", "privacy")

# Nav areas: (path, title, what will live there). Real pages from the apps take precedence.
AREAS = [
    ("agents/", "Agents", "AI phone agents: prompt, voice, provider, tools, knowledge, versions."),
    ("calls/", "Calls", "Every inbound and outbound call with transcript, recording, timeline and analysis."),
    ("numbers/", "Phone numbers", "Your Twilio and Plivo numbers and the agent that answers each."),
    ("batches/", "Batch campaigns", "Outbound campaigns from CSV or JSON with live progress and results."),
    ("schedules/", "Scheduled calls", "One-time and recurring (cron) calls."),
    ("knowledge/", "Knowledge", "Knowledge bases your agents search while they talk."),
    ("integrations/", "Integrations", "MCP tool servers: Telegram, Gmail, WhatsApp, Shopify and your own."),
    ("webhooks/endpoints/", "Webhooks", "Signed outgoing webhooks for call and batch events."),
]


def _optional(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only the module (or its package) being absent counts; errors inside it surface.
        if exc.name is None or not module.startswith(exc.name):
            raise
        return None


def _app_patterns(suffix: str) -> list:
    found = []
    for app in APPS:
        module = _optional(f"{app}.{suffix}")
        if module is not None:
            namespace = getattr(module, "app_name", None)
            found.append(path("", include((module.urlpatterns, namespace) if namespace else module.urlpatterns)))
    return found


api_v1 = _app_patterns("api.urls")

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.DashboardView.as_view(), name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers and API tools that ignore <link rel="icon"> ask for /favicon.ico.
    path("favicon.ico", views.favicon, name="favicon"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("webhooks/", include(_app_patterns("webhook_urls"))),
    *_app_patterns("urls"),
    *[
        path(prefix, views.ComingAreaView.as_view(title=title, description=text), name=f"area-{prefix.split('/')[0]}")
        for prefix, title, text in AREAS
    ],
]

if settings.DEBUG:
    urlpatterns += [re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT})]
