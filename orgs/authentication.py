"""``Authorization: Bearer vp_…`` API keys for DRF."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from orgs.models import ApiKey, Membership, hash_token


class ApiKeyPrincipal:
    """``request.user`` for API-key requests: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: ApiKey):
        self.key = key
        self.email = ""

    def __str__(self) -> str:
        return f"API key {self.key.prefix}"

    def get_username(self) -> str:
        return str(self)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"
    # last_used_at is only written when older than this, so a busy key does not
    # turn every request into a write.
    touch_interval = timedelta(seconds=60)

    def authenticate(self, request: Any) -> tuple[ApiKeyPrincipal, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        token = token.strip()
        if not token.startswith(ApiKey.PREFIX):
            raise exceptions.AuthenticationFailed("Malformed API key: keys start with 'vp_'.")
        key = ApiKey.objects.select_related("org", "created_by").filter(key_hash=hash_token(token)).first()
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.")
        if not key.is_active:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if key.created_by is not None and not self._creator_still_member(key):
            # Removal and deactivation revoke keys (orgs.services); this also covers a
            # membership deleted without the service (a bulk delete, a raw query).
            raise exceptions.AuthenticationFailed("This API key's creator is no longer a member of the organisation.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > self.touch_interval:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return ApiKeyPrincipal(key), key

    @staticmethod
    def _creator_still_member(key: ApiKey) -> bool:
        creator = key.created_by
        return creator is not None and bool(creator.is_active) and Membership.objects.filter(org_id=key.org_id, user=creator).exists()

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
