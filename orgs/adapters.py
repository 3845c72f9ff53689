from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: Any) -> str:
        # A new user with no organisation lands on "create your organisation";
        # a pending invitation link (?next=) takes precedence via allauth itself.
        from orgs.models import Membership

        if not Membership.objects.filter(user=request.user).exists():
            return reverse("orgs:create")
        return super().get_login_redirect_url(request)

    def get_client_ip(self, request: HttpRequest) -> str:
        # Rate limits key on this: the same rule as the audit log (orgs.services.client_ip),
        # so a client cannot pick a fresh address per attempt with X-Forwarded-For.
        from orgs.services import client_ip

        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip
