from __future__ import annotations

from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"
    verbose_name = "Calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from agents.experiments.results import register_call_source
        from calls import credential_tests
        from calls.selectors import experiment_calls
        from calls.services.livekit_dispatch import webhook_note
        from orgs.credential_notes import register_credential_note

        credential_tests.register()
        register_credential_note("livekit", webhook_note)
        register_call_source(experiment_calls)
