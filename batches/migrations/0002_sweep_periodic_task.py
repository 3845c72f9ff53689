"""Beat runs ``batches.tasks.sweep`` every 15 seconds (see batches.tasks)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

SWEEP_NAME = "batches: sweep running batches and scheduled-call retries"


def create(apps: Any, schema_editor: Any) -> None:
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = interval_model.objects.get_or_create(every=15, period="seconds")
    task_model.objects.update_or_create(
        name=SWEEP_NAME, defaults={"task": "batches.tasks.sweep", "interval": every, "enabled": True}
    )


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("batches", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
