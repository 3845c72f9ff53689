from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations (MCP servers, webhooks)"

    def ready(self) -> None:
        # Outgoing webhooks are produced from audit entries (DESIGN.md convention 7).
        from integrations.webhooks import on_audit_recorded
        from orgs.signals import audit_recorded

        audit_recorded.connect(on_audit_recorded, dispatch_uid="integrations.webhooks.on_audit_recorded")
        # An agent's HTTP and MCP tool grants are frozen into each version it publishes.
        from integrations import agent_grants

        agent_grants.register()
