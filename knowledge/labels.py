"""What the dashboard shows for a document version's ingest state: a human label and a badge tone.

Kept next to ``knowledge.models.IngestState``: ``voiceplatform/tests/test_present.py`` fails when
a state has no entry here.
"""

from __future__ import annotations

from knowledge.models import IngestState

INGEST_STATE: dict[str, tuple[str, str]] = {
    IngestState.QUEUED: ("Queued", "neutral"),
    IngestState.EXTRACTING: ("Extracting text", "warn"),
    IngestState.CHUNKING: ("Chunking", "warn"),
    IngestState.EMBEDDING: ("Embedding", "warn"),
    IngestState.READY: ("Ready", "ok"),
    IngestState.FAILED: ("Failed", "bad"),
}
