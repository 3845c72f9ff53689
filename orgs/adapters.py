from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.urls import reverse


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: Any) -> str:
        # A new user with no organisation lands on "create your organisation";
        # a pending invitation link (?next=) takes precedence via allauth itself.
        from orgs.models import Membership

        if not Membership.objects.filter(user=request.user).exists():
            return reverse("orgs:create")
        return super().get_login_redirect_url(request)
