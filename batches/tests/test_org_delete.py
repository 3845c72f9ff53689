"""Deleting an organisation removes its schedules and campaigns through this app's services
(``batches.teardown``): no beat task outlives its schedule, a live campaign is canceled under
its lock, and no outgoing event is announced for an org whose endpoints go with it."""
from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db.models.signals import post_save
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from batches.models import Batch, BatchStatus, ScheduledCall
from batches.tests.factories import make_batch, make_scheduled_call
from orgs import services
from orgs.models import AuditLog, Organization
from orgs.services import Actor
from orgs.signals import audit_recorded
from voiceplatform.testing import refused


@pytest.mark.django_db
def test_org_delete_leaves_no_beat_task_and_goes_through_the_services(
        org_a: Any, owner_a: Any, org_b: Any, caplog: Any, django_capture_on_commit_callbacks: Any) -> None:
    cron = make_scheduled_call(org_a)
    once = make_scheduled_call(org_a, kind="one_time", name="Once")
    kept = make_scheduled_call(org_b)
    running = make_batch(org_a)
    Batch.objects.filter(pk=running.pk).update(status=BatchStatus.RUNNING)
    finished = make_batch(org_a, name="Old campaign")
    Batch.objects.filter(pk=finished.pk).update(status=BatchStatus.COMPLETED)
    tasks = [cron.periodic_task_id, once.periodic_task_id]
    assert None not in tasks and PeriodicTask.objects.filter(pk__in=tasks).count() == 2
    PeriodicTasks.update_changed()
    before = PeriodicTasks.last_change()

    recorded: list[tuple[str, str]] = []
    announced: list[str] = []

    def on_audit(sender: Any, instance: AuditLog, created: bool, **kwargs: Any) -> None:
        recorded.append((instance.action, instance.actor_label))

    def on_announce(sender: Any, entry: AuditLog, **kwargs: Any) -> None:
        announced.append(entry.action)

    post_save.connect(on_audit, sender=AuditLog, dispatch_uid="test-org-delete-audit")
    audit_recorded.connect(on_announce, dispatch_uid="test-org-delete-announce")
    try:
        with caplog.at_level(logging.INFO, logger="orgs.services"), \
                django_capture_on_commit_callbacks(execute=True):
            services.delete_organization(org_a, Actor(user=owner_a))
    finally:
        post_save.disconnect(sender=AuditLog, dispatch_uid="test-org-delete-audit")
        audit_recorded.disconnect(dispatch_uid="test-org-delete-announce")

    assert not Organization.objects.filter(pk=org_a.pk).exists()
    # The beat tasks went with their schedules, and beat is told its schedule changed.
    assert not PeriodicTask.objects.filter(pk__in=tasks).exists()
    assert not PeriodicTask.objects.filter(name__in=[f"scheduled-call:{sc.public_id}" for sc in (cron, once)]).exists()
    after = PeriodicTasks.last_change()
    assert before is not None and after is not None and after > before
    # Org B's schedule and its beat task are untouched.
    assert ScheduledCall.objects.get(pk=kept.pk).periodic_task_id == kept.periodic_task_id
    assert PeriodicTask.objects.filter(pk=kept.periodic_task_id, enabled=True).exists()
    # Each row went through its delete service (the live campaign canceled first), as the actor.
    actions = sorted(action for action, label in recorded if label == "owner@a.test")
    assert actions == ["batch.canceled", "batch.deleted", "batch.deleted",
                       "scheduled_call.deleted", "scheduled_call.deleted"]
    # Their entries went with the org's audit log: nothing announced (no webhook to vanished endpoints).
    assert announced == []
    assert not AuditLog.objects.filter(org_id=org_a.pk).exists()
    [line] = [r for r in caplog.records if r.getMessage() == "organisation deleted"]
    assert line.removed == {"batches.scheduledcall": 2, "batches.batch": 2}  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_entries_recorded_after_a_delete_are_announced_again(
        org_a: Any, owner_a: Any, org_b: Any, django_capture_on_commit_callbacks: Any) -> None:
    announced: list[tuple[str, str]] = []

    def on_announce(sender: Any, entry: AuditLog, **kwargs: Any) -> None:
        if entry.action.startswith("scheduled_call."):
            announced.append((entry.org.slug, entry.action))

    audit_recorded.connect(on_announce, dispatch_uid="test-org-delete-others")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            make_scheduled_call(org_a)
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_organization(org_a, Actor(user=owner_a))
        with django_capture_on_commit_callbacks(execute=True):
            make_scheduled_call(org_b)
    finally:
        audit_recorded.disconnect(dispatch_uid="test-org-delete-others")
    assert announced == [("org-a", "scheduled_call.created"), ("org-b", "scheduled_call.created")]


@pytest.mark.django_db
def test_an_own_row_no_app_deletes_first_is_a_named_refusal_not_a_silent_delete(
        org_a: Any, owner_a: Any, monkeypatch: Any) -> None:
    sc = make_scheduled_call(org_a)
    monkeypatch.setattr(services, "_teardowns", [])  # an app that PROTECTs org rows but registered no teardown
    with refused(services.OrganizationError, field=None, match="still has scheduled calls that no app deletes before"):
        services.delete_organization(org_a, Actor(user=owner_a))
    assert Organization.objects.filter(pk=org_a.pk).exists()
    assert ScheduledCall.objects.get(pk=sc.pk).periodic_task_id is not None
    assert PeriodicTask.objects.filter(pk=sc.periodic_task_id).exists()
