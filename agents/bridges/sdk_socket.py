"""The base of bridges over a vendor SDK's async ``connect()`` context manager (Hume EVI,
Deepgram Voice Agent): the connection handling both share, so each adapter only
translates its vendor's messages. See :class:`SdkSocketBridge`."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

from agents.bridges.base import Bridge, BridgeError, BridgeEvent, ProviderError, SessionConfig, guard_base_url


class SdkSocketBridge(Bridge):
    """A bridge over a vendor SDK's async ``connect()`` context manager (Hume EVI, Deepgram).

    The connection handling both vendors share lives here: the credential's ``api_key``,
    the endpoint override checked through the outbound guard (the SDK resolves the name
    itself, with no socket hook), entering the manager with the vendor's refusals and failed
    handshakes turned into :class:`ProviderError`, the receive loop (a close it did not ask
    for becomes one fatal :class:`BridgeError`, retryable unless the vendor said 1008),
    sends on a closed socket, and a quiet close. Subclasses translate messages."""

    #: How the vendor is named in errors ("Deepgram connection closed (code 1011)").
    vendor_label: ClassVar[str]

    def __init__(self, config: SessionConfig) -> None:
        super().__init__(config)
        self._cm: Any = None
        self._socket: Any = None
        self._closing = False

    async def _check_base_url(self) -> None:
        """Refuse the credential's endpoint override if it does not reach a public address now."""
        if self.config.base_url:
            sock, _host = await guard_base_url(self.config.base_url, self.provider, timeout=self.config.connect_timeout)
            sock.close()

    async def _open(self, cm: Any, setup: Callable[[Any], Awaitable[None]], api_error: type[Exception]) -> None:
        """Enter the SDK's ``connect()`` manager and run ``setup`` on its socket. ``api_error``
        is the SDK's HTTP error (its ``status_code`` says why the upgrade was refused)."""
        from websockets.exceptions import ConnectionClosed, InvalidHandshake

        self._cm = cm
        try:
            self._socket = await cm.__aenter__()
            await setup(self._socket)
        except api_error as exc:
            raise self._refused(self.vendor_label, getattr(exc, "status_code", None) or 0) from exc
        except InvalidHandshake as exc:
            raise ProviderError(f"{self.vendor_label} handshake failed ({type(exc).__name__})", retryable=True,
                                code="handshake_failed", provider=self.provider) from exc
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            raise ProviderError(f"{self.vendor_label} closed the connection during setup (code {code})",
                                retryable=code != 1008, code="connection_closed", provider=self.provider) from exc

    async def _events(self) -> AsyncIterator[BridgeEvent]:
        from websockets.exceptions import ConnectionClosed

        socket = self._socket
        while True:
            try:
                msg = await socket.recv()
            except ConnectionClosed as exc:
                error = self._closed_unexpectedly(exc)
                if error is not None:
                    yield error
                return
            except Exception as exc:
                if self._unreadable(exc):
                    continue
                raise
            for event in self._translate(msg):
                yield event

    def _unreadable(self, exc: Exception) -> bool:
        """Whether a receive error is one message the SDK could not parse (skipped, the call
        goes on) rather than a failure; by default none is."""
        return False

    @abc.abstractmethod
    def _translate(self, msg: Any) -> list[BridgeEvent]:
        """The events one vendor message means."""

    async def _send(self, method: str, message: Any) -> None:
        """Send ``message`` with the SDK socket's ``method``; a closed socket is a retryable error."""
        from websockets.exceptions import ConnectionClosed

        if self._socket is None:
            raise ProviderError(f"{self.vendor_label} connection is closed", retryable=True,
                                code="connection_closed", provider=self.provider)
        try:
            await getattr(self._socket, method)(message)
        except ConnectionClosed as exc:
            raise ProviderError(f"{self.vendor_label} connection is closed", retryable=True,
                                code="connection_closed", provider=self.provider) from exc

    async def _close(self) -> None:
        self._closing = True
        cm, self._cm, self._socket = self._cm, None, None
        if cm is not None:
            with contextlib.suppress(Exception):
                await cm.__aexit__(None, None, None)

    def _closed_unexpectedly(self, exc: Any) -> BridgeError | None:
        """The error for a ``websockets`` ConnectionClosed, or None when we were closing."""
        if self._closing:
            return None
        code = exc.rcvd.code if exc.rcvd else 1006
        return BridgeError(ProviderError(
            f"{self.vendor_label} connection closed (code {code})", retryable=code != 1008,
            code="connection_closed", provider=self.provider), fatal=True)
