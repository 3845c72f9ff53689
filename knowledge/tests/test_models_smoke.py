import pytest
from django.db import connection


@pytest.mark.django_db
def test_hnsw_indexes_exist() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'knowledge_chunk'")
        names = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        print(cursor.fetchone(), names)
    assert {"knowledge_chunk_hnsw_384", "knowledge_chunk_hnsw_768", "knowledge_chunk_hnsw_1536",
            "knowledge_chunk_fts"} <= names
