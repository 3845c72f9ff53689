"""``OrgTask``: the base for Celery tasks that act inside one organisation.

Tasks are thin (DESIGN.md convention 4): they take ids, load the org, and call a
service. Enqueue them with ``enqueue_on_commit(task, *args)`` so a task never
runs before the row it needs is committed.
"""
from __future__ import annotations

from typing import Any

from celery import Task
from django.db import transaction

from orgs.models import Organization


class OrgTask(Task):
    """Tasks whose first argument is the org's public id.

    ``self.org`` is loaded before ``run``; a deleted org makes the task a no-op
    rather than an error that would be retried forever.
    """

    abstract = True
    org: Organization | None = None

    def __call__(self, org_public_id: str, *args: Any, **kwargs: Any) -> Any:
        self.org = Organization.objects.filter(public_id=org_public_id).first()
        if self.org is None:
            return None
        return super().__call__(org_public_id, *args, **kwargs)


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    transaction.on_commit(lambda: task.delay(*args, **kwargs))
