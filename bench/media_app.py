"""The ASGI application the media benchmark serves.

The production media routes (calls.routing: consumer → CallSession → bridge)
with the echo agent and Silero VAD on, as in a real call. Only the per-call
database lookups are replaced: the stream token (sent in `start`'s
customParameters, as production's markup does) is one HMAC for the whole run,
because the shared load generator sends the same customParameters on every
call; the one-socket-per-call claim is kept in memory; the context is built in
memory and results are dropped. Those hooks run once per call at `start` and
at hang-up, never per frame, so the audio path measured is the real one.

Environment: MEDIA_BENCH_SECRET (token key), MEDIA_BENCH_VAD=0 to turn VAD
off, MEDIA_BENCH_RECORD=<dir> to record every call (deleted at hang-up).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from pathlib import Path

from calls.testing.media_server import ensure_django_settings

ensure_django_settings()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from agents.bridges.base import SessionConfig  # noqa: E402
from calls.audio.vad import VadBatcher  # noqa: E402
from calls.media.result import (  # noqa: E402
    STREAM_BUSY,
    STREAM_GRANTED,
    STREAM_REFUSED,
    SessionContext,
    SessionResult,
)
from calls.routing import media_urlpatterns  # noqa: E402

SECRET = os.environ.get("MEDIA_BENCH_SECRET", "media-bench").encode()
VAD = os.environ.get("MEDIA_BENCH_VAD", "1") != "0"
RECORD_DIR = os.environ.get("MEDIA_BENCH_RECORD", "")


def run_token(secret: bytes = SECRET) -> str:
    """The token every benchmark call presents (media_bench passes it as `--param token=…`)."""
    return hmac.new(secret, b"media-bench-run", hashlib.sha256).hexdigest()[:32]


_claims: dict[str, str] = {}


async def claim(call_id: str, token: str, transport: str, claim_id: str) -> str:
    if not hmac.compare_digest(run_token(), token):
        return STREAM_REFUSED
    if call_id in _claims:
        return STREAM_BUSY
    _claims[call_id] = claim_id
    return STREAM_GRANTED


async def renew_claim(call_id: str, claim_id: str) -> bool:
    return _claims.get(call_id) == claim_id


async def release_claim(call_id: str, claim_id: str) -> None:
    if _claims.get(call_id) == claim_id:
        del _claims[call_id]


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
        await asyncio.to_thread(Path(result.recording_path).unlink, missing_ok=True)


application = ProtocolTypeRouter({
    "websocket": URLRouter(media_urlpatterns(
        claim=claim, renew_claim=renew_claim, release_claim=release_claim, load_context=load_context,
        on_finish=on_finish, vad_batcher=VadBatcher(),
    )),
})
