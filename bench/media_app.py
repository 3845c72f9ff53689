"""The ASGI application the media benchmark serves.

The production media routes (calls.routing: consumer → CallSession → bridge)
with the echo agent and Silero VAD on, as in a real call. Only the per-call
database lookups are replaced: a call's token is an HMAC of its id (so any
number of calls can be generated without a database), the context is built in
memory, and results are dropped. Those hooks run once per call at connect and
at hang-up, never per frame, so the audio path measured is the real one.

Environment: MEDIA_BENCH_SECRET (token key), MEDIA_BENCH_VAD=0 to turn VAD
off, MEDIA_BENCH_RECORD=<dir> to record every call (deleted at hang-up).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from calls.testing.media_server import ensure_django_settings

ensure_django_settings()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agents.bridges.base import SessionConfig  # noqa: E402
from calls.audio.vad import VadBatcher  # noqa: E402
from calls.media.result import SessionContext, SessionResult  # noqa: E402
from calls.routing import media_urlpatterns  # noqa: E402

SECRET = os.environ.get("MEDIA_BENCH_SECRET", "media-bench").encode()
VAD = os.environ.get("MEDIA_BENCH_VAD", "1") != "0"
RECORD_DIR = os.environ.get("MEDIA_BENCH_RECORD", "")


def token_for(call_id: str) -> str:
    return hmac.new(SECRET, call_id.encode(), hashlib.sha256).hexdigest()[:32]


async def authorize(call_id: str, token: str) -> bool:
    return hmac.compare_digest(token_for(call_id), token)


async def load_context(call_id: str) -> SessionContext:
    return SessionContext(
        call_public_id=call_id,
        provider="echo",
        config=SessionConfig(speaks_first="caller"),
        vad_enabled=VAD,
        silence_timeout_s=3600,
        recording_path=Path(RECORD_DIR) / f"{call_id}.wav" if RECORD_DIR else None,
    )


async def on_finish(call_id: str, result: SessionResult) -> None:
    if result.recording_path:
        Path(result.recording_path).unlink(missing_ok=True)


application = ProtocolTypeRouter({
    "websocket": URLRouter(media_urlpatterns(
        authorize=authorize, load_context=load_context, on_finish=on_finish, vad_batcher=VadBatcher(),
    )),
})
