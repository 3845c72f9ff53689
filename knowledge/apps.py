from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        connection_created.connect(configure_vector_search, dispatch_uid="knowledge-hnsw-settings")


def configure_vector_search(sender: Any, connection: Any, **kwargs: Any) -> None:
    """HNSW search settings for the session, once per connection rather than once per
    query (a SET LOCAL needs its own transaction: three extra round trips a search).

    - ef_search 100: candidate list size; recall@10 vs latency (bench/knowledge_bench.py).
    - iterative_scan relaxed_order: pgvector applies WHERE filters after the graph
      walk; iterating keeps walking until enough rows pass, so a small knowledge
      base inside a big table still gets its k results. Search re-sorts by distance.
    Both only affect HNSW index scans. Behind a transaction-pooling proxy (pgbouncer)
    session settings do not stick: set them on the database role instead
    (ALTER ROLE … SET hnsw.ef_search = 100).
    """
    if connection.vendor != "postgresql":
        return
    from knowledge.search import HNSW_EF_SEARCH

    with connection.cursor() as cursor:
        cursor.execute(f"SET hnsw.ef_search = {int(HNSW_EF_SEARCH)}; SET hnsw.iterative_scan = relaxed_order")
