"""Register the webhook sweeper with beat (DatabaseScheduler): it re-enqueues due deliveries
whose task message was lost, so no event waits forever behind a dead worker."""
from __future__ import annotations

from django.db import migrations

TASK = "integrations.sweep_webhook_deliveries"


def add_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=60, period="seconds")
    PeriodicTask.objects.update_or_create(
        name="Sweep webhook deliveries", defaults={"task": TASK, "interval": every_minute, "enabled": True})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(add_schedule, remove_schedule)]
