"""A call session joined to a fake LiveKit room, run to its end: the setup the LiveKit
transport and video tests share (one place, so both drive the transport the same way)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from calls.media import result as r
from calls.media.livekit_transport import LiveKitServer, LiveKitTransport
from calls.media.session import CallSession
from calls.testing.fake_livekit_rtc import FakeLiveKitServer

# What a test does while the call runs (speak, wait, leave); the call ends when the human leaves.
During = Callable[[LiveKitTransport], Awaitable[None]]


def server_of(fake: FakeLiveKitServer) -> LiveKitServer:
    return LiveKitServer(url=fake.url, api_key=fake.api_key, api_secret=fake.api_secret)


async def run_room_call(livekit: FakeLiveKitServer, call_id: str, load: r.ContextLoader, during: During, *,
                        room: str = "support-1", human_identity: str = "visitor-7",
                        **transport_options: Any) -> tuple[r.SessionResult, LiveKitTransport]:
    """Prepare a ``CallSession`` for ``call_id`` (context from ``load``), join it to ``room``
    as ``agent-<call_id>``, run ``during`` and wait for the transport and the session to
    finish; returns the session's result and the transport."""
    results: list[r.SessionResult] = []

    async def finish(call_public_id: str, result: r.SessionResult) -> None:
        results.append(result)

    session = CallSession(call_id, "livekit", load_context=load, on_finish=finish)
    session.prepare()
    transport = LiveKitTransport(session, server_of(livekit), room, f"agent-{call_id}",
                                 human_identity=human_identity, **transport_options)
    running = asyncio.ensure_future(transport.run())
    await during(transport)
    await asyncio.wait_for(running, 30)
    await session.wait()
    assert results, "the session never finished"
    return results[0], transport
