from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def ready(self) -> None:
        # Calls asks, before writing a recording or a transcript, whether the org keeps
        # them at all (calls.privacy_hooks); it imports nothing of this app.
        from calls.privacy_hooks import register_storage_policy
        from privacy.retention import storage_policy_for_call

        register_storage_policy(storage_policy_for_call)

        from privacy.admin import add_call_actions

        add_call_actions()
