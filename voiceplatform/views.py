"""Dashboard view bases, the dashboard home, and health endpoints."""
from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import reverse
from django.views.generic import TemplateView

from calls.media.drain import draining
from orgs.middleware import current_membership
from orgs.models import Role, role_at_least
from orgs.services import Actor

logger = logging.getLogger(__name__)


class OrgViewMixin(LoginRequiredMixin):
    """Dashboard views: login required, a current org required, role checked.

    ``required_role`` guards GET; ``write_role`` guards POST/PUT/PATCH/DELETE.
    ``scoped(Model)`` is the org-filtered queryset; objects of other orgs are 404
    because they are simply not in it.
    """

    required_role: str = Role.VIEWER
    write_role: str = Role.EDITOR

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        membership = current_membership(request)
        if membership is None:
            return redirect("orgs:create")
        self.org = membership.org
        self.role = membership.role
        needed = self.required_role if request.method in ("GET", "HEAD", "OPTIONS") else self.write_role
        if not role_at_least(self.role, needed):
            raise PermissionDenied(f"This needs the {needed} role; you are {self.role}.")
        return super().dispatch(request, *args, **kwargs)

    def scoped(self, model: Any) -> QuerySet:
        return model.objects.for_org(self.org)

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)


class DashboardView(OrgViewMixin, TemplateView):
    """The org's home: the first-run checklist (voiceplatform/firstrun.py) and recent activity.

    POST ``dismiss_first_run`` (admins) hides the checklist for the whole org.
    """

    template_name = "dashboard/home.html"
    write_role = Role.ADMIN

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        from orgs.models import AuditLog
        from voiceplatform.firstrun import first_run_checklist

        context = super().get_context_data(**kwargs)
        context["recent_audit"] = AuditLog.objects.for_org(self.org)[:10]
        context["checklist"] = first_run_checklist(self.org)
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        from voiceplatform.firstrun import dismiss_first_run

        if "dismiss_first_run" not in request.POST:
            return HttpResponseBadRequest("Unknown action: expected dismiss_first_run.")
        dismiss_first_run(self.org, self.actor)
        messages.success(request, "The getting-started checklist is hidden for everyone in this organisation.")
        return redirect("dashboard")


class ComingAreaView(OrgViewMixin, TemplateView):
    """An area of the product whose pages are not built yet: it says what will live there."""

    template_name = "dashboard/area.html"
    title = ""
    description = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "title": self.title, "description": self.description}


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up (no dependencies checked)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """The database and Redis answer and the process is not draining; a load balancer
    sends traffic only then."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
        logger.error("readyz: database unavailable (%s); check DATABASE_URL or the embedded server under var/",
                     type(exc).__name__)
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = f"error: {type(exc).__name__}"
        logger.error("readyz: redis unavailable (%s); check REDIS_URL or the embedded server under var/",
                     type(exc).__name__)
    if draining():
        # Stopping (voiceplatform.serve): finishing its live calls, taking no new ones.
        checks["node"] = "draining"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico`` for browsers and API tools that ignore ``<link rel="icon">``: the SVG icon.

    Resolved per request, not at import, so a hashed static storage works too."""
    return redirect(static("favicon.svg"), permanent=True)


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("dashboard")
    return redirect(reverse("account_login"))
