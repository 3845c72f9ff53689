"""Production's web command: uvicorn serving the ASGI app, draining calls on SIGTERM.

    python -m voiceplatform.serve --host 0.0.0.0 --port 8000 [--proxy-headers]

Contract: the first SIGTERM (or Ctrl-C) does not stop the server; it starts the drain of
``calls.media.drain``: the process answers ``/readyz`` with 503 and new-call webhooks
with 503 (the proxy retries them on another process), prepares no new session, and lets
its live calls run for up to ``DRAIN_TIMEOUT_S`` (``--drain-timeout``); the calls still
running then hear the agent say goodbye, their carrier legs are hung up and they are
stored with the reason ``server_shutdown``. Only then does uvicorn's own shutdown run
(requests in flight finish, remaining sockets such as live dashboards close), and the
process exits 0 after logging one ``drain finished`` line with the counts.

A second signal cuts the wait short (the remaining calls are still ended cleanly, with
their goodbye); a third exits at once. Give the process manager a stop timeout longer
than the drain limit plus a goodbye (docker-compose.yml: ``stop_grace_period``).

Why not plain uvicorn: on SIGTERM it closes every WebSocket at once (1012), which
cut each live call off mid-sentence and left its carrier leg to time out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from types import FrameType

import uvicorn

from calls.media.drain import live_sessions

logger = logging.getLogger("voiceplatform.serve")
APP = "voiceplatform.asgi:application"


class DrainingServer(uvicorn.Server):
    """uvicorn's server with the call drain in front of its shutdown."""

    def __init__(self, config: uvicorn.Config, drain_limit_s: float) -> None:
        super().__init__(config)
        self.drain_limit_s = drain_limit_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._signals = 0

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: only schedule work on the loop. The signal is not
        # re-raised after serving (uvicorn's default): a drained exit is a clean exit.
        self._signals += 1
        if self._loop is None:
            self.should_exit = True
            return
        if self._signals == 1:
            self._loop.call_soon_threadsafe(self._start_drain)
        elif self._signals == 2:
            self._loop.call_soon_threadsafe(live_sessions.hurry)
        else:
            self.should_exit = self.force_exit = True

    def _start_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        try:
            await live_sessions.drain(self.drain_limit_s)
        finally:
            self.should_exit = True


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceplatform.settings")
    from django.conf import settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--loop", default="auto", help="uvicorn event loop (auto, asyncio, uvloop)")
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn WebSocket implementation")
    parser.add_argument("--http", default="auto", help="uvicorn HTTP implementation (auto, h11, httptools)")
    parser.add_argument("--proxy-headers", action="store_true", help="believe X-Forwarded-* from FORWARDED_ALLOW_IPS")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--drain-timeout", type=float, default=None,
                        help="seconds live calls may run after SIGTERM (default: DRAIN_TIMEOUT_S)")
    args = parser.parse_args(argv)
    limit = settings.DRAIN_TIMEOUT_S if args.drain_timeout is None else args.drain_timeout
    config = uvicorn.Config(APP, host=args.host, port=args.port, loop=args.loop, ws=args.ws, http=args.http,
                            proxy_headers=args.proxy_headers, access_log=args.access_log,
                            log_level=args.log_level, lifespan="off")
    server = DrainingServer(config, limit)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
