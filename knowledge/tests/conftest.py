"""Knowledge test helpers: run ingestion the way the worker does, synchronously."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge import services
from knowledge.models import KnowledgeBase
from orgs.services import SYSTEM


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks: Any) -> Any:
    """Context manager: tasks enqueued on commit inside it run eagerly at its end
    (Celery's eager mode executes the real task code, retries included)."""
    from voiceplatform.celery import app

    class Runner:
        def __enter__(self) -> None:
            app.conf.task_always_eager = True
            app.conf.task_eager_propagates = True
            self.capture = django_capture_on_commit_callbacks(execute=True)
            self.capture.__enter__()

        def __exit__(self, *exc: Any) -> None:
            try:
                self.capture.__exit__(*exc)
            finally:
                app.conf.task_always_eager = False

    return Runner


@pytest.fixture
def kb_a(org_a: Any) -> KnowledgeBase:
    return services.create_knowledge_base(org_a, SYSTEM, name="Support")


def upload(name: str, data: bytes, content_type: str = "") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type or "application/octet-stream")


@pytest.fixture
def ingest(run_tasks: Any) -> Callable[..., Any]:
    """ingest(kb, name, data) → the Document after the worker pipeline ran."""

    def do(kb: KnowledgeBase, name: str, data: bytes, **kwargs: Any) -> Any:
        with run_tasks():
            document = services.add_document(kb, SYSTEM, services.SourceInput(upload=upload(name, data)), **kwargs)
        document.refresh_from_db()
        return document

    return do


@pytest.fixture(autouse=True)
def _media_in_tmp(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
