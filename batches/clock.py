"""The batches app's notion of "now".

Calling windows and retry times are evaluated against ``now()``. The setting
``BATCHES_CLOCK_OFFSET_S`` (environment variable of the same name) shifts it; the
integration tests use it to run a real worker at, say, 08:59:50 callee time
without waiting for the morning. In-process tests move time itself with
time-machine instead. Leave it unset in production.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone


def offset() -> timedelta:
    return timedelta(seconds=settings.BATCHES_CLOCK_OFFSET_S)


def now() -> datetime:
    return timezone.now() + offset()
