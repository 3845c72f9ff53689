"""The Celery app (worker and beat). Tasks live in each app's ``tasks.py``.

Configuration comes from settings (``CELERY_*``): two queues — the default one for
call-critical work and ``CELERY_INGEST_QUEUE`` for work on tenant-supplied content —
with every task routed explicitly (``CELERY_TASK_ROUTES``), and app-wide soft/hard time
limits (``CELERY_TASK_SOFT_TIME_LIMIT`` / ``CELERY_TASK_TIME_LIMIT``) that longer tasks
override (knowledge ingestion). ``voiceplatform/tests/test_hostile_tasks.py`` fails on a
task without a route or a limit. Run one worker per queue: ``-Q <queue>``.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")

app = Celery("voiceplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
