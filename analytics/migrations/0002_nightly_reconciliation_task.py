"""Beat runs ``analytics.reconcile_recent_days`` nightly at 03:15 UTC (see analytics.tasks)."""

from __future__ import annotations

from typing import Any

from django.db import migrations

TASK_NAME = "analytics: rebuild the last days' rollups from the calls table"


def create(apps: Any, schema_editor: Any) -> None:
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    nightly, _ = crontab_model.objects.get_or_create(minute="15", hour="3", day_of_week="*", day_of_month="*",
                                                     month_of_year="*", timezone="UTC")
    task_model.objects.update_or_create(
        name=TASK_NAME, defaults={"task": "analytics.reconcile_recent_days", "crontab": nightly, "enabled": True}
    )


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_rollups"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
