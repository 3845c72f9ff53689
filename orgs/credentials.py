"""Reading provider credentials for use (calls, bridges, embeddings, analysis)."""
from __future__ import annotations

from orgs.models import Organization, ProviderCredential


class MissingCredential(Exception):
    """The org has not set a credential for this provider."""

    def __init__(self, provider: str):
        super().__init__(f"This organisation has no {provider} credential; add it under Settings → Credentials.")
        self.provider = provider


def get_credential(org: Organization, provider: str) -> dict[str, str]:
    """Decrypted secrets merged with non-secret config (e.g. ``base_url``).

    Raises ``MissingCredential``. The result must never be logged.
    """
    credential = ProviderCredential.objects.for_org(org).filter(provider=provider).first()
    if credential is None:
        raise MissingCredential(provider)
    return {**credential.config, **credential.secrets}


def configured_providers(org: Organization) -> set[str]:
    return set(ProviderCredential.objects.for_org(org).values_list("provider", flat=True))
