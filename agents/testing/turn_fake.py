"""What the Hume EVI and Deepgram Voice Agent fakes share: one connection loop, a
byte-counting caller VAD and the step dispatch.

Both vendors speak a "typed JSON message" protocol on one socket where the server
greets first, caller audio drives turns, and each script step becomes one of a few
server messages. Only the message shapes differ, so a subclass supplies them:

* :meth:`new_state` / :meth:`greeting` — per-connection state and the first server message;
* :meth:`dispatch` — one decoded JSON client message; :meth:`on_binary` — a binary
  frame (Deepgram's raw audio; JSON-only vendors keep the default, which refuses it);
* :meth:`caller_started` — the first caller audio after silence (barge-in rules differ:
  Deepgram always stops the agent, Hume says ``user_interruption`` only if it spoke);
* :meth:`caller_turn` — ``turn_ms`` of caller audio ended a turn with ``text``;
* :meth:`send_tool_call`, :meth:`send_failure` and :meth:`speak` — the steps.

:meth:`on_audio` is the shared VAD: the subclass tells it how many bytes came and the
bytes per millisecond of the negotiated input format.
"""

from __future__ import annotations

import abc
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from agents.testing.script import AgentTurn, FunctionCall, GoAway, ProviderFailure, Step
from agents.testing.server import ConnState, FakeServer


class TurnTakingFake(FakeServer):
    """See module docstring. ``api_key`` is what :meth:`authorize` expects; ``turn_ms`` how
    much caller audio makes one caller turn; ``tts_audio`` what injected lines sound like."""

    def __init__(self, *, api_key: str, turn_ms: int, tts_audio: bytes) -> None:
        super().__init__()
        self.api_key = api_key
        self.turn_ms = turn_ms
        self.tts_audio = tts_audio

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session_config_kwargs(self) -> dict[str, Any]:
        return {"credentials": {"api_key": self.api_key}, "base_url": self.url}

    def message_type(self, message: dict[str, Any]) -> str:
        return str(message.get("type", ""))

    # -- the connection loop ------------------------------------------------------

    async def handle(self, conn: ServerConnection) -> None:
        st = self.new_state(conn)
        await self.send_json(conn, self.greeting())
        try:
            async for raw in conn:
                if isinstance(raw, bytes):
                    await self.on_binary(st, raw)
                    continue
                msg = json.loads(raw)
                self._record(msg)
                await self.dispatch(st, msg)
        except ConnectionClosed:
            pass
        finally:
            if st.turn_task is not None:
                st.turn_task.cancel()

    async def on_audio(self, st: ConnState, n: int, bytes_per_ms: float) -> None:
        """``n`` bytes of caller audio: a turn starts on the first, ends after ``turn_ms``."""
        if not st.in_speech:
            st.in_speech = True
            await self.caller_started(st)
        st.pending_bytes += n
        st.audio_ms += int(n / bytes_per_ms)
        if st.pending_bytes >= self.turn_ms * bytes_per_ms:
            st.pending_bytes = 0
            st.in_speech = False
            await self.caller_turn(st, self.next_caller_text() or "")
            await self.trigger(st)

    async def trigger(self, st: ConnState) -> None:
        """Run the script until it produced a model turn."""
        await self.run_script(st, lambda step: self._run(st, step))

    async def _run(self, st: ConnState, step: Step) -> bool:
        if isinstance(step, AgentTurn):
            await st.start_turn(self.speak(st, step), paced=step.pace > 0)
            return True
        if isinstance(step, FunctionCall):
            await self.send_tool_call(st, step)
            return True
        if isinstance(step, ProviderFailure):
            await self.send_failure(st, step)
            if step.fatal:
                await st.conn.close(step.close_code, step.message[:100])
                return True
            return False
        if isinstance(step, GoAway):
            raise TypeError("GoAway is a Gemini-only step")
        raise TypeError(f"unknown step {step!r}")

    # -- what a vendor supplies ----------------------------------------------------

    @abc.abstractmethod
    def new_state(self, conn: ServerConnection) -> Any:
        """Per-connection state (a :class:`ConnState` subclass)."""

    @abc.abstractmethod
    def greeting(self) -> dict[str, Any]:
        """The server's first message on a new connection."""

    @abc.abstractmethod
    async def dispatch(self, st: Any, msg: dict[str, Any]) -> None:
        """One JSON client message (already recorded)."""

    async def on_binary(self, st: Any, raw: bytes) -> None:
        """A binary frame; vendors whose protocol is JSON only never get one from their SDK."""
        raise TypeError(f"{type(self).__name__}: unexpected binary frame ({len(raw)} bytes)")

    @abc.abstractmethod
    async def caller_started(self, st: Any) -> None:
        """The caller started speaking (the first audio after silence)."""

    @abc.abstractmethod
    async def caller_turn(self, st: Any, text: str) -> None:
        """A caller turn ended; ``text`` is what they said (from ``caller_says``)."""

    @abc.abstractmethod
    async def send_tool_call(self, st: Any, step: FunctionCall) -> None: ...

    @abc.abstractmethod
    async def send_failure(self, st: Any, step: ProviderFailure) -> None:
        """The vendor's error message (the base closes the socket after it when fatal)."""

    @abc.abstractmethod
    async def speak(self, st: Any, turn: AgentTurn) -> None:
        """Stream one agent turn (transcript, audio, end marker)."""
