"""Fake Deepgram Voice Agent server for the real ``deepgram-sdk``.

Serves ``ws://127.0.0.1:PORT/v1/agent/converse`` with the Voice Agent V1 wire
protocol (JSON control messages, raw binary audio both ways). Point the SDK at
it through its environment (the bridge does this from ``SessionConfig.base_url``):
pass :meth:`session_config_kwargs` into a ``SessionConfig``.

Behaviour:

* ``Authorization: Token <key>`` is checked at the upgrade (401 otherwise);
  ``Welcome`` is sent on connect.
* ``Settings`` must come before audio: its ``audio.input``/``audio.output``
  encodings (``mulaw`` or ``linear16``) set the formats; anything else, or a
  missing ``agent.think``, is answered with an ``Error`` and no
  ``SettingsApplied``. Otherwise ``SettingsApplied``.
* Binary frames are caller audio (kept in order; :meth:`audio_received`). Simple
  VAD: the first frame after silence sends ``UserStartedSpeaking`` (and stops a
  paced agent turn that is streaming, as Deepgram does on barge-in, without an
  ``AgentAudioDone``); after ``turn_ms`` of audio a user ``ConversationText``
  (text from :meth:`caller_says`) and the next script step runs.
* :class:`AgentTurn`: assistant ``ConversationText``, ``AgentStartedSpeaking``,
  binary audio in the output format, ``AgentAudioDone``.
  :class:`FunctionCall`: ``FunctionCallRequest`` with ``client_side: true``.
* ``InjectAgentMessage`` is spoken verbatim without using a script step, or
  answered with ``InjectionRefused`` while the agent or the caller is speaking;
  ``InjectUserMessage`` is echoed as a user ``ConversationText`` (this fake's
  assumption; the bridge tolerates either) and runs the next step;
  ``FunctionCallResponse`` runs the next step. ``KeepAlive`` is recorded only.
* :class:`ProviderFailure` sends ``Error`` (and closes with ``close_code`` if fatal).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from agents.testing.script import AgentTurn, FunctionCall, ProviderFailure
from agents.testing.server import ConnState
from agents.testing.turn_fake import TurnTakingFake

_BYTES_PER_SAMPLE = {"mulaw": 1, "linear16": 2}


class FakeDeepgramAgent(TurnTakingFake):
    """See module docstring."""

    def __init__(self, *, api_key: str = "dg-test-key", turn_ms: int = 200,
                 tts_audio: bytes = b"\xff\x7f" * 800) -> None:
        super().__init__(api_key=api_key, turn_ms=turn_ms, tts_audio=tts_audio)
        self._audio: list[bytes] = []

    def authorize(self, request: Request) -> int | None:
        if urlsplit(request.path).path != "/v1/agent/converse":
            return 404
        return None if request.headers.get("Authorization") == f"Token {self.api_key}" else 401

    def audio_received(self) -> bytes:
        with self._lock:
            return b"".join(self._audio)

    # -- protocol --------------------------------------------------------------

    def new_state(self, conn: ServerConnection) -> _Conn:
        return _Conn(conn)

    def greeting(self) -> dict[str, Any]:
        return {"type": "Welcome", "request_id": "fake-request-1"}

    async def on_binary(self, st: _Conn, raw: bytes) -> None:
        with self._lock:
            self._audio.append(raw)
        self._record({"type": "Audio", "bytes": len(raw)})
        if st.settings is None:
            await self._error(st.conn, "BINARY_BEFORE_SETTINGS", "Audio was sent before Settings.")
        else:
            await self.on_audio(st, len(raw), st.in_rate * st.in_bytes / 1000)

    async def dispatch(self, st: _Conn, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "Settings":
            audio = msg.get("audio") or {}
            enc_in = (audio.get("input") or {}).get("encoding", "linear16")
            enc_out = (audio.get("output") or {}).get("encoding", "linear16")
            if enc_in not in _BYTES_PER_SAMPLE or enc_out not in _BYTES_PER_SAMPLE:
                await self._error(st.conn, "UNSUPPORTED_AUDIO_FORMAT", f"Unsupported encoding {enc_in}/{enc_out}.")
                return
            if not (msg.get("agent") or {}).get("think"):
                await self._error(st.conn, "INVALID_SETTINGS", "agent.think is required.")
                return
            st.settings = msg
            st.in_bytes = _BYTES_PER_SAMPLE[enc_in]
            st.in_rate = int((audio.get("input") or {}).get("sample_rate") or 24000)
            await self.send_json(st.conn, {"type": "SettingsApplied"})
        elif kind == "InjectAgentMessage":
            if st.speaking() or st.in_speech:
                await self.send_json(st.conn, {"type": "InjectionRefused",
                                               "message": "Cannot inject while the agent or user is speaking."})
                return
            await self.speak(st, AgentTurn(audio=self.tts_audio, transcript=msg.get("message", "")))
        elif kind == "InjectUserMessage":
            await st.stop_turn()
            await self.send_json(st.conn, {"type": "ConversationText", "role": "user",
                                           "content": msg.get("content", "")})
            await self.trigger(st)
        elif kind == "FunctionCallResponse":
            await self.trigger(st)

    async def _error(self, conn: ServerConnection, code: str, description: str) -> None:
        await self.send_json(conn, {"type": "Error", "code": code, "description": description})

    async def caller_started(self, st: _Conn) -> None:
        await self.send_json(st.conn, {"type": "UserStartedSpeaking"})
        await st.stop_turn()  # barge-in: Deepgram stops the agent's audio

    async def caller_turn(self, st: _Conn, text: str) -> None:
        await self.send_json(st.conn, {"type": "ConversationText", "role": "user", "content": text})

    async def send_tool_call(self, st: _Conn, step: FunctionCall) -> None:
        await self.send_json(st.conn, {"type": "FunctionCallRequest", "functions": [
            {"id": step.call_id, "name": step.name, "arguments": json.dumps(step.arguments), "client_side": True}]})

    async def send_failure(self, st: _Conn, step: ProviderFailure) -> None:
        await self._error(st.conn, step.code, step.message)

    async def speak(self, st: _Conn, turn: AgentTurn) -> None:
        conn = st.conn
        await self.send_json(conn, {"type": "ConversationText", "role": "assistant", "content": turn.transcript})
        await self.send_json(conn, {"type": "AgentStartedSpeaking", "total_latency": 0.3,
                                    "tts_latency": 0.1, "ttt_latency": 0.2})
        for i in range(0, len(turn.audio), turn.chunk_bytes):
            await conn.send(turn.audio[i:i + turn.chunk_bytes])
            if turn.pace:
                await asyncio.sleep(turn.pace)
        await self.send_json(conn, {"type": "AgentAudioDone"})


class _Conn(ConnState):
    def __init__(self, conn: ServerConnection) -> None:
        super().__init__(conn)
        self.settings: dict[str, Any] | None = None
        self.in_bytes = 2
        self.in_rate = 24000
