from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def ready(self) -> None:
        # Calls asks, before writing a recording or a transcript, whether the org keeps
        # them at all (calls.privacy_hooks); it imports nothing of this app.
        from calls.privacy_hooks import register_delete_guard, register_storage_policy
        from privacy.retention import hold_refusal, storage_policy_for_call

        register_storage_policy(storage_policy_for_call)
        # Every delete of a call or campaign (API, dashboard, admin) asks first whether a
        # legal hold covers it (calls.privacy_hooks.refuse_if_held).
        register_delete_guard(hold_refusal)
        # Deleting an organisation would cascade its held calls and campaigns: orgs, the
        # lowest layer, asks the same rule through its own hook.
        from orgs.services import register_delete_guard as register_org_delete_guard
        from privacy.retention import org_hold_refusal

        register_org_delete_guard(org_hold_refusal)

        from privacy.admin import add_call_actions

        add_call_actions()
