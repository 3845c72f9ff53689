from __future__ import annotations

from typing import Any

from orgs.models import ApiKey, AuditLog, Invitation, ProviderCredential
from orgs.services import SYSTEM, create_api_key, record_audit, set_provider_credential
from voiceplatform.testing import register_factory


@register_factory(ApiKey)
def make_api_key(org: Any) -> ApiKey:
    return create_api_key(org, SYSTEM, "factory key")[0]


@register_factory(ProviderCredential)
def make_credential(org: Any) -> ProviderCredential:
    return set_provider_credential(org, SYSTEM, "openai", {"api_key": "sk-test-1234567890"})


@register_factory(Invitation)
def make_invitation(org: Any) -> Invitation:
    return Invitation.objects.create(org=org, email="someone@example.test", token_hash=f"h{Invitation.objects.count()}")


@register_factory(AuditLog)
def make_audit(org: Any) -> AuditLog:
    return record_audit(org, SYSTEM, "test.happened")
