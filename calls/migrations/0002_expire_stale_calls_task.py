"""Beat runs ``calls.expire_stale_calls`` every minute (see calls.services.lifecycle.expire_stale_calls)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

TASK_NAME = "calls: end calls whose final carrier callback never came"


def create(apps: Any, schema_editor: Any) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = interval_model.objects.get_or_create(every=1, period="minutes")
    task_model.objects.update_or_create(
        name=TASK_NAME, defaults={"task": "calls.expire_stale_calls", "interval": every, "enabled": True}
    )


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("calls", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
