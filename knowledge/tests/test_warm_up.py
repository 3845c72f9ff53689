"""The local embedding model is loaded at process start (issue 13, point 8): the ingest worker's pool
processes and the web process warm it in a background thread, only where a knowledge base uses it."""

from __future__ import annotations

import threading

import pytest
from celery.signals import worker_process_init

from knowledge.embeddings import local
from knowledge.models import EmbeddingBackendChoice, KnowledgeBase
from knowledge.tasks import consumes_ingest_queue
from voiceplatform.celery import app


def _join_warm_up() -> None:
    for thread in threading.enumerate():
        if thread.name == "embedding-warm-up":
            thread.join(timeout=300)


@pytest.fixture
def cold_model(monkeypatch):
    """This process as if it had just started: no model, no warm-up begun."""
    monkeypatch.setattr(local, "_model", None)
    monkeypatch.setattr(local, "_warm_started", False)


@pytest.fixture
def ingest_worker(monkeypatch, settings):
    """The queue selection ``celery worker -Q <ingest queue>`` makes before the pool starts."""
    queues = app.amqp.queues
    monkeypatch.setattr(queues, "_consume_from", None)
    queues.select([settings.CELERY_INGEST_QUEUE])


def test_only_the_ingest_worker_warms_the_model(transactional_db, settings, org_a, cold_model):
    settings.KNOWLEDGE_WARM_LOCAL_MODEL = True
    KnowledgeBase.objects.create(org=org_a, name="Support", embedding_backend=EmbeddingBackendChoice.LOCAL)
    assert not consumes_ingest_queue()  # the default-queue worker (calls, webhooks) does not embed
    worker_process_init.send(sender="worker@test")
    assert not local._warm_started


def test_ingest_worker_process_start_warms_the_model(transactional_db, settings, org_a, cold_model,
                                                     ingest_worker):
    settings.KNOWLEDGE_WARM_LOCAL_MODEL = True
    KnowledgeBase.objects.create(org=org_a, name="Support", embedding_backend=EmbeddingBackendChoice.LOCAL)
    assert consumes_ingest_queue()
    worker_process_init.send(sender="ingest@test")
    _join_warm_up()
    assert local.is_model_loaded()
    assert local.warm_in_background("web") is None  # once per process


def test_no_warm_up_where_no_knowledge_base_uses_the_local_model(transactional_db, settings, cold_model):
    settings.KNOWLEDGE_WARM_LOCAL_MODEL = True
    thread = local.warm_in_background("web")
    assert thread is not None
    thread.join(timeout=60)
    assert not local.is_model_loaded()


def test_warm_up_is_off_when_the_setting_is(transactional_db, settings, org_a, cold_model, ingest_worker):
    settings.KNOWLEDGE_WARM_LOCAL_MODEL = False
    KnowledgeBase.objects.create(org=org_a, name="Support", embedding_backend=EmbeddingBackendChoice.LOCAL)
    worker_process_init.send(sender="ingest@test")
    assert not local._warm_started and not local.is_model_loaded()
