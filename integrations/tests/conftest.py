from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def eager_celery() -> Any:
    """Run tasks in-process: apply_async executes immediately (countdowns are ignored, which
    exercises the "message arrived early" path of the delivery claim)."""
    from voiceplatform.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous
