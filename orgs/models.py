"""Organisations, members, invitations, API keys, provider credentials, audit log."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from voiceplatform.crypto import EncryptedJSONField
from voiceplatform.models import OrgScopedModel, TimestampedModel


def validate_timezone(value: str) -> None:
    """Accept only an IANA timezone name (Europe/London); raises ValidationError naming the value."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" (a folder), names too long
        raise ValidationError(f"{value!r} is not an IANA timezone such as Europe/London") from None


def validate_country(value: str) -> None:
    """Accept only a two-letter region code phonenumbers supports (US, GB); raises ValidationError otherwise."""
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"{value!r} is not a two-letter country code such as US or GB")


class Organization(TimestampedModel):
    """A tenant: every org-scoped row belongs to exactly one; its timezone and default country read local input."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    default_country = models.CharField(
        max_length=2, default="US", validators=[validate_country],
        help_text="Country used to read phone numbers written without a +country code.",
    )
    max_concurrent_calls = models.PositiveIntegerField(default=10)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    """A member's role, lowest to highest; ROLE_RANK orders them and role_at_least compares."""

    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


API_KEY_ROLES = [(r.value, r.label) for r in (Role.VIEWER, Role.EDITOR, Role.ADMIN)]

ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_at_least(role: str | None, needed: str) -> bool:
    """True when ``role`` ranks at or above ``needed``; no role (None) is never enough."""
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(needed)]


class Membership(TimestampedModel):
    """A user's one role in one organisation; the last owner cannot be removed (orgs.services enforces it)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "user"], name="one_membership_per_user_org")]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"


def _invitation_expiry():
    return timezone.now() + timedelta(days=7)


class Invitation(OrgScopedModel):
    """An emailed, single-use invitation to join with a role; only the token's hash is stored."""

    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(default=_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_open(self) -> bool:
        """True while the invitation can still be accepted: not accepted, not revoked, not expired."""
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    def __str__(self) -> str:
        return f"Invitation to {self.org} ({self.role})"


def hash_token(token: str) -> str:
    """Tokens and API keys are 32+ random bytes, so a plain SHA-256 is enough:
    there is nothing to brute-force, and lookup by hash stays an index hit."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token of ``nbytes`` bytes of entropy, for invitations and API keys."""
    return secrets.token_urlsafe(nbytes)


class ApiKey(OrgScopedModel):
    """An org API key with a role; stored hashed, its plaintext shown once at creation."""

    PREFIX = "vp_"

    name = models.CharField(max_length=100)
    role = models.CharField(max_length=10, choices=API_KEY_ROLES, default=Role.EDITOR)
    # Visible part shown in lists ("vp_3fA9x2Qe…"), the rest is only ever shown once.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Provider(models.TextChoices):
    """The external providers an org can store a credential for."""

    TWILIO = "twilio", "Twilio"
    PLIVO = "plivo", "Plivo"
    OPENAI = "openai", "OpenAI"
    GEMINI = "gemini", "Google Gemini"
    HUME = "hume", "Hume"
    DEEPGRAM = "deepgram", "Deepgram"
    LIVEKIT = "livekit", "LiveKit"


# Which secret fields each provider needs, and the non-secret settings it accepts.
PROVIDER_FIELDS: dict[str, dict[str, list[str]]] = {
    Provider.TWILIO: {"secret": ["account_sid", "auth_token"], "config": ["base_url"]},
    Provider.PLIVO: {"secret": ["auth_id", "auth_token"], "config": ["base_url"]},
    # api_version (+ azure_deployment) makes it an Azure OpenAI credential (base_url: the resource endpoint).
    Provider.OPENAI: {"secret": ["api_key"],
                      "config": ["base_url", "websocket_base_url", "api_version", "azure_deployment"]},
    Provider.GEMINI: {"secret": ["api_key"], "config": ["base_url"]},
    Provider.HUME: {"secret": ["api_key"], "config": ["base_url", "config_id"]},
    Provider.DEEPGRAM: {"secret": ["api_key"], "config": ["base_url"]},
    # The server URL (wss://<project>.livekit.cloud or self-hosted) is stored encrypted and
    # write-only like the key pair: it names the org's own media infrastructure.
    Provider.LIVEKIT: {"secret": ["url", "api_key", "api_secret"], "config": []},
}


class ProviderCredential(OrgScopedModel):
    """One credential per provider per org. ``secrets`` is ciphertext in the database."""

    provider = models.CharField(max_length=20, choices=Provider.choices)
    secrets = EncryptedJSONField(default=dict)
    config = models.JSONField(default=dict, blank=True)
    # Shown back instead of the secret: the last four characters of each secret field.
    hints = models.JSONField(default=dict, blank=True, editable=False)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "provider"], name="one_credential_per_provider")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} credential"


class AuditLog(OrgScopedModel):
    """Every change made through a service. Also the source of outgoing webhooks."""

    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    actor_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor_label = models.CharField(max_length=200, blank=True, help_text="Who, as shown at the time (kept if the user is deleted).")
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=80, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["org", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_label}"
