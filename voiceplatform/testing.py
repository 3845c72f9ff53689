"""Shared test support: org fixtures' builders and the org-isolation matrix registry.

Each app registers a factory for each of its org-scoped models in
``<app>/tests/factories.py``::

    from voiceplatform.testing import register_factory

    @register_factory(Agent)
    def make_agent(org):
        return Agent.objects.create(org=org, name="Support")

``voiceplatform/tests/test_isolation_matrix.py`` then checks, for every admin page
and every API route of that model: anonymous → 401 / login redirect, a member of
another org → 404, a viewer writing → 403. The matrix grows with every app.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from django.db.models import Model

FACTORIES: dict[type[Model], Callable[[Any], Model]] = {}
APPS = ("orgs", "agents", "calls", "batches", "knowledge", "integrations")


def register_factory(model: type[Model]) -> Callable[[Callable[[Any], Model]], Callable[[Any], Model]]:
    def decorate(func: Callable[[Any], Model]) -> Callable[[Any], Model]:
        FACTORIES[model] = func
        return func

    return decorate


def load_factories() -> dict[type[Model], Callable[[Any], Model]]:
    for app in APPS:
        module = f"{app}.tests.factories"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
    return FACTORIES


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess (Daphne, Celery worker/beat) that must use the
    test database and Redis of the running test session."""
    from django.conf import settings
    from django.db import connection

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
    if db.get("PASSWORD"):
        url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}"
    env = dict(os.environ)
    env.update({"DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "voiceplatform.settings",
                "VP_TESTING": "1", "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
                "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "true",
                "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
                "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
                "CELERY_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
                "CELERY_INGEST_QUEUE": settings.CELERY_INGEST_QUEUE})
    env.update(extra)
    return env
