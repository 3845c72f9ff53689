"""Fake Hume EVI server for the real ``hume`` SDK.

Serves ``ws://127.0.0.1:PORT/v0/evi/chat`` (protocols.md §5). Point the SDK at
it with ``AsyncHumeClient(api_key=fake.api_key, base_url=fake.url)``, or pass
:meth:`session_config_kwargs` into a ``SessionConfig``.

Behaviour:

* ``chat_metadata`` first; every message carries what the SDK's pydantic models
  require (all 48 prosody scores, ``time``, ``from_text``…).
* ``session_settings`` sets the input sample rate (needed before audio).
* Simple VAD on ``audio_input``: the first chunk after silence produces an
  interim ``user_message``; after ``turn_ms`` of audio a final ``user_message``
  (text from :meth:`caller_says`) and the next script step runs. Caller audio
  during a paced :class:`AgentTurn` sends ``user_interruption`` and stops it.
* ``assistant_input`` is spoken verbatim (``assistant_message`` + ``tts_audio``
  as WAV + ``assistant_end``) without using a script step; ``user_input``
  (echoed as a ``user_message`` with ``from_text: true``), ``tool_response`` and
  ``tool_error`` run the next step.
* :class:`AgentTurn` audio is PCM16 at ``output_rate``; each ``audio_output``
  chunk is a complete WAV file, as Hume sends it.
* :class:`ProviderFailure` sends an ``error`` message (and closes if fatal).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request

from agents.bridges.audio import pcm16_to_wav
from agents.testing.script import AgentTurn, FunctionCall, ProviderFailure
from agents.testing.server import ConnState
from agents.testing.turn_fake import TurnTakingFake

EMOTIONS: tuple[str, ...] = (
    "Admiration", "Adoration", "Aesthetic Appreciation", "Amusement", "Anger", "Anxiety", "Awe",
    "Awkwardness", "Boredom", "Calmness", "Concentration", "Confusion", "Contemplation", "Contempt",
    "Contentment", "Craving", "Desire", "Determination", "Disappointment", "Disgust", "Distress",
    "Doubt", "Ecstasy", "Embarrassment", "Empathic Pain", "Entrancement", "Envy", "Excitement", "Fear",
    "Guilt", "Horror", "Interest", "Joy", "Love", "Nostalgia", "Pain", "Pride", "Realization", "Relief",
    "Romance", "Sadness", "Satisfaction", "Shame", "Surprise (negative)", "Surprise (positive)",
    "Sympathy", "Tiredness", "Triumph",
)


def _models() -> dict[str, Any]:
    return {"prosody": {"scores": {name: round(0.01 * (i % 7), 2) for i, name in enumerate(EMOTIONS)}}}


class FakeHumeEVI(TurnTakingFake):
    """See module docstring."""

    def __init__(
        self,
        *,
        api_key: str = "hume-test-key",
        turn_ms: int = 200,
        output_rate: int = 48000,
        tts_audio: bytes = b"\x00\x01" * 4800,
    ) -> None:
        super().__init__(api_key=api_key, turn_ms=turn_ms, tts_audio=tts_audio)
        self.output_rate = output_rate
        self._ids = itertools.count(1)

    def query(self, connection: int = 0) -> dict[str, list[str]]:
        """Query parameters of the n-th connection (``config_id``, ``session_settings[...]``)."""
        return parse_qs(urlsplit(self.handshakes[connection].path).query)

    def authorize(self, request: Request) -> int | None:
        parts = urlsplit(request.path)
        if parts.path != "/v0/evi/chat":
            return 404
        key = request.headers.get("X-Hume-Api-Key") or parse_qs(parts.query).get("api_key", [None])[0]
        return None if key == self.api_key else 401

    def audio_received(self) -> bytes:
        return b"".join(base64.b64decode(m["data"]) for m in self.received_of("audio_input"))

    # -- protocol --------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def new_state(self, conn: ServerConnection) -> _Conn:
        return _Conn(conn)

    def greeting(self) -> dict[str, Any]:
        return {"type": "chat_metadata", "chat_id": self._id("chat"), "chat_group_id": self._id("group"),
                "request_id": self._id("req")}

    async def dispatch(self, st: _Conn, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "session_settings":
            audio = msg.get("audio") or {}
            if audio.get("encoding", "linear16") != "linear16":
                await self._error(st.conn, "E0101", "invalid_audio_encoding", "Only linear16 is supported.")
            st.sample_rate = int(audio.get("sample_rate") or st.sample_rate)
        elif kind == "audio_input":
            await self.on_audio(st, len(base64.b64decode(msg.get("data", ""))), st.sample_rate * 2 / 1000)
        elif kind == "assistant_input":
            await self.speak(st, AgentTurn(audio=self.tts_audio, transcript=msg.get("text", "")))
        elif kind == "user_input":
            # EVI takes the text as the user's turn and echoes it as a user_message
            # marked from_text. That it also stops a reply still streaming is this
            # fake's assumption (the docs do not say); it never streams two at once.
            await st.stop_turn()
            await self.send_json(st.conn, self._user_message(msg.get("text", ""), st, interim=False, from_text=True))
            await self.trigger(st)
        elif kind in ("tool_response", "tool_error"):
            await self.trigger(st)

    async def _error(self, conn: ServerConnection, code: str, slug: str, message: str) -> None:
        await self.send_json(conn, {"type": "error", "code": code, "slug": slug, "message": message,
                                    "request_id": self._id("req")})

    async def caller_started(self, st: _Conn) -> None:
        if st.speaking():
            await st.stop_turn()
            await self.send_json(st.conn, {"type": "user_interruption", "time": st.audio_ms})
        await self.send_json(st.conn, self._user_message("", st, interim=True))

    async def caller_turn(self, st: _Conn, text: str) -> None:
        await self.send_json(st.conn, self._user_message(text, st, interim=False))

    def _user_message(self, text: str, st: _Conn, *, interim: bool, from_text: bool = False) -> dict[str, Any]:
        return {"type": "user_message", "message": {"role": "user", "content": text},
                "models": _models(), "time": {"begin": max(0, st.audio_ms - self.turn_ms), "end": st.audio_ms},
                "from_text": from_text, "interim": interim}

    async def send_tool_call(self, st: _Conn, step: FunctionCall) -> None:
        await self.send_json(st.conn, {"type": "tool_call", "name": step.name, "parameters": json.dumps(step.arguments),
                                       "tool_call_id": step.call_id, "response_required": True,
                                       "tool_type": "function"})

    async def send_failure(self, st: _Conn, step: ProviderFailure) -> None:
        await self._error(st.conn, step.code, step.code.lower(), step.message)

    async def speak(self, st: _Conn, turn: AgentTurn) -> None:
        conn = st.conn
        msg_id = self._id("msg")
        await self.send_json(conn, {"type": "assistant_message", "id": msg_id,
                                    "message": {"role": "assistant", "content": turn.transcript},
                                    "models": _models(), "from_text": False, "is_quick_response": False})
        chunks = [turn.audio[i:i + turn.chunk_bytes] for i in range(0, len(turn.audio), turn.chunk_bytes)]
        for index, chunk in enumerate(chunks):
            wav = pcm16_to_wav(chunk, self.output_rate)
            await self.send_json(conn, {"type": "audio_output", "id": msg_id, "index": index,
                                        "data": base64.b64encode(wav).decode()})
            if turn.pace:
                await asyncio.sleep(turn.pace)
        await self.send_json(conn, {"type": "assistant_end"})


class _Conn(ConnState):
    def __init__(self, conn: ServerConnection) -> None:
        super().__init__(conn)
        self.sample_rate = 16000
