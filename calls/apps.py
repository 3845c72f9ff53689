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

        credential_tests.register()
        register_call_source(experiment_calls)
