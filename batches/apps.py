from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _call_ended(sender: Any, entry: Any, **kwargs: Any) -> None:
    if entry.action != "call.ended" or not entry.target_id:
        return
    from batches.tasks import on_call_ended

    try:
        on_call_ended(entry.target_id)
    except Exception:  # noqa: BLE001 - the beat sweep picks the batch up anyway
        logger.exception("batches.kick_failed")


class BatchesConfig(AppConfig):
    name = "batches"
    verbose_name = "Batch campaigns and scheduled calls"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The org's do-not-call list guards every outbound path (API, batch,
        # schedule) through the one check calls.services.placement runs before dialling.
        from batches.selectors import campaign_call_ids
        from batches.services import do_not_call_reason
        from batches.teardown import teardown_org_campaigns
        from calls.selectors import register_campaign_calls
        from calls.services.placement import register_do_not_call_check
        from orgs.services import register_org_teardown
        from orgs.signals import audit_recorded

        register_do_not_call_check(do_not_call_reason)
        register_campaign_calls(campaign_call_ids)
        audit_recorded.connect(_call_ended, dispatch_uid="batches.call_ended")
        # An org's delete removes its schedules (and their beat tasks) and campaigns through these services.
        register_org_teardown(teardown_org_campaigns)
