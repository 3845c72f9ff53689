"""Celery tasks for integrations: thin wrappers over ``integrations.webhooks``.

``deliver_webhook`` takes ids and is idempotent: the delivery row is claimed with
``select_for_update(skip_locked)`` and only a due, unfinished, unleased delivery is sent, so
a redelivered or duplicated message never sends twice.
"""
from __future__ import annotations

from celery import shared_task

from integrations import webhooks
from integrations.models import WebhookDelivery
from voiceplatform.tasks import OrgTask


@shared_task(base=OrgTask, bind=True, name="integrations.deliver_webhook", acks_late=True, ignore_result=True)
def deliver_webhook(self: OrgTask, org_public_id: str, delivery_public_id: str, manual: bool = False) -> None:
    delivery_id = (WebhookDelivery.objects.for_org(self.org).filter(public_id=delivery_public_id)
                   .values_list("pk", flat=True).first())
    if delivery_id is None:
        return  # deleted with its endpoint or org
    webhooks.attempt_delivery(delivery_id, manual=manual)


@shared_task(name="integrations.sweep_webhook_deliveries", ignore_result=True)
def sweep_webhook_deliveries() -> int:
    """Run by beat every minute: re-enqueue due deliveries whose task message was lost."""
    return webhooks.sweep_due()
