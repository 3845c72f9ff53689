"""The batches app's notion of "now".

Calling windows and retry times are evaluated against ``now()``. Settings
``BATCHES_CLOCK_OFFSET_S`` (environment variable of the same name) shifts it;
the integration tests use it to run a real worker at, say, 08:59:50 callee time
without waiting for the morning. Leave it unset in production.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from django.utils import timezone


def offset() -> timedelta:
    raw = os.environ.get("BATCHES_CLOCK_OFFSET_S", "").strip()
    if not raw:
        return timedelta(0)
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        raise RuntimeError(f"BATCHES_CLOCK_OFFSET_S must be a number of seconds, not {raw!r}") from None


def now() -> datetime:
    return timezone.now() + offset()
